//! Outputs that outlive a run: Parquet encoding, the landing zone and checkpoints.
//!
//! - [`encode`]: rows and quarantined inputs as Arrow batches and Parquet files;
//! - [`landing`]: the landing zone (local or S3-compatible): raw events, quarantine, view
//!   exports;
//! - [`checkpoint`]: manifests, segments and the atomic commit protocol.
//!
//! Outputs write what they are given; they never drive the run or read a source.

pub mod checkpoint;
pub mod encode;
pub mod landing;
