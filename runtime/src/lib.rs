//! weir: a streaming runtime for real-time e-commerce analytics.
//!
//! Events flow through the crate's modules in the order of the data:
//!
//! 1. **source** — NDJSON from a file or stdin, the built-in [`generator`], topics of
//!    [`kafka`], or raw events landed earlier (replay);
//! 2. **[`decode`]** — validation against the event contract, PCI masking, quarantine reasons;
//! 3. **[`ingest`]** — deduplication and the transform [`plugins`];
//! 4. **[`views`]** — the differential dataflow that keeps every view exact, run by
//!    [`pipeline`] on timely workers;
//! 5. **[`store`]** — the read side, published at one consistent logical time;
//! 6. **[`sink`]** and **[`landing`]** — Parquet: views and quarantine, and the landing zone
//!    of raw events (local or S3-compatible);
//! 7. **[`serve`]** — the `weir.v1` gRPC API (queries, subscriptions, plugin admin) and
//!    Prometheus metrics.
//!
//! [`run`] wires them together; [`durable`] does so for Kafka, with the landing zone and
//! [`checkpoint`]s that make a crash lose and double nothing. A bounded run over a few events:
//!
//! ```
//! use weir::row::{GMV_MINUTE, view_schema};
//! use weir::run::{run_bounded, RunConfig};
//!
//! let input = r#"{"event_id":"e1","tenant_id":"acme","type":"order_placed","event_time":"2026-11-21T07:00:05Z","schema_version":2,"user_id":"u1","order_id":"o1","items":[{"sku":"SKU-1","quantity":2,"price_cents":1500}],"total_cents":3000,"currency":"EUR"}
//! {"event_id":"e1","tenant_id":"acme","type":"order_placed","event_time":"2026-11-21T07:00:05Z","schema_version":2,"user_id":"u1","order_id":"o1","items":[{"sku":"SKU-1","quantity":2,"price_cents":1500}],"total_cents":3000,"currency":"EUR"}
//! not json
//! "#;
//! let result = run_bounded(&RunConfig::default(), input.as_bytes()).unwrap();
//! assert_eq!(result.stats.duplicates, 1);
//! assert_eq!(result.stats.quarantined["invalid_json"], 1);
//! let (gmv, _) = view_schema(GMV_MINUTE.name).unwrap();
//! let rows = result.store.read(|p| p.rows(gmv));
//! assert_eq!(rows[0][4], weir::row::Cell::Int(3000)); // gmv_cents, counted once
//! ```

pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod durable;
pub mod event;
pub mod generator;
pub mod ingest;
pub mod kafka;
pub mod landing;
pub mod pipeline;
pub mod plugins;
pub mod row;
pub mod run;
pub mod serve;
pub mod sink;
pub mod store;
pub mod views;
