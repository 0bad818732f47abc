//! weir's integration tests: one binary, a module per area.
//!
//! - `exactness` — the views against the independent batch oracle, on seeded random input with
//!   late, duplicate and malformed events, at the end and at every intermediate logical time;
//!   and the same rows for any number of workers.
//! - `quarantine` — every quarantine reason, deduplication, and PCI masking through to every
//!   output file and log line.
//! - `plugins` — WebAssembly plugins: hostile components cost only their own events, bad
//!   components are refused with a reason, failing rules are dead-lettered and retired,
//!   transforms see only the types they accept.
//! - `swap` — hot swaps of a rule or a transform at a logical time while input streams, from
//!   now on or retroactively, and rollback; no event lost or doubled.
//! - `cli` — the `weir` binary as a user runs it.
//! - `serving` — the gRPC API over a real socket: queries against the oracle, torn-read
//!   checks, subscriptions, plugin deploy/rollback, auth, and `weir run` with its metrics.
//! - `kafka` — `weir run --source kafka://…` against a real broker (tansu): exactly-once views,
//!   raw landing and quarantine across repeated SIGKILLs, a torn checkpoint, broker outages,
//!   and replay of the landing zone.
//!
//! Shared by them:
//!
//! - `oracle` (`tests/oracle/lib.rs`) — the independent batch oracle.
//! - `common` — seeded inputs, bounded runs, [`common::oracle`] (the oracle over lines),
//!   Parquet read-back, and [`common::WeirProcess`], which starts `weir run` and waits for the
//!   addresses it writes to its `--ready-file`.

#[path = "../oracle/lib.rs"]
mod oracle;

mod cli;
mod common;
mod exactness;
mod faults;
mod kafka;
mod plugins;
mod quarantine;
mod serving;
mod swap;
