//! Operator state as a checkpoint holds it, so a restart resumes from the state instead of
//! replaying every event the run ever admitted.
//!
//! Every keyed operator (`compact::stateful`) registers its state with the worker it runs on
//! when the dataflow is built. Between logical times — once every update before the
//! snapshot's time is applied and none after it — [`save_all`] encodes each registered state;
//! a restart builds the same dataflow with [`install`]`(Some(saved))`, and each operator starts
//! from its saved state instead of an empty one. Operators are told apart by name and by the
//! order they are built in, which the same build repeats.
//!
//! Owns the registry and the [`Saved`] contract; each state type says how it is encoded next
//! to its definition.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A state an operator can hand to a checkpoint and start from again.
pub(super) trait Saved {
    /// The state's encoding, taken between logical times.
    fn save(&mut self) -> Result<Vec<u8>, String>;
    /// Replaces the state the operator was built with by a saved one.
    fn load(&mut self, bytes: &[u8]) -> Result<(), String>;
}

/// Why operator state could not be saved or put back.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot save the state of operator {operator}: {why}")]
    Save { operator: String, why: String },
    #[error(
        "the checkpoint's state of operator {operator} does not load ({why}): start with the weir version and settings it was taken with, or remove the checkpoint directory to rebuild from the source"
    )]
    Load { operator: String, why: String },
    #[error(
        "the checkpoint holds no state for operator {operator}: it was taken by a different build of the views; start with the weir version it was taken with, or remove the checkpoint directory to rebuild from the source"
    )]
    Missing { operator: String },
    #[error(
        "the checkpoint holds state for operator {operator}, which this build does not have: start with the weir version it was taken with, or remove the checkpoint directory to rebuild from the source"
    )]
    Unknown { operator: String },
}

impl StateError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            StateError::Save { .. } => "state_save",
            StateError::Load { .. } => "state_load",
            StateError::Missing { .. } => "state_missing",
            StateError::Unknown { .. } => "state_unknown",
        }
    }
}

/// One worker's saved operator states, by operator.
pub type WorkerState = Vec<(String, Vec<u8>)>;

struct Registry {
    /// The states to start from, while restoring; taken as operators find theirs.
    restore: Option<HashMap<String, Vec<u8>>>,
    operators: Vec<(String, Rc<RefCell<dyn Saved>>)>,
    /// The first state that would not load.
    failed: Option<StateError>,
}

thread_local! {
    /// The registry of the dataflow being built or run on this worker thread.
    static WORKER: RefCell<Option<Registry>> = const { RefCell::new(None) };
}

/// From now on, operators built on this thread register their state; with `restore`, each
/// starts from its state there.
pub fn install(restore: Option<WorkerState>) {
    WORKER.with(|w| {
        *w.borrow_mut() = Some(Registry {
            restore: restore.map(|states| states.into_iter().collect()),
            operators: Vec::new(),
            failed: None,
        })
    });
}

/// Whether every operator found its saved state and every saved state its operator (call once
/// the dataflow is built).
pub fn check_restored() -> Result<(), StateError> {
    WORKER.with(|w| {
        let mut w = w.borrow_mut();
        let Some(registry) = w.as_mut() else {
            return Ok(());
        };
        if let Some(failed) = registry.failed.take() {
            return Err(failed);
        }
        match registry.restore.take() {
            Some(left) => match left.into_keys().min() {
                Some(operator) => Err(StateError::Unknown { operator }),
                None => Ok(()),
            },
            None => Ok(()),
        }
    })
}

/// Encodes the state of every operator registered on this thread.
pub fn save_all() -> Result<WorkerState, StateError> {
    WORKER.with(|w| {
        let w = w.borrow();
        let Some(registry) = w.as_ref() else {
            return Ok(Vec::new());
        };
        registry
            .operators
            .iter()
            .map(|(operator, state)| {
                let bytes = state.borrow_mut().save().map_err(|why| StateError::Save {
                    operator: operator.clone(),
                    why,
                })?;
                Ok((operator.clone(), bytes))
            })
            .collect()
    })
}

/// Registers operator `name`'s `state` (loading its saved one when restoring) and returns the
/// handle the operator works on.
pub(super) fn register<S: Saved + 'static>(name: &str, state: S) -> Rc<RefCell<S>> {
    let state = Rc::new(RefCell::new(state));
    WORKER.with(|w| {
        let mut w = w.borrow_mut();
        let Some(registry) = w.as_mut() else {
            return;
        };
        // The same name twice (a view built twice) is told apart by build order.
        let same = registry
            .operators
            .iter()
            .filter(|(n, _)| n.split('#').next() == Some(name))
            .count();
        let operator = format!("{name}#{same}");
        if let Some(restore) = registry.restore.as_mut() {
            match restore.remove(&operator) {
                Some(bytes) => {
                    if let Err(why) = state.borrow_mut().load(&bytes) {
                        registry.failed.get_or_insert(StateError::Load {
                            operator: operator.clone(),
                            why,
                        });
                    }
                }
                None => {
                    registry.failed.get_or_insert(StateError::Missing {
                        operator: operator.clone(),
                    });
                }
            }
        }
        registry.operators.push((operator, state.clone()));
    });
    state
}

/// Encodes a value with bincode, as every state does.
pub(super) fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serialize(value).map_err(|e| e.to_string())
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    bincode::deserialize(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count(u64);

    impl Saved for Count {
        fn save(&mut self) -> Result<Vec<u8>, String> {
            encode(&self.0)
        }
        fn load(&mut self, bytes: &[u8]) -> Result<(), String> {
            self.0 = decode(bytes)?;
            Ok(())
        }
    }

    #[test]
    fn operators_start_from_their_saved_state_and_a_mismatch_is_named() {
        install(None);
        let a = register("A", Count(0));
        let b = register("A", Count(0));
        a.borrow_mut().0 = 3;
        b.borrow_mut().0 = 5;
        let saved = save_all().unwrap();
        assert_eq!(saved.len(), 2);
        check_restored().unwrap();

        install(Some(saved.clone()));
        let a = register("A", Count(0));
        let b = register("A", Count(0));
        check_restored().unwrap();
        assert_eq!((a.borrow().0, b.borrow().0), (3, 5));

        // A build with an operator more, or one fewer, is refused by name.
        install(Some(saved.clone()));
        register("A", Count(0));
        register("A", Count(0));
        register("B", Count(0));
        let e = check_restored().unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().contains("B#0")),
            ("state_missing", true)
        );
        install(Some(saved.clone()));
        register("A", Count(0));
        let e = check_restored().unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().contains("A#1")),
            ("state_unknown", true)
        );
        // A state that does not decode.
        install(Some(vec![("A#0".into(), vec![1])]));
        register("A", Count(0));
        assert_eq!(check_restored().unwrap_err().code(), "state_load");
        WORKER.with(|w| *w.borrow_mut() = None);
    }
}
