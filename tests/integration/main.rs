//! weir's integration tests: one binary, a module per area.
//!
//! - `exactness` — the views against the independent batch oracle, on seeded random input with
//!   late, duplicate and malformed events, at the end and at every intermediate logical time;
//!   and the same rows for any number of workers.
//! - `quarantine` — every quarantine reason, deduplication, and PCI masking through to every
//!   output file and log line.
//! - `cli` — the `weir` binary as a user runs it.
//! - `serving` — the gRPC API over a real socket: queries against the oracle, torn-read
//!   checks, subscriptions, plugin deploy/rollback, auth, and `weir run` with its metrics.
//! - `kafka` — `weir run --source kafka://…` against a real broker (tansu): exactly-once views,
//!   raw landing and quarantine across repeated SIGKILLs, a torn checkpoint, broker outages,
//!   and replay of the landing zone.

#[path = "../oracle/lib.rs"]
mod oracle;

mod cli;
mod common;
mod exactness;
mod kafka;
mod plugins;
mod quarantine;
mod serving;
mod swap;
