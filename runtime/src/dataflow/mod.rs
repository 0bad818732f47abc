//! The dataflow: timely workers keeping every view exact, and the state they publish.
//!
//! - [`views`]: the differential dataflow of the six views and the fraud features;
//! - [`pipeline`]: the workers, logical times and publication;
//! - [`store`]: the published views at one consistent logical time, with recent history —
//!   what every reader (the API, exports, the status line) reads.
//!
//! The dataflow takes admitted events and rule deployments; it never reads a source, writes a
//! file or knows who serves its results.

pub mod pipeline;
pub mod store;
pub mod views;
