//! Outputs that outlive a run: Parquet encoding, the landing zone and checkpoints.
//!
//! - [`encode`]: rows and quarantined inputs as Arrow batches and Parquet files;
//! - [`landing`]: the landing zone (local or S3-compatible): raw events, quarantine, view
//!   exports;
//! - [`gold`]: the closed rows of the windowed views, exported by hour to `gold/`, out of the
//!   live store;
//! - [`checkpoint`]: manifests, the run's saved state, segments and the atomic commit protocol.
//!
//! Outputs write what they are given; they never drive the run or read a source.
//!
//! Everything written to a local filesystem is durable when the call that writes it returns:
//! the file is fsynced, and so is every directory whose entries changed (the file's own, and
//! each one created on the way). A checkpoint is committed only after the landing calls for
//! the offsets it covers returned, so no power cut can leave a checkpoint naming a file that
//! is gone.

use std::fs::File;
use std::path::Path;

pub mod checkpoint;
pub mod encode;
pub mod gold;
pub mod landing;

/// Fsyncs a directory, so the entries just added to or removed from it survive a power cut.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `create_dir_all`, then fsyncs every directory it created and the existing one it created
/// them in: a durable file in a new directory is lost with the directory's own entry.
pub(crate) fn create_dir_all_synced(dir: &Path) -> std::io::Result<()> {
    let mut created = Vec::new();
    let mut existing = dir;
    while !existing.exists() {
        created.push(existing);
        existing = match existing.parent() {
            Some(parent) if parent.as_os_str().is_empty() => Path::new("."),
            Some(parent) => parent,
            None => break,
        };
    }
    if created.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    for dir in created.into_iter().chain([existing]) {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_directories_are_created_whole_and_an_existing_one_is_left_alone() {
        let base = std::env::temp_dir().join(format!("weir-mkdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let deep = base.join("a").join("b").join("c");
        create_dir_all_synced(&deep).unwrap();
        assert!(deep.is_dir());
        std::fs::write(deep.join("kept"), b"x").unwrap();
        create_dir_all_synced(&deep).unwrap();
        assert!(
            deep.join("kept").is_file(),
            "an existing directory is not recreated"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
