//! weir: a streaming runtime for real-time e-commerce analytics.
//!
//! The folders follow the data, and each stage only reaches downstream or into the shared
//! vocabulary below it:
//!
//! ```text
//!  source/          admit/              plugins/         dataflow/                 serve/
//!  file, replay, ─▶ decode, scrub,  ─▶  transforms  ─▶   views, pipeline ─▶ store ─▶ gRPC API,
//!  generator,       dedup, quarantine   (wasm/native)    (timely workers)     │       tokens,
//!  kafka                                rules ◀──────────── fraud features     │       clients
//!     ▲                                                                      ▼
//!     └──── seek/commit ─────────────── run/ ─────────────────────────▶ output/
//!                          one Driver loop; Durability (landing,        encode (Parquet),
//!                          checkpoints, recovery) for seekable sources  landing zone, checkpoints,
//!                                                                       gold (closed spans ◀─ store)
//!
//!  shared by every stage: event (the typed event), row (view schemas, ViewId), time (Time,
//!  Diff, Millis), metrics (Prometheus registry), config (the TOML file and its settings)
//! ```
//!
//! 1. **[`source`]** — NDJSON from a file or stdin, landed raw Parquet (replay), the built-in
//!    generator, Kafka topics: records with their positions, behind one [`source::Source`]
//!    trait;
//! 2. **[`admit`]** — validation against the event contract, PCI masking ([`admit::scrub`]),
//!    quarantine reasons, deduplication and the transform [`plugins`];
//! 3. **[`dataflow`]** — the differential dataflow that keeps every view exact, run on timely
//!    workers, publishing to the [`dataflow::store`] at one consistent logical time;
//! 4. **[`output`]** — Parquet: views and quarantine, the landing zone of raw events (local or
//!    S3-compatible), the gold tables the windowed views' closed spans move to out of the
//!    store, and the checkpoints that make a crash lose and double nothing;
//! 5. **[`serve`]** — the `weir.v1` gRPC API (queries, subscriptions, plugin admin) and its
//!    clients; [`metrics`] is served beside it.
//!
//! [`run`] drives them: one loop for every source, given durability for sources that can seek.
//! A bounded run over a few events:
//!
//! ```
//! use weir::row::{Cell, ViewId};
//! use weir::run::{RunConfig, run_bounded};
//!
//! let input = r#"{"event_id":"e1","tenant_id":"acme","type":"order_placed","event_time":"2026-11-21T07:00:05Z","schema_version":2,"user_id":"u1","order_id":"o1","items":[{"sku":"SKU-1","quantity":2,"price_cents":1500}],"total_cents":3000,"currency":"EUR"}
//! {"event_id":"e1","tenant_id":"acme","type":"order_placed","event_time":"2026-11-21T07:00:05Z","schema_version":2,"user_id":"u1","order_id":"o1","items":[{"sku":"SKU-1","quantity":2,"price_cents":1500}],"total_cents":3000,"currency":"EUR"}
//! not json
//! "#;
//! let result = run_bounded(&RunConfig::default(), input.as_bytes()).unwrap();
//! assert_eq!(result.stats.duplicates, 1);
//! assert_eq!(result.stats.quarantined["invalid_json"], 1);
//! let rows = result.store.read(|p| p.rows(ViewId::GmvMinute));
//! assert_eq!(rows[0][4], Cell::Int(3000)); // gmv_cents, counted once
//! ```

pub mod admit;
pub mod config;
pub mod dataflow;
pub mod event;
pub mod metrics;
pub mod output;
pub mod plugins;
pub mod row;
pub mod run;
pub mod serve;
pub mod settings;
pub mod source;
pub mod time;
