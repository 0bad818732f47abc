//! The row model shared by every output of the views: published state, Parquet, the API.
//!
//! The dataflow computes with typed tuples; at its edge each view's updates become `Row`s whose
//! columns are named and typed by the view's [`ViewSchema`]. Ordering a row orders it by its key
//! columns first, so a sorted map of rows answers key-prefix queries with a range scan.
//!
//! It is shared vocabulary: it imports nothing else from the crate and holds no rows of its
//! own, so a view, the store, an encoder and the API can name a table without depending on one
//! another.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One column value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Cell {
    Int(i64),
    Str(String),
    Bool(bool),
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Int(v) => write!(f, "{v}"),
            Cell::Str(v) => write!(f, "{v}"),
            Cell::Bool(v) => write!(f, "{v}"),
        }
    }
}

impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::Int(v)
    }
}
impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Str(v)
    }
}
impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Str(v.to_string())
    }
}
impl From<bool> for Cell {
    fn from(v: bool) -> Self {
        Cell::Bool(v)
    }
}

/// A view row: key columns followed by value columns, in schema order.
pub type Row = Vec<Cell>;

/// Column types, as they land in Parquet (`Int` is int64, times are epoch-ms int64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Int,
    Str,
    Bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
}

/// A view's name and columns; the first `key_len` columns are its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewSchema {
    pub name: &'static str,
    pub columns: &'static [Column],
    pub key_len: usize,
}

impl ViewSchema {
    pub fn key_columns(&self) -> &'static [Column] {
        &self.columns[..self.key_len]
    }
    pub fn value_columns(&self) -> &'static [Column] {
        &self.columns[self.key_len..]
    }
}

const fn int(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Int,
    }
}
const fn text(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Str,
    }
}
const fn boolean(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Bool,
    }
}

pub const GMV_MINUTE: ViewSchema = ViewSchema {
    name: "gmv_minute",
    columns: &[
        text("tenant_id"),
        text("currency"),
        int("minute_start_ms"),
        int("orders"),
        int("gmv_cents"),
        int("cancelled_orders"),
        int("net_gmv_cents"),
    ],
    key_len: 3,
};

pub const PAYMENT_STATUS: ViewSchema = ViewSchema {
    name: "payment_status",
    columns: &[
        text("tenant_id"),
        text("provider"),
        text("status"),
        int("payments"),
        int("amount_cents"),
    ],
    key_len: 3,
};

pub const INVENTORY: ViewSchema = ViewSchema {
    name: "inventory",
    columns: &[
        text("tenant_id"),
        text("sku"),
        int("on_hand"),
        int("reserved"),
        int("available"),
    ],
    key_len: 2,
};

pub const SESSIONS: ViewSchema = ViewSchema {
    name: "sessions",
    columns: &[
        text("tenant_id"),
        text("user_id"),
        int("session_start_ms"),
        int("session_end_ms"),
        int("events"),
        int("page_views"),
        int("add_to_carts"),
        int("orders"),
        boolean("converted"),
    ],
    key_len: 3,
};

pub const CONVERSION_HOUR: ViewSchema = ViewSchema {
    name: "conversion_hour",
    columns: &[
        text("tenant_id"),
        int("hour_start_ms"),
        int("sessions"),
        int("converted_sessions"),
    ],
    key_len: 2,
};

pub const FRAUD_ALERTS: ViewSchema = ViewSchema {
    name: "fraud_alerts",
    columns: &[
        text("tenant_id"),
        text("rule"),
        text("subject_id"),
        int("event_time_ms"),
    ],
    key_len: 3,
};

/// Every view, in the order the dataflow publishes them; a view's index here is its id (and
/// its index in [`TABLES`], which lists the views first).
pub const VIEWS: &[ViewSchema] = TABLES.split_at(6).0;

/// Looks a view or table up by name.
pub fn view_schema(name: &str) -> Option<(ViewId, ViewSchema)> {
    ViewId::from_name(name).map(|id| (id, *id.schema()))
}

/// Rule evaluations that failed: kept, with the error, until a fixed rule is deployed.
pub const DEAD_LETTERS: ViewSchema = ViewSchema {
    name: "dead_letters",
    columns: &[
        text("tenant_id"),
        text("rule"),
        text("event_id"),
        text("error"),
    ],
    key_len: 3,
};

/// Everything the dataflow publishes: the views, then the internal tables.
pub const TABLES: [ViewSchema; 7] = [
    GMV_MINUTE,
    PAYMENT_STATUS,
    INVENTORY,
    SESSIONS,
    CONVERSION_HOUR,
    FRAUD_ALERTS,
    DEAD_LETTERS,
];

/// A published table by name rather than by position: the six views of SPEC §2, then the
/// internal tables. `ViewId as usize` is its index in [`TABLES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViewId {
    GmvMinute = 0,
    PaymentStatus = 1,
    Inventory = 2,
    Sessions = 3,
    ConversionHour = 4,
    FraudAlerts = 5,
    DeadLetters = 6,
}

impl ViewId {
    /// Every table, in [`TABLES`] order.
    pub const ALL: [ViewId; 7] = [
        ViewId::GmvMinute,
        ViewId::PaymentStatus,
        ViewId::Inventory,
        ViewId::Sessions,
        ViewId::ConversionHour,
        ViewId::FraudAlerts,
        ViewId::DeadLetters,
    ];

    /// The six views of SPEC §2 (what is exported and listed by the API).
    pub const VIEWS: [ViewId; 6] = [
        ViewId::GmvMinute,
        ViewId::PaymentStatus,
        ViewId::Inventory,
        ViewId::Sessions,
        ViewId::ConversionHour,
        ViewId::FraudAlerts,
    ];

    pub fn schema(self) -> &'static ViewSchema {
        &TABLES[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.schema().name
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The table of this index in [`TABLES`].
    pub fn from_index(index: usize) -> Option<ViewId> {
        ViewId::ALL.get(index).copied()
    }

    /// Looks a view or table up by name.
    pub fn from_name(name: &str) -> Option<ViewId> {
        ViewId::ALL.into_iter().find(|v| v.name() == name)
    }
}

#[cfg(test)]
mod view_id_tests {
    use super::*;

    #[test]
    fn ids_follow_tables() {
        for (i, id) in ViewId::ALL.into_iter().enumerate() {
            assert_eq!(id.index(), i);
            assert_eq!(ViewId::from_name(TABLES[i].name), Some(id));
        }
        assert_eq!(ViewId::VIEWS.len(), VIEWS.len());
    }
}
