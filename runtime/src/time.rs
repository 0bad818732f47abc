//! The three clocks every stage speaks of: logical time, multiplicity and event time.
//!
//! They sit below the stages so that a source, admission or a plugin can name a logical time
//! without reaching into the dataflow that defines what it means.
//!
//! It holds the names and nothing else: it imports nothing, reads no clock and converts no
//! timestamp (decoding turns event times into `Millis`).

/// Logical time: the epoch in which an event was admitted. Views are published per time.
pub type Time = u64;

/// Multiplicity of a record in a collection (+1 inserted, −1 retracted).
pub type Diff = isize;

/// Epoch milliseconds, UTC (event time).
pub type Millis = i64;
