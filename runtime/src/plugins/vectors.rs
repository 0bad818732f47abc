//! Test vectors: a plugin's own examples of input and expected output, checked before it may
//! be deployed and by `weir plugin test`.
//!
//! One JSON object per line. Transforms: `{"input": <event>, "output": [<event>, ...]}` or
//! `{"input": <event>, "error": true}`, events in the SPEC §1 wire format (plus
//! `provider_status`, `card_bin`, `card_last4` where set). Rules:
//! `{"input": {"event": <rule event>, "features": <features>}, "alerts": ["<subject>", ...]}`.
//!
//! A transform's input goes through admission's own decoder, so a plugin is checked on exactly
//! what admission would hand it, card data masked. It reads no file and registers nothing:
//! callers pass the text and act on the [`Report`].

use serde::Deserialize;
use serde_json::Value;

use super::set::{WasmPlugins, World};
use super::{PluginError, Rule, RuleInput, Transform};
use crate::admit::decode;

/// Why a vector file cannot be run, or why one vector failed (a [`Report`] line).
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("no plugin named {0}")]
    NoPlugin(String),
    #[error("not a transform vector: {0}")]
    NotTransformVector(serde_json::Error),
    #[error("not a rule vector: {0}")]
    NotRuleVector(serde_json::Error),
    #[error("input is not a valid event: {0}")]
    InvalidInput(decode::Reason),
    #[error("a vector needs \"output\" or \"error\": true")]
    NoExpectation,
    #[error("plugin failed: {0}")]
    PluginFailed(PluginError),
    #[error("expected an error, got {0} events")]
    ExpectedError(usize),
    #[error("expected {want}, got {got}")]
    WrongOutput { want: Value, got: Value },
    #[error("expected alerts {want:?}, got {got:?}")]
    WrongAlerts { want: Vec<String>, got: Vec<String> },
}

impl VectorError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            VectorError::NoPlugin(_) => "no_plugin",
            VectorError::NotTransformVector(_) => "not_a_transform_vector",
            VectorError::NotRuleVector(_) => "not_a_rule_vector",
            VectorError::InvalidInput(_) => "vector_input_invalid",
            VectorError::NoExpectation => "vector_expects_nothing",
            VectorError::PluginFailed(_) => "vector_plugin_failed",
            VectorError::ExpectedError(_) => "vector_expected_error",
            VectorError::WrongOutput { .. } => "vector_wrong_output",
            VectorError::WrongAlerts { .. } => "vector_wrong_alerts",
        }
    }
}

/// The outcome of a vector file.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    /// One message per failing vector, naming its line.
    pub failures: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.passed > 0
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransformVector {
    input: Value,
    #[serde(default)]
    output: Option<Vec<Value>>,
    #[serde(default)]
    error: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleVector {
    input: RuleInput,
    alerts: Vec<String>,
}

/// Runs `vectors` (JSON lines) against the plugin `name` of `set`.
pub fn check(set: &WasmPlugins, name: &str, vectors: &str) -> Result<Report, VectorError> {
    let (_, world, _) = set
        .list()
        .into_iter()
        .find(|(n, _, _)| n == name)
        .ok_or_else(|| VectorError::NoPlugin(name.to_owned()))?;
    let mut report = Report::default();
    let mut transforms = super::PluginFactory::transforms(set);
    let mut rules = super::PluginFactory::rules(set);
    let position = set
        .list()
        .into_iter()
        .filter(|(_, w, _)| *w == world)
        .position(|(n, _, _)| n == name)
        .expect("listed above");
    for (number, line) in vectors.lines().enumerate() {
        let number = number + 1;
        if line.trim().is_empty() {
            continue;
        }
        let verdict = match world {
            World::Transform => check_transform(transforms[position].as_mut(), line),
            World::Rule => check_rule(rules[position].as_mut(), line),
        };
        match verdict {
            Ok(()) => report.passed += 1,
            Err(why) => report.failures.push(format!("line {number}: {why}")),
        }
    }
    Ok(report)
}

fn check_transform(plugin: &mut dyn Transform, line: &str) -> Result<(), VectorError> {
    let vector: TransformVector =
        serde_json::from_str(line).map_err(VectorError::NotTransformVector)?;
    let raw = serde_json::to_vec(&vector.input).expect("a JSON value serialises");
    let mut event = decode::decode(&raw).map_err(VectorError::InvalidInput)?;
    // Fields decoding does not read but a vector may set on a payment.
    if let (crate::event::Body::Payment(p), Value::Object(m)) = (&mut event.body, &vector.input) {
        let field = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        p.provider_status = field("provider_status");
        p.card_bin = field("card_bin");
        p.card_last4 = field("card_last4");
    }
    let result = plugin
        .apply(vec![event])
        .pop()
        .expect("one result per event");
    match (result, vector.error, vector.output) {
        (Err(_), true, _) => Ok(()),
        (Ok(out), true, _) => Err(VectorError::ExpectedError(out.len())),
        (Err(e), false, _) => Err(VectorError::PluginFailed(e)),
        (Ok(_), false, None) => Err(VectorError::NoExpectation),
        (Ok(out), false, Some(want)) => {
            let got: Vec<Value> = out.iter().map(|e| e.to_wire()).collect();
            if got == want {
                Ok(())
            } else {
                Err(VectorError::WrongOutput {
                    want: Value::Array(want),
                    got: Value::Array(got),
                })
            }
        }
    }
}

fn check_rule(plugin: &mut dyn Rule, line: &str) -> Result<(), VectorError> {
    let vector: RuleVector = serde_json::from_str(line).map_err(VectorError::NotRuleVector)?;
    let result = plugin
        .evaluate(std::slice::from_ref(&vector.input))
        .pop()
        .expect("one result per input");
    let mut got: Vec<String> = result
        .map_err(VectorError::PluginFailed)?
        .into_iter()
        .map(|a| a.subject_id)
        .collect();
    let mut want = vector.alerts;
    got.sort();
    want.sort();
    if got == want {
        Ok(())
    } else {
        Err(VectorError::WrongAlerts { want, got })
    }
}
