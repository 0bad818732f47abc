//! The independent batch oracle for weir's event contract (SPEC §1) and views (SPEC §2).
//!
//! Given the raw input lines in admission order, [`compute`] validates them, quarantines the
//! bad ones and the too late ones, deduplicates the rest and then computes every view from
//! scratch with plain sorting, grouping and scanning over the whole input — no timely, no
//! differential dataflow, no incremental state.
//!
//! Lateness (SPEC §2.7), when [`Params::lateness`] asks for it, is replayed line by line from
//! its definition rather than from any model of weir's batches: the input is cut into logical
//! times of a fixed number of lines, each tenant's watermark is the greatest event time it
//! had admitted before the current logical time, and an event more than L behind its
//! tenant's watermark is quarantined as `too_late`. The same bound is what lets the runtime
//! forget event ids, so a copy is a duplicate only while its first copy is still within
//! L of the watermark; past that the pair counts as new. The check is per tenant because one
//! tenant's clock must never make another's events late, and it reads only earlier logical
//! times because events admitted together are one step of the runtime, which cannot see its
//! own step's watermark yet.
//!
//! Nothing here comes from `weir`. Each line is read as a `serde_json::Value` and checked by
//! [`validate`], written from the text of SPEC §1 (and README's naming of item fields): the
//! size limit, the envelope and per-type fields with their types and ranges, the quarantine
//! reasons and the card masking. Deduplication, the canonical payment-status table, every
//! view and every fraud rule are re-implemented here in the most direct form, and rows are
//! this file's own [`Cell`]s, converted to weir's only where tests compare them. The exactness
//! tests therefore compare two implementations that could only agree by both being right.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

/// Epoch milliseconds UTC.
pub type Millis = i64;

/// One value of a view row: SPEC §4's column types (int64, UTF-8 text, boolean).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cell {
    Int(i64),
    Str(String),
    Bool(bool),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Int(v) => write!(f, "{v}"),
            Cell::Str(v) => f.write_str(v),
            Cell::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// A view row, columns in SPEC §2 order (keys first).
pub type Row = Vec<Cell>;

/// The six views of SPEC §2, by the names every output uses.
pub const VIEW_NAMES: [&str; 6] = [
    "gmv_minute",
    "payment_status",
    "inventory",
    "sessions",
    "conversion_hour",
    "fraud_alerts",
];

/// SPEC §1: an input is at most 64 KiB.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// SPEC §1 ranges: cents fields and `|delta|` at most 10^15, `quantity` at most 10^6.
pub const MAX_CENTS: i64 = 1_000_000_000_000_000;
pub const MAX_QUANTITY: i64 = 1_000_000;
/// SPEC §1: event times from 2000-01-01T00:00:00Z (inclusive) to 2100-01-01T00:00:00Z
/// (exclusive); checked against the calendar arithmetic in the unit tests.
pub const EARLIEST_EVENT_MS: Millis = 946_684_800_000;
pub const END_EVENT_MS: Millis = 4_102_444_800_000;

/// The event types of SPEC §1.
pub const EVENT_TYPES: [&str; 6] = [
    "page_view",
    "add_to_cart",
    "order_placed",
    "order_cancelled",
    "payment",
    "inventory_adjusted",
];

/// Tunables of the views that tests may vary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// `velocity`: orders of one user within 10 minutes (the flagged one included) that raise
    /// the alert.
    pub velocity_threshold: usize,
    /// `Some((line, threshold))`: orders from input lines at index `line` on are judged with
    /// `threshold` instead (a rule version deployed "from now" at that point of the input).
    pub velocity_switch: Option<(usize, usize)>,
    /// The switch is retroactive: orders from earlier lines are judged with its threshold too,
    /// except, with a lateness, those more than L behind their tenant's watermark at the
    /// switch line's logical time, which keep their verdicts. The line must start a logical
    /// time.
    pub velocity_retroactive: bool,
    /// SPEC §2.7's lateness rule. `None` is a run without a retention window: no event is
    /// ever too late and every admitted `(tenant_id, event_id)` is remembered forever.
    pub lateness: Option<Lateness>,
}

/// How late an event may be (SPEC §2.7) and how the input maps onto the runtime's logical
/// times, which is what decides which events a watermark already includes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lateness {
    /// L: an event is too late when its time is below its tenant's watermark minus this, and a
    /// remembered event id older than that is forgotten.
    pub ms: Millis,
    /// How many consecutive input lines share one logical time: line `i` is admitted at
    /// logical time `i / epoch_lines` (0 counts as 1). Runs feed the runtime this many lines
    /// per step, so the oracle's watermark moves when the runtime's can.
    pub epoch_lines: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            velocity_threshold: 5,
            velocity_switch: None,
            velocity_retroactive: false,
            lateness: None,
        }
    }
}

/// The batch result over one input. `C` is the cell type of the rows: the oracle's own
/// [`Cell`], or whatever a test converts them to for comparing with a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OracleViews<C = Cell> {
    /// Every view by its SPEC name (all six always present), rows in schema column order,
    /// each `Vec` sorted.
    pub views: BTreeMap<&'static str, Vec<Vec<C>>>,
    /// Valid events that count: valid, not too late and not a duplicate (|E| in SPEC §2).
    pub valid: usize,
    /// Valid events dropped as later copies of a still remembered `(tenant_id, event_id)`.
    /// Too late copies are not among them: lateness is judged first.
    pub duplicates: usize,
    /// Quarantined lines by reason, `too_late` included.
    ///
    /// `valid + duplicates + Σ quarantined` is the number of input lines.
    pub quarantined: BTreeMap<String, usize>,
    /// The events that count, in input order, each with the index of its line.
    pub admitted: Vec<(usize, Event)>,
}

impl<C> OracleViews<C> {
    /// The same result with every cell converted by `f`, each view re-sorted.
    pub fn map_cells<D: Ord>(self, f: impl Fn(C) -> D) -> OracleViews<D> {
        let views = self
            .views
            .into_iter()
            .map(|(name, rows)| {
                let mut rows: Vec<Vec<D>> = rows
                    .into_iter()
                    .map(|row| row.into_iter().map(&f).collect())
                    .collect();
                rows.sort();
                (name, rows)
            })
            .collect();
        OracleViews {
            views,
            valid: self.valid,
            duplicates: self.duplicates,
            quarantined: self.quarantined,
            admitted: self.admitted,
        }
    }
}

/// SPEC §2.7's gold: the windowed views, each with the column of the event time a row
/// belongs to (`minute_start_ms`, `session_start_ms`, `hour_start_ms`).
pub const WINDOWED: [(&str, usize); 3] =
    [("gmv_minute", 2), ("sessions", 2), ("conversion_hour", 1)];

/// Rows of every view by name.
pub type Tables = BTreeMap<&'static str, Vec<Vec<Cell>>>;

impl OracleViews<Cell> {
    /// Per tenant, where its gold ends once every event is in: the start of the span (of
    /// `span` ms, counted from the epoch) holding the time `serve` behind its watermark, the
    /// greatest event time of its admitted events. Rows of earlier spans can change no more
    /// than any other, but they are no longer served from memory.
    pub fn gold_before(&self, serve: Millis, span: Millis) -> BTreeMap<String, Millis> {
        let mut marks: BTreeMap<String, Millis> = BTreeMap::new();
        for (_, e) in &self.admitted {
            let mark = marks.entry(e.tenant_id.clone()).or_insert(e.time);
            *mark = (*mark).max(e.time);
        }
        marks
            .into_iter()
            .map(|(t, m)| (t, (m - serve).div_euclid(span) * span))
            .collect()
    }

    /// The views split into what is in gold after the run and what is live: a windowed
    /// view's row is in gold when its time is before its tenant's [`gold_before`]; every
    /// other row (of every view) is live.
    ///
    /// [`gold_before`]: OracleViews::gold_before
    pub fn split_gold(&self, serve: Millis, span: Millis) -> (Tables, Tables) {
        let before = self.gold_before(serve, span);
        let (mut gold, mut live) = (Tables::new(), Tables::new());
        for (name, rows) in &self.views {
            let column = WINDOWED.iter().find(|(v, _)| v == name).map(|(_, c)| *c);
            let (g, l): (Vec<_>, Vec<_>) = rows.iter().cloned().partition(|row| {
                match (column, &row[0], row.get(column.unwrap_or(0))) {
                    (Some(_), Cell::Str(tenant), Some(Cell::Int(at))) => {
                        before.get(tenant).is_some_and(|b| at < b)
                    }
                    _ => false,
                }
            });
            gold.insert(name, g);
            live.insert(name, l);
        }
        (gold, live)
    }
}

// ------------------------------------------------------------------------------------------
// The event contract (SPEC §1)
// ------------------------------------------------------------------------------------------

/// A valid event, as much of it as the views and the PCI checks need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub tenant_id: String,
    pub event_id: String,
    pub time: Millis,
    pub schema_version: i64,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    PageView {
        user_id: String,
    },
    AddToCart {
        user_id: String,
        sku: String,
        quantity: i64,
        price_cents: i64,
    },
    OrderPlaced(Order),
    OrderCancelled {
        user_id: String,
        order_id: String,
    },
    Payment(Payment),
    InventoryAdjusted {
        sku: String,
        delta: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub user_id: String,
    pub order_id: String,
    /// `(sku, quantity, price_cents)` of each item.
    pub items: Vec<(String, i64, i64)>,
    pub total_cents: i64,
    /// `USD` for a v1 order.
    pub currency: String,
    pub discount_cents: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub user_id: String,
    pub order_id: String,
    pub payment_id: String,
    pub provider: String,
    /// The provider's own word; [`canonical_status`] maps it.
    pub status: String,
    pub amount_cents: i64,
    pub device_id: Option<String>,
    pub card_fingerprint: Option<String>,
    /// `(card_bin, card_last4)` of the card number the event carried, if any.
    pub card: Option<(String, String)>,
}

fn missing(field: &str) -> String {
    format!("missing_field:{field}")
}

fn wrong_type(field: &str) -> String {
    format!("wrong_type:{field}")
}

fn invalid(field: &str) -> String {
    format!("invalid_value:{field}")
}

/// A required string member.
fn text<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a str, String> {
    match object.get(field) {
        None => Err(missing(field)),
        Some(Value::String(s)) => Ok(s),
        // `null` is a value of the wrong type, not an absent member.
        Some(_) => Err(wrong_type(field)),
    }
}

/// An optional string member: absent and `null` both mean "not given".
fn optional_text<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong_type(field)),
    }
}

/// What an integer member holds.
enum Integer {
    /// Fits `i64`.
    Small(i64),
    /// An integer above `i64::MAX`: outside every range of SPEC §1.
    Huge,
}

/// A JSON number written as an integer. serde_json holds integers up to `u64::MAX` as
/// integers and everything else (fractions, exponents, and integers past 64 bits, `-0`) as
/// floats, which count as not integers here.
fn as_integer(value: &Value) -> Option<Integer> {
    match value {
        Value::Number(n) if n.is_i64() => n.as_i64().map(Integer::Small),
        Value::Number(n) if n.is_u64() => Some(Integer::Huge),
        _ => None,
    }
}

/// A required integer member within `lo..=hi`.
fn integer(object: &Map<String, Value>, field: &str, lo: i64, hi: i64) -> Result<i64, String> {
    let value = object.get(field).ok_or_else(|| missing(field))?;
    match as_integer(value) {
        Some(Integer::Small(v)) if (lo..=hi).contains(&v) => Ok(v),
        Some(_) => Err(invalid(field)),
        None => Err(wrong_type(field)),
    }
}

/// An optional integer member within `lo..=hi` (`null` means not given).
fn optional_integer(
    object: &Map<String, Value>,
    field: &str,
    lo: i64,
    hi: i64,
) -> Result<Option<i64>, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => integer(object, field, lo, hi).map(Some),
    }
}

fn is_tenant_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_currency(s: &str) -> bool {
    s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Epoch milliseconds (floored) of an RFC 3339 `date-time`, which always carries an offset:
/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`. RFC 3339 §5.6 lets `T` and `Z` be lower case and
/// the separator be a space; a second of 60 is its leap second, the instant the next second
/// starts. `None` for anything else, impossible dates included.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    let number = |at: usize, len: usize| -> Option<i64> {
        let digits = b.get(at..at + len)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let punct = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    let year = number(0, 4)?;
    let month = number(5, 2)?;
    let day = number(8, 2)?;
    let hour = number(11, 2)?;
    let minute = number(14, 2)?;
    let second = number(17, 2)?;
    let shape =
        punct(4, b"-") && punct(7, b"-") && punct(10, b"Tt ") && punct(13, b":") && punct(16, b":");
    if !shape
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if punct(at, b".") {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        // Floored to the millisecond: the first three digits, padded.
        for i in 0..3 {
            let d = if start + i < at {
                b[start + i] - b'0'
            } else {
                0
            };
            millis = millis * 10 + i64::from(d);
        }
    }
    let offset_minutes = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let (h, m) = (number(at + 1, 2)?, number(at + 4, 2)?);
            if !punct(at + 3, b":") || h > 23 || m > 59 {
                return None;
            }
            at += 6;
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    if at != b.len() {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
        - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// `(card_bin, card_last4)` of a card number: 12 to 19 digits (the lengths of a primary
/// account number), optionally grouped by spaces or dashes as people write them. `None` for
/// anything else, which cannot be masked and so cannot be admitted.
pub fn mask_card(number: &str) -> Option<(String, String)> {
    let digits: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if !(12..=19).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((
        digits[..6].to_owned(),
        digits[digits.len() - 4..].to_owned(),
    ))
}

/// Masks restricted card data in a JSON value as SPEC §1's PCI rule does, at any depth:
/// `card_number` becomes `card_bin` and `card_last4` (or just goes, if it cannot be masked)
/// and `cvv` is dropped.
pub fn mask_value(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("cvv");
            if let Some(number) = map.remove("card_number")
                && let Some((bin, last4)) = number.as_str().and_then(mask_card)
            {
                map.insert("card_bin".into(), Value::String(bin));
                map.insert("card_last4".into(), Value::String(last4));
            }
            map.values_mut().for_each(mask_value);
        }
        Value::Array(items) => items.iter_mut().for_each(mask_value),
        _ => {}
    }
}

/// Validates one input line (without its newline) against SPEC §1: the event it is, or the
/// quarantine reason.
///
/// Checks run in one fixed order, so a line with several faults always gets the same reason:
/// size, JSON, the envelope fields in SPEC's order (`event_id`, `tenant_id`, `type`,
/// `event_time`, `schema_version`), whether `type` names a known type, then the type's fields
/// in SPEC's order, items one after the other (their fields named `items.sku`,
/// `items.quantity`, `items.price_cents`).
pub fn validate(line: &[u8]) -> Result<Event, String> {
    if line.len() > MAX_EVENT_BYTES {
        return Err("oversize".into());
    }
    // One JSON object per line: any other JSON value is not an event either.
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(line) else {
        return Err("invalid_json".into());
    };
    let o = &object;
    let event_id = text(o, "event_id")?;
    if !(1..=128).contains(&event_id.chars().count()) {
        return Err(invalid("event_id"));
    }
    let tenant_id = text(o, "tenant_id")?;
    if !is_tenant_id(tenant_id) {
        return Err(invalid("tenant_id"));
    }
    let kind = text(o, "type")?;
    let time = parse_rfc3339(text(o, "event_time")?)
        .filter(|t| (EARLIEST_EVENT_MS..END_EVENT_MS).contains(t))
        .ok_or_else(|| invalid("event_time"))?;
    let schema_version = match o.get("schema_version") {
        None => return Err(missing("schema_version")),
        Some(v) => match as_integer(v) {
            Some(Integer::Small(version @ (1 | 2))) => version,
            Some(_) => return Err("unsupported_schema_version".into()),
            None => return Err(wrong_type("schema_version")),
        },
    };
    // The types are those of the contract's versions: which one a `type` names can only be
    // judged once the envelope, its version included, is whole.
    if !EVENT_TYPES.contains(&kind) {
        return Err("unknown_type".into());
    }
    let owned = |s: &str| s.to_owned();
    let body = match kind {
        "page_view" => {
            let user_id = text(o, "user_id")?;
            text(o, "url")?;
            optional_text(o, "sku")?;
            optional_text(o, "device_id")?;
            Body::PageView {
                user_id: owned(user_id),
            }
        }
        "add_to_cart" => Body::AddToCart {
            user_id: owned(text(o, "user_id")?),
            sku: owned(text(o, "sku")?),
            quantity: integer(o, "quantity", 1, MAX_QUANTITY)?,
            price_cents: integer(o, "price_cents", 0, MAX_CENTS)?,
        },
        "order_placed" => Body::OrderPlaced(order(o, schema_version)?),
        "order_cancelled" => Body::OrderCancelled {
            user_id: owned(text(o, "user_id")?),
            order_id: owned(text(o, "order_id")?),
        },
        "payment" => Body::Payment(payment(o)?),
        "inventory_adjusted" => {
            let sku = text(o, "sku")?;
            let delta = integer(o, "delta", -MAX_CENTS, MAX_CENTS)?;
            text(o, "reason")?;
            optional_text(o, "warehouse")?;
            Body::InventoryAdjusted {
                sku: owned(sku),
                delta,
            }
        }
        _ => unreachable!("the type was checked against EVENT_TYPES"),
    };
    Ok(Event {
        tenant_id: owned(tenant_id),
        event_id: owned(event_id),
        time,
        schema_version,
        body,
    })
}

fn order(o: &Map<String, Value>, schema_version: i64) -> Result<Order, String> {
    let user_id = text(o, "user_id")?.to_owned();
    let order_id = text(o, "order_id")?.to_owned();
    let items = match o.get("items") {
        None => return Err(missing("items")),
        Some(Value::Array(items)) if items.is_empty() => return Err(invalid("items")),
        Some(Value::Array(items)) => {
            // An item's member `sku` is reported as `items.sku`: the reason names the field
            // of the event, not of the item.
            let of_items = |reason: String| reason.replacen(':', ":items.", 1);
            items
                .iter()
                .map(|item| {
                    let Value::Object(item) = item else {
                        return Err(wrong_type("items"));
                    };
                    let sku = text(item, "sku").map_err(of_items)?.to_owned();
                    let quantity = integer(item, "quantity", 1, MAX_QUANTITY).map_err(of_items)?;
                    let price = integer(item, "price_cents", 0, MAX_CENTS).map_err(of_items)?;
                    Ok((sku, quantity, price))
                })
                .collect::<Result<Vec<_>, String>>()?
        }
        Some(_) => return Err(wrong_type("items")),
    };
    let total_cents = integer(o, "total_cents", 0, MAX_CENTS)?;
    optional_text(o, "device_id")?;
    // `currency` and `discount_cents` exist in v2 only: in a v1 order they are unknown extra
    // fields, ignored whatever they hold.
    let (currency, discount_cents) = if schema_version == 1 {
        ("USD".to_owned(), 0)
    } else {
        let currency = text(o, "currency")?;
        if !is_currency(currency) {
            return Err(invalid("currency"));
        }
        let discount = optional_integer(o, "discount_cents", 0, MAX_CENTS)?;
        (currency.to_owned(), discount.unwrap_or(0))
    };
    Ok(Order {
        user_id,
        order_id,
        items,
        total_cents,
        currency,
        discount_cents,
    })
}

fn payment(o: &Map<String, Value>) -> Result<Payment, String> {
    let user_id = text(o, "user_id")?.to_owned();
    let order_id = text(o, "order_id")?.to_owned();
    let payment_id = text(o, "payment_id")?.to_owned();
    let provider = text(o, "provider")?.to_owned();
    let status = text(o, "status")?.to_owned();
    let amount_cents = integer(o, "amount_cents", 0, MAX_CENTS)?;
    let device_id = optional_text(o, "device_id")?.map(str::to_owned);
    let card_fingerprint = optional_text(o, "card_fingerprint")?.map(str::to_owned);
    let card = match optional_text(o, "card_number")? {
        None => None,
        Some(number) => Some(mask_card(number).ok_or_else(|| invalid("card_number"))?),
    };
    // `cvv` is dropped unread: whatever it holds, nothing keeps it.
    Ok(Payment {
        user_id,
        order_id,
        payment_id,
        provider,
        status,
        amount_cents,
        device_id,
        card_fingerprint,
        card,
    })
}

// ------------------------------------------------------------------------------------------
// The views (SPEC §2)
// ------------------------------------------------------------------------------------------

const MINUTE_MS: Millis = 60_000;
const HOUR_MS: Millis = 60 * MINUTE_MS;
const SESSION_GAP_MS: Millis = 30 * MINUTE_MS;
const VELOCITY_WINDOW_MS: Millis = 10 * MINUTE_MS;
const CARD_TESTING_WINDOW_MS: Millis = 5 * MINUTE_MS;
const CARD_TESTING_MIN_FINGERPRINTS: usize = 3;
const ANOMALY_MIN_TOTAL_CENTS: i64 = 100_000;
const ANOMALY_MIN_PRIOR_ORDERS: usize = 3;
const ANOMALY_FACTOR: i128 = 5;

/// The canonical payment status of a provider's word (SPEC §1 table), matched exactly.
pub fn canonical_status(provider: &str, raw: &str) -> &'static str {
    match (provider, raw) {
        ("stripe", "requires_action" | "processing") => "pending",
        ("stripe", "requires_capture") => "authorized",
        ("stripe", "succeeded") => "captured",
        ("stripe", "canceled" | "payment_failed") => "failed",
        ("stripe", "refunded") => "refunded",
        ("adyen", "Received") => "pending",
        ("adyen", "Authorised") => "authorized",
        ("adyen", "SentForSettle" | "Settled") => "captured",
        ("adyen", "Refused" | "Error" | "Cancelled") => "failed",
        ("adyen", "Refunded") => "refunded",
        ("paypal", "PENDING") => "pending",
        ("paypal", "APPROVED") => "authorized",
        ("paypal", "COMPLETED") => "captured",
        ("paypal", "DECLINED" | "VOIDED") => "failed",
        ("paypal", "REFUNDED") => "refunded",
        _ => "unknown",
    }
}

/// A true floor of `t` to a multiple of `unit`, for negative times too.
fn floor_to(t: Millis, unit: Millis) -> Millis {
    t.div_euclid(unit) * unit
}

fn s(v: &str) -> Cell {
    Cell::Str(v.to_string())
}

fn int(v: i64) -> Cell {
    Cell::Int(v)
}

/// An exact sum as an i64 column holds it: at the bound once past it (SPEC §1: no sum may
/// overflow; the defined result is the nearest bound).
fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

fn sum(v: i128) -> Cell {
    Cell::Int(saturate(v))
}

fn count(n: usize) -> Cell {
    Cell::Int(i64::try_from(n).expect("count fits in i64"))
}

/// Computes every view over `lines` (raw input lines in admission order, no newline).
pub fn compute(lines: &[&[u8]], params: &Params) -> OracleViews {
    let mut quarantined: BTreeMap<String, usize> = BTreeMap::new();
    // The event time of the admitted copy of each pair: whether it is still remembered
    // depends on how far the tenant's watermark has moved since.
    let mut seen: HashMap<(String, String), Millis> = HashMap::new();
    let mut admitted: Vec<(usize, Event)> = Vec::new();
    let mut duplicates = 0;
    let epoch_lines = params.lateness.map_or(1, |l| l.epoch_lines.max(1));
    // W_t of the current logical time: folded from `admitted[..folded]`, every admitted event
    // of an earlier logical time, and none of the current one.
    let mut watermarks: HashMap<String, Millis> = HashMap::new();
    let mut folded = 0;
    // The watermarks a retroactive switch reads which orders keep their verdicts by.
    let mut at_switch: HashMap<String, Millis> = HashMap::new();
    for (index, line) in lines.iter().enumerate() {
        let now = index / epoch_lines;
        while let Some((at, e)) = admitted.get(folded)
            && at / epoch_lines < now
        {
            let w = watermarks.entry(e.tenant_id.clone()).or_insert(e.time);
            *w = (*w).max(e.time);
            folded += 1;
        }
        if params
            .velocity_switch
            .is_some_and(|(from, _)| from == index)
        {
            at_switch.clone_from(&watermarks);
        }
        let ev = match validate(line) {
            Err(reason) => {
                *quarantined.entry(reason).or_default() += 1;
                continue;
            }
            Ok(ev) => ev,
        };
        // W - L in i128: neither end can overflow. `None` while nothing of the tenant is late.
        let horizon: Option<i128> = params.lateness.and_then(|l| {
            let w = watermarks.get(&ev.tenant_id)?;
            Some(i128::from(*w) - i128::from(l.ms))
        });
        if horizon.is_some_and(|h| i128::from(ev.time) < h) {
            *quarantined.entry("too_late".to_owned()).or_default() += 1;
            continue;
        }
        let key = (ev.tenant_id.clone(), ev.event_id.clone());
        match seen.get(&key) {
            Some(&first) if horizon.is_none_or(|h| i128::from(first) >= h) => duplicates += 1,
            _ => {
                seen.insert(key, ev.time);
                admitted.push((index, ev));
            }
        }
    }
    let events: Vec<Event> = admitted.iter().map(|(_, e)| e.clone()).collect();
    // By position, not by `(tenant_id, event_id)`: a forgotten pair can be admitted twice.
    let line_of: Vec<usize> = admitted.iter().map(|(line, _)| *line).collect();

    let sessions = sessions(&events);
    let mut views: BTreeMap<&'static str, Vec<Row>> = BTreeMap::new();
    views.insert("gmv_minute", gmv_minute(&events));
    views.insert("payment_status", payment_status(&events));
    views.insert("inventory", inventory(&events));
    views.insert("conversion_hour", conversion_hour(&sessions));
    views.insert("sessions", sessions);
    views.insert(
        "fraud_alerts",
        fraud_alerts(&events, &line_of, params, &at_switch),
    );
    for rows in views.values_mut() {
        rows.sort();
    }

    OracleViews {
        views,
        valid: admitted.len(),
        duplicates,
        quarantined,
        admitted,
    }
}

fn orders(events: &[Event]) -> impl Iterator<Item = (&Event, &Order)> {
    events.iter().filter_map(|e| match &e.body {
        Body::OrderPlaced(o) => Some((e, o)),
        _ => None,
    })
}

fn payments(events: &[Event]) -> impl Iterator<Item = (&Event, &Payment)> {
    events.iter().filter_map(|e| match &e.body {
        Body::Payment(p) => Some((e, p)),
        _ => None,
    })
}

/// `(tenant_id, order_id)` of every order with at least one `order_cancelled`, at any time.
fn cancelled_orders(events: &[Event]) -> HashSet<(&str, &str)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Body::OrderCancelled { order_id, .. } => {
                Some((e.tenant_id.as_str(), order_id.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// The latest payment event of each key: greatest `(event_time, event_id)`.
fn latest_payment_by<'a, K: std::hash::Hash + Eq>(
    events: &'a [Event],
    key: impl Fn(&'a Event, &'a Payment) -> K,
) -> HashMap<K, (&'a Event, &'a Payment)> {
    let mut latest: HashMap<K, (&Event, &Payment)> = HashMap::new();
    for (e, p) in payments(events) {
        let k = key(e, p);
        match latest.get(&k) {
            Some((cur, _)) if (cur.time, &cur.event_id) >= (e.time, &e.event_id) => {}
            _ => {
                latest.insert(k, (e, p));
            }
        }
    }
    latest
}
/// One `gmv_minute` group's values.
#[derive(Default)]
struct Gmv {
    orders: usize,
    gmv_cents: i128,
    cancelled_orders: usize,
    net_gmv_cents: i128,
}

fn gmv_minute(events: &[Event]) -> Vec<Row> {
    let cancelled = cancelled_orders(events);
    let mut groups: BTreeMap<(&str, &str, Millis), Gmv> = BTreeMap::new();
    for (e, o) in orders(events) {
        let minute = floor_to(e.time, MINUTE_MS);
        let g = groups
            .entry((&e.tenant_id, &o.currency, minute))
            .or_default();
        g.orders += 1;
        g.gmv_cents += i128::from(o.total_cents);
        if cancelled.contains(&(e.tenant_id.as_str(), o.order_id.as_str())) {
            g.cancelled_orders += 1;
        } else {
            g.net_gmv_cents += i128::from(o.total_cents);
        }
    }
    groups
        .into_iter()
        .map(|((tenant, currency, minute), g)| {
            vec![
                s(tenant),
                s(currency),
                int(minute),
                count(g.orders),
                sum(g.gmv_cents),
                count(g.cancelled_orders),
                sum(g.net_gmv_cents),
            ]
        })
        .collect()
}

fn payment_status(events: &[Event]) -> Vec<Row> {
    let latest = latest_payment_by(events, |e, p| (e.tenant_id.as_str(), p.payment_id.as_str()));
    let mut groups: BTreeMap<(&str, &str, &str), (usize, i128)> = BTreeMap::new();
    for (e, p) in latest.into_values() {
        let status = canonical_status(&p.provider, &p.status);
        let g = groups
            .entry((&e.tenant_id, &p.provider, status))
            .or_default();
        g.0 += 1;
        g.1 += i128::from(p.amount_cents);
    }
    groups
        .into_iter()
        .map(|((tenant, provider, status), (n, amount))| {
            vec![s(tenant), s(provider), s(status), count(n), sum(amount)]
        })
        .collect()
}

fn inventory(events: &[Event]) -> Vec<Row> {
    let cancelled = cancelled_orders(events);
    let order_status =
        latest_payment_by(events, |e, p| (e.tenant_id.as_str(), p.order_id.as_str()));
    // (on_hand, reserved)
    let mut skus: BTreeMap<(&str, &str), (i128, i128)> = BTreeMap::new();
    for e in events {
        if let Body::InventoryAdjusted { sku, delta } = &e.body {
            skus.entry((&e.tenant_id, sku)).or_default().0 += i128::from(*delta);
        }
    }
    for (e, o) in orders(events) {
        let key = (e.tenant_id.as_str(), o.order_id.as_str());
        let status = match order_status.get(&key) {
            Some((_, p)) => canonical_status(&p.provider, &p.status),
            None => "pending",
        };
        let reserves = !cancelled.contains(&key) && matches!(status, "pending" | "authorized");
        for (sku, quantity, _) in &o.items {
            let entry = skus.entry((&e.tenant_id, sku)).or_default();
            if reserves {
                entry.1 += i128::from(*quantity);
            }
        }
    }
    skus.into_iter()
        .map(|((tenant, sku), (on_hand, reserved))| {
            vec![
                s(tenant),
                s(sku),
                sum(on_hand),
                sum(reserved),
                // The view's columns are i64: available is what they say, not the exact sum.
                int(saturate(on_hand).saturating_sub(saturate(reserved))),
            ]
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Activity {
    PageView,
    AddToCart,
    Order,
}

fn sessions(events: &[Event]) -> Vec<Row> {
    let mut by_user: BTreeMap<(&str, &str), Vec<(Millis, Activity)>> = BTreeMap::new();
    for e in events {
        let (user, kind) = match &e.body {
            Body::PageView { user_id } => (user_id, Activity::PageView),
            Body::AddToCart { user_id, .. } => (user_id, Activity::AddToCart),
            Body::OrderPlaced(o) => (&o.user_id, Activity::Order),
            _ => continue,
        };
        by_user
            .entry((&e.tenant_id, user))
            .or_default()
            .push((e.time, kind));
    }

    let mut rows = Vec::new();
    for ((tenant, user), mut acts) in by_user {
        acts.sort();
        // Split the time-sorted activity wherever the gap exceeds 30 minutes.
        let mut start = 0;
        for i in 1..=acts.len() {
            if i < acts.len() && acts[i].0 - acts[i - 1].0 <= SESSION_GAP_MS {
                continue;
            }
            let session = &acts[start..i];
            let of = |k: Activity| session.iter().filter(|a| a.1 == k).count();
            let n_orders = of(Activity::Order);
            rows.push(vec![
                s(tenant),
                s(user),
                int(session[0].0),
                int(session[session.len() - 1].0),
                count(session.len()),
                count(of(Activity::PageView)),
                count(of(Activity::AddToCart)),
                count(n_orders),
                Cell::Bool(n_orders > 0),
            ]);
            start = i;
        }
    }
    rows
}

/// From `sessions` rows (SESSIONS layout).
fn conversion_hour(sessions: &[Row]) -> Vec<Row> {
    let mut groups: BTreeMap<(&str, Millis), (usize, usize)> = BTreeMap::new();
    for r in sessions {
        let (Cell::Str(tenant), Cell::Int(start), Cell::Bool(converted)) = (&r[0], &r[2], &r[8])
        else {
            unreachable!("sessions rows are built above with this layout");
        };
        let g = groups
            .entry((tenant, floor_to(*start, HOUR_MS)))
            .or_default();
        g.0 += 1;
        if *converted {
            g.1 += 1;
        }
    }
    groups
        .into_iter()
        .map(|((tenant, hour), (n, n_converted))| {
            vec![s(tenant), int(hour), count(n), count(n_converted)]
        })
        .collect()
}

/// `line_of[i]` is the input line of `events[i]`; `at_switch` the watermarks at the velocity
/// switch.
fn fraud_alerts(
    events: &[Event],
    line_of: &[usize],
    params: &Params,
    at_switch: &HashMap<String, Millis>,
) -> Vec<Row> {
    // (tenant, rule, subject) -> earliest flagged event time
    let mut alerts: BTreeMap<(&str, &'static str, &str), Millis> = BTreeMap::new();
    let mut raise = |tenant, rule, subject, t: Millis| {
        alerts
            .entry((tenant, rule, subject))
            .and_modify(|cur| *cur = (*cur).min(t))
            .or_insert(t);
    };

    // Orders of each user, sorted by time (ties in any order: they are all "at or before").
    // (tenant, user) -> (time, order, velocity threshold it is judged with)
    type UserOrders<'a> = HashMap<(&'a str, &'a str), Vec<(Millis, &'a Order, usize)>>;
    let mut user_orders: UserOrders = HashMap::new();
    for (e, &line) in events.iter().zip(line_of) {
        let Body::OrderPlaced(o) = &e.body else {
            continue;
        };
        // Older than the lateness behind its tenant's watermark at a retroactive switch.
        let keeps_verdict = || {
            let (Some(l), Some(w)) = (params.lateness, at_switch.get(&e.tenant_id)) else {
                return false;
            };
            i128::from(e.time) < i128::from(*w) - i128::from(l.ms)
        };
        let threshold = match params.velocity_switch {
            Some((from, threshold)) if line >= from => threshold,
            Some((_, threshold)) if params.velocity_retroactive && !keeps_verdict() => threshold,
            _ => params.velocity_threshold,
        };
        user_orders
            .entry((&e.tenant_id, &o.user_id))
            .or_default()
            .push((e.time, o, threshold));
    }
    for ((tenant, _), mut list) in user_orders {
        list.sort_by_key(|(t, _, _)| *t);
        let times: Vec<Millis> = list.iter().map(|(t, _, _)| *t).collect();
        let mut prefix_totals: Vec<i128> = vec![0];
        for (_, o, _) in &list {
            prefix_totals.push(prefix_totals[prefix_totals.len() - 1] + i128::from(o.total_cents));
        }
        for &(t, o, threshold) in &list {
            // velocity: orders with time in (t - 10 min, t]
            let upto = times.partition_point(|&x| x <= t);
            let after = times.partition_point(|&x| x <= t - VELOCITY_WINDOW_MS);
            if upto - after >= threshold {
                raise(tenant, "velocity", o.order_id.as_str(), t);
            }
            // amount_anomaly: the n orders strictly before t
            if o.total_cents >= ANOMALY_MIN_TOTAL_CENTS {
                let n = times.partition_point(|&x| x < t);
                // The rule sees the prior total as the core hands it: an i64 feature.
                let prior_sum = i128::from(saturate(prefix_totals[n]));
                if n >= ANOMALY_MIN_PRIOR_ORDERS
                    && i128::from(o.total_cents) * n as i128 > ANOMALY_FACTOR * prior_sum
                {
                    raise(tenant, "amount_anomaly", o.order_id.as_str(), t);
                }
            }
        }
    }

    // card_testing: failed payments with a device and a fingerprint, per (tenant, device).
    // (time, payment, fingerprint) of each failure
    type Failure<'a> = (Millis, &'a Payment, &'a str);
    let mut device_failures: HashMap<(&str, &str), Vec<Failure>> = HashMap::new();
    for (e, p) in payments(events) {
        if canonical_status(&p.provider, &p.status) != "failed" {
            continue;
        }
        if let (Some(device), Some(fingerprint)) = (&p.device_id, &p.card_fingerprint) {
            device_failures
                .entry((&e.tenant_id, device))
                .or_default()
                .push((e.time, p, fingerprint));
        }
    }
    for ((tenant, _), mut list) in device_failures {
        list.sort_by_key(|(t, _, _)| *t);
        for &(t, p, _) in &list {
            let distinct: HashSet<&str> = list
                .iter()
                .filter(|(x, _, _)| *x > t - CARD_TESTING_WINDOW_MS && *x <= t)
                .map(|(_, _, fp)| *fp)
                .collect();
            if distinct.len() >= CARD_TESTING_MIN_FINGERPRINTS {
                raise(tenant, "card_testing", p.payment_id.as_str(), t);
            }
        }
    }

    alerts
        .into_iter()
        .map(|((tenant, rule, subject), t)| vec![s(tenant), s(rule), s(subject), int(t)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// 2026-01-01T00:00:00Z in epoch milliseconds.
    const BASE: Millis = 1_767_225_600_000;
    const MIN: Millis = MINUTE_MS;

    /// RFC 3339 for `BASE + offset` (offset within the first day).
    fn at(offset: Millis) -> String {
        assert!((0..86_400_000).contains(&offset));
        let (h, rest) = (offset / HOUR_MS, offset % HOUR_MS);
        let (m, rest) = (rest / MIN, rest % MIN);
        let (sec, ms) = (rest / 1000, rest % 1000);
        format!("2026-01-01T{h:02}:{m:02}:{sec:02}.{ms:03}Z")
    }

    fn event(id: &str, ty: &str, offset: Millis, fields: Value) -> String {
        event_at(id, ty, &at(offset), fields)
    }

    fn event_at(id: &str, ty: &str, time: &str, fields: Value) -> String {
        let mut v = json!({
            "event_id": id,
            "tenant_id": "t1",
            "type": ty,
            "event_time": time,
            "schema_version": 1,
        });
        for (k, x) in fields.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string()
    }

    fn page_view(id: &str, user: &str, offset: Millis) -> String {
        event(
            id,
            "page_view",
            offset,
            json!({"user_id": user, "url": "/"}),
        )
    }

    fn order(id: &str, user: &str, order_id: &str, offset: Millis, total: i64) -> String {
        event(
            id,
            "order_placed",
            offset,
            json!({
                "user_id": user,
                "order_id": order_id,
                "items": [{"sku": "sku-1", "quantity": 2, "price_cents": total / 2}],
                "total_cents": total,
            }),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn payment(
        id: &str,
        order_id: &str,
        payment_id: &str,
        offset: Millis,
        provider: &str,
        status: &str,
        amount: i64,
        device_fp: Option<(&str, &str)>,
    ) -> String {
        let mut fields = json!({
            "user_id": "u1",
            "order_id": order_id,
            "payment_id": payment_id,
            "provider": provider,
            "status": status,
            "amount_cents": amount,
        });
        if let Some((device, fp)) = device_fp {
            fields["device_id"] = json!(device);
            fields["card_fingerprint"] = json!(fp);
        }
        event(id, "payment", offset, fields)
    }

    fn run(lines: &[String]) -> OracleViews {
        let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        compute(&lines, &Params::default())
    }

    fn strs(v: &[&str]) -> Vec<Cell> {
        v.iter().map(|x| s(x)).collect()
    }

    fn alert(rule: &str, subject: &str, t: Millis) -> Row {
        vec![s("t1"), s(rule), s(subject), int(t)]
    }

    fn alerts_of(out: &OracleViews, rule: &str) -> Vec<Row> {
        out.views["fraud_alerts"]
            .iter()
            .filter(|r| r[1] == s(rule))
            .cloned()
            .collect()
    }

    #[test]
    fn canonical_table_is_exact() {
        assert_eq!(canonical_status("stripe", "succeeded"), "captured");
        assert_eq!(canonical_status("stripe", "processing"), "pending");
        assert_eq!(canonical_status("adyen", "Authorised"), "authorized");
        assert_eq!(canonical_status("adyen", "authorised"), "unknown");
        assert_eq!(canonical_status("paypal", "VOIDED"), "failed");
        assert_eq!(canonical_status("Stripe", "succeeded"), "unknown");
        assert_eq!(canonical_status("klarna", "PENDING"), "unknown");
    }

    #[test]
    fn empty_input_has_all_views() {
        let out = compute(&[], &Params::default());
        let mut names = VIEW_NAMES.to_vec();
        names.sort();
        assert_eq!(out.views.keys().copied().collect::<Vec<_>>(), names);
        assert!(out.views.values().all(Vec::is_empty));
        assert_eq!((out.valid, out.duplicates), (0, 0));
    }

    #[test]
    fn quarantine_and_dedup_counts() {
        let lines = vec![
            "not json".to_string(),
            page_view("e1", "u1", 0),
            page_view("e1", "u1", 5 * MIN), // duplicate: dropped, first counts
            page_view("e2", "u1", MIN),
        ];
        let out = run(&lines);
        assert_eq!(out.valid, 2);
        assert_eq!(out.duplicates, 1);
        assert_eq!(out.quarantined.values().sum::<usize>(), 1);
        assert_eq!(out.quarantined.get("invalid_json"), Some(&1));
        // The duplicate at +5 min would have extended the session.
        assert_eq!(out.views["sessions"][0][3], int(BASE + MIN));
    }

    #[test]
    fn late_event_merges_two_sessions() {
        let a = page_view("e1", "u1", 0);
        let b = page_view("e2", "u1", 40 * MIN);
        let out = run(&[a.clone(), b.clone()]);
        assert_eq!(out.views["sessions"].len(), 2);

        // A late event at +20 min closes both gaps (20 ≤ 30): one session.
        let late = order("e3", "u1", "o1", 20 * MIN, 500);
        let out = run(&[a, b, late]);
        let mut expected = strs(&["t1", "u1"]);
        expected.extend([
            int(BASE),
            int(BASE + 40 * MIN),
            int(3),
            int(2),
            int(0),
            int(1),
            Cell::Bool(true),
        ]);
        assert_eq!(out.views["sessions"], vec![expected]);
        assert_eq!(
            out.views["conversion_hour"],
            vec![vec![s("t1"), int(BASE), int(1), int(1)]]
        );
    }

    #[test]
    fn session_gap_is_strictly_more_than_30_minutes() {
        let out = run(&[
            page_view("e1", "u1", 0),
            page_view("e2", "u1", 30 * MIN),
            page_view("e3", "u1", 60 * MIN + 1),
        ]);
        let starts: Vec<Cell> = out.views["sessions"].iter().map(|r| r[2].clone()).collect();
        assert_eq!(starts, vec![int(BASE), int(BASE + 60 * MIN + 1)]);
        assert_eq!(out.views["sessions"][0][4], int(2));
        let hours: Vec<Row> = out.views["conversion_hour"].clone();
        assert_eq!(
            hours,
            vec![
                vec![s("t1"), int(BASE), int(1), int(0)],
                vec![s("t1"), int(BASE + HOUR_MS), int(1), int(0)],
            ]
        );
    }

    #[test]
    fn cancelled_order_counts_in_gmv_and_releases_inventory() {
        let lines = vec![
            order("e1", "u1", "o1", 10, 1000),
            order("e2", "u2", "o2", 20, 3000),
            event(
                "e3",
                "order_cancelled",
                5 * MIN, // a later minute: still cancels o1
                json!({"user_id": "u1", "order_id": "o1"}),
            ),
            event(
                "e4",
                "inventory_adjusted",
                0,
                json!({"sku": "sku-1", "delta": 10, "reason": "restock"}),
            ),
        ];
        let out = run(&lines);
        assert_eq!(
            out.views["gmv_minute"],
            vec![vec![
                s("t1"),
                s("USD"),
                int(BASE),
                int(2),
                int(4000),
                int(1),
                int(3000)
            ]]
        );
        // Only o2 (pending, no payment) reserves its 2 units.
        assert_eq!(
            out.views["inventory"],
            vec![vec![s("t1"), s("sku-1"), int(10), int(2), int(8)]]
        );
    }

    #[test]
    fn inventory_follows_latest_payment_of_order() {
        let lines = vec![
            order("e1", "u1", "o1", 0, 1000),
            order("e2", "u1", "o2", 0, 1000),
            // o1 captured: no longer reserved
            payment("p1a", "o1", "p1", MIN, "stripe", "succeeded", 1000, None),
            // o2 authorised: still reserved
            payment("p2a", "o2", "p2", MIN, "adyen", "Authorised", 1000, None),
        ];
        let out = run(&lines);
        assert_eq!(
            out.views["inventory"],
            vec![vec![s("t1"), s("sku-1"), int(0), int(2), int(-2)]]
        );
    }

    #[test]
    fn payment_latest_breaks_time_ties_by_event_id() {
        let lines = vec![
            // Same time: "b" > "a", so the captured event is the latest, whatever the arrival.
            payment("b", "o1", "p1", MIN, "stripe", "succeeded", 700, None),
            payment("a", "o1", "p1", MIN, "stripe", "processing", 500, None),
            // An earlier event arriving last changes nothing.
            payment("z", "o1", "p1", 0, "stripe", "refunded", 900, None),
            payment("c", "o2", "p2", 0, "paypal", "weird", 100, None),
        ];
        let out = run(&lines);
        assert_eq!(
            out.views["payment_status"],
            vec![
                vec![s("t1"), s("paypal"), s("unknown"), int(1), int(100)],
                vec![s("t1"), s("stripe"), s("captured"), int(1), int(700)],
            ]
        );
    }

    #[test]
    fn velocity_needs_five_orders_in_ten_minutes() {
        // Four orders within the window: nothing.
        let four: Vec<String> = (0..4)
            .map(|i| order(&format!("e{i}"), "u1", &format!("o{i}"), i * MIN, 100))
            .collect();
        assert!(alerts_of(&run(&four), "velocity").is_empty());

        // A fifth at +4 min flags it (all five in (t-10min, t]).
        let mut five = four.clone();
        five.push(order("e4", "u1", "o4", 4 * MIN, 100));
        assert_eq!(
            alerts_of(&run(&five), "velocity"),
            vec![alert("velocity", "o4", BASE + 4 * MIN)]
        );

        // A fifth exactly 10 minutes after the first: the first falls outside the window.
        let mut edge = four.clone();
        edge.push(order("e4", "u1", "o4", 10 * MIN, 100));
        assert!(alerts_of(&run(&edge), "velocity").is_empty());

        // With a threshold of 4, the fourth order is flagged too.
        let lines: Vec<&[u8]> = five.iter().map(|l| l.as_bytes()).collect();
        let out = compute(
            &lines,
            &Params {
                velocity_threshold: 4,
                ..Params::default()
            },
        );
        assert_eq!(
            alerts_of(&out, "velocity"),
            vec![
                alert("velocity", "o3", BASE + 3 * MIN),
                alert("velocity", "o4", BASE + 4 * MIN)
            ]
        );
    }

    #[test]
    fn card_testing_needs_three_fingerprints_in_five_minutes() {
        let fail = |id: &str, pid: &str, t: Millis, fp: &str| {
            payment(
                id,
                "o1",
                pid,
                t,
                "stripe",
                "payment_failed",
                100,
                Some(("d1", fp)),
            )
        };
        let lines = vec![
            fail("e0", "p0", 0, "fpA"), // outside the window of p3 (exactly 5 min before)
            fail("e1", "p1", 5 * MIN, "fpB"),
            fail("e2", "p2", 5 * MIN + 1, "fpB"),
            fail("e3", "p3", 5 * MIN, "fpC"),
            // A captured payment with a new fingerprint does not count.
            payment(
                "e4",
                "o1",
                "p4",
                5 * MIN,
                "stripe",
                "succeeded",
                100,
                Some(("d1", "fpD")),
            ),
        ];
        assert!(alerts_of(&run(&lines), "card_testing").is_empty());

        // A third distinct fingerprint inside the window flags it and every later failure.
        let mut more = lines.clone();
        more.push(fail("e5", "p5", 6 * MIN, "fpE"));
        assert_eq!(
            alerts_of(&run(&more), "card_testing"),
            vec![alert("card_testing", "p5", BASE + 6 * MIN)]
        );
        more.push(fail("e6", "p5", 7 * MIN, "fpF")); // same subject later: earliest kept
        // A failure with a new fingerprint on another device does not count for d1.
        more.push(payment(
            "e7",
            "o1",
            "p7",
            5 * MIN,
            "stripe",
            "canceled",
            100,
            Some(("d2", "fpG")),
        ));
        assert_eq!(
            alerts_of(&run(&more), "card_testing"),
            vec![alert("card_testing", "p5", BASE + 6 * MIN)]
        );
    }

    #[test]
    fn amount_anomaly() {
        let mut lines: Vec<String> = (0..3)
            .map(|i| order(&format!("e{i}"), "u1", &format!("o{i}"), i * MIN, 10_000))
            .collect();
        // 3 prior orders totalling 30,000: 150,000 × 3 > 5 × 30,000 flags.
        lines.push(order("e3", "u1", "big", 10 * MIN, 150_000));
        // 4 prior orders totalling 180,000: 100,000 × 4 ≤ 5 × 180,000, not flagged.
        lines.push(order("e4", "u1", "later", 20 * MIN, 100_000));
        // Another user with only 2 prior orders (and one at the same time): not flagged.
        lines.push(order("e5", "u2", "x1", 0, 1_000));
        lines.push(order("e6", "u2", "x2", MIN, 1_000));
        lines.push(order("e7", "u2", "x3", 2 * MIN, 1_000));
        lines.push(order("e8", "u2", "huge", MIN, 1_000_000));
        let out = run(&lines);
        assert_eq!(
            alerts_of(&out, "amount_anomaly"),
            vec![alert("amount_anomaly", "big", BASE + 10 * MIN)]
        );
    }

    #[test]
    fn times_before_2000_are_out_of_range() {
        // SPEC §1: event times run from 2000-01-01 on, so no view floors a negative time.
        let out = run(&[event_at(
            "e1",
            "order_placed",
            "1969-12-31T23:59:30.000Z",
            json!({
                "user_id": "u1",
                "order_id": "o1",
                "items": [{"sku": "s", "quantity": 1, "price_cents": 5}],
                "total_cents": 5,
            }),
        )]);
        assert!(out.views["gmv_minute"].is_empty());
        assert_eq!(out.quarantined["invalid_value:event_time"], 1);
    }

    // --------------------------------------------------------------------------------------
    // Validation (SPEC §1)
    // --------------------------------------------------------------------------------------

    /// A valid v2 event of `ty` with `fields` on top (a `null` removes a member).
    fn v2(ty: &str, fields: Value) -> String {
        let mut v = json!({
            "event_id": "e1",
            "tenant_id": "acme",
            "type": ty,
            "event_time": "2026-11-21T07:00:00.123Z",
            "schema_version": 2,
        });
        let base = match ty {
            "page_view" => json!({"user_id": "u", "url": "/"}),
            "add_to_cart" => json!({"user_id": "u", "sku": "S", "quantity": 1, "price_cents": 5}),
            "order_placed" => json!({
                "user_id": "u", "order_id": "o", "total_cents": 5, "currency": "EUR",
                "items": [{"sku": "S", "quantity": 1, "price_cents": 5}],
            }),
            "order_cancelled" => json!({"user_id": "u", "order_id": "o"}),
            "payment" => json!({
                "user_id": "u", "order_id": "o", "payment_id": "p", "provider": "stripe",
                "status": "succeeded", "amount_cents": 5,
            }),
            "inventory_adjusted" => json!({"sku": "S", "delta": -2, "reason": "sold"}),
            _ => json!({}),
        };
        for (k, x) in base
            .as_object()
            .unwrap()
            .iter()
            .chain(fields.as_object().unwrap())
        {
            match x {
                Value::Null => {
                    v.as_object_mut().unwrap().remove(k);
                }
                _ => v[k] = x.clone(),
            }
        }
        v.to_string()
    }

    fn reason(line: &str) -> String {
        match validate(line.as_bytes()) {
            Ok(e) => panic!("admitted: {e:?} from {line}"),
            Err(r) => r,
        }
    }

    fn admitted(line: &str) -> Event {
        validate(line.as_bytes()).unwrap_or_else(|r| panic!("{r}: {line}"))
    }

    #[test]
    fn every_type_validates_when_whole() {
        for ty in EVENT_TYPES {
            let e = admitted(&v2(ty, json!({})));
            assert_eq!(e.time, 1_795_244_400_123, "{ty}");
            assert_eq!((e.tenant_id.as_str(), e.schema_version), ("acme", 2));
        }
    }

    #[test]
    fn each_rule_of_the_contract_has_its_reason() {
        let cases: Vec<(String, &str)> = vec![
            ("{\"event_id\":".into(), "invalid_json"),
            ("[1,2]".into(), "invalid_json"),
            ("\"a string\"".into(), "invalid_json"),
            (
                v2("page_view", json!({"event_id": null})),
                "missing_field:event_id",
            ),
            (
                v2("page_view", json!({"event_id": 7})),
                "wrong_type:event_id",
            ),
            (
                v2("page_view", json!({"event_id": ""})),
                "invalid_value:event_id",
            ),
            (
                v2("page_view", json!({"tenant_id": null})),
                "missing_field:tenant_id",
            ),
            (
                v2("page_view", json!({"tenant_id": "acme corp"})),
                "invalid_value:tenant_id",
            ),
            (
                v2("page_view", json!({"tenant_id": "../globex"})),
                "invalid_value:tenant_id",
            ),
            (
                v2("page_view", json!({"tenant_id": "a".repeat(65)})),
                "invalid_value:tenant_id",
            ),
            (
                v2("page_view", json!({"tenant_id": "acmé"})),
                "invalid_value:tenant_id",
            ),
            (v2("page_view", json!({"type": null})), "missing_field:type"),
            (v2("page_view", json!({"type": 1})), "wrong_type:type"),
            (v2("page_view", json!({"type": "PageView"})), "unknown_type"),
            (
                v2("page_view", json!({"event_time": null})),
                "missing_field:event_time",
            ),
            (
                v2("page_view", json!({"event_time": 1_763_596_800_000_i64})),
                "wrong_type:event_time",
            ),
            (
                v2("page_view", json!({"event_time": "yesterday"})),
                "invalid_value:event_time",
            ),
            (
                v2("page_view", json!({"event_time": "2026-11-21T07:00:00"})),
                "invalid_value:event_time",
            ),
            (
                v2("page_view", json!({"schema_version": null})),
                "missing_field:schema_version",
            ),
            (
                v2("page_view", json!({"schema_version": "2"})),
                "wrong_type:schema_version",
            ),
            (
                v2("page_view", json!({"schema_version": 2.0})),
                "wrong_type:schema_version",
            ),
            (
                v2("page_view", json!({"schema_version": 3})),
                "unsupported_schema_version",
            ),
            (
                v2("page_view", json!({"schema_version": 0})),
                "unsupported_schema_version",
            ),
            (
                v2("page_view", json!({"schema_version": -1})),
                "unsupported_schema_version",
            ),
            (
                v2("page_view", json!({"schema_version": u64::MAX})),
                "unsupported_schema_version",
            ),
            (
                v2("page_view", json!({"user_id": null})),
                "missing_field:user_id",
            ),
            (
                v2("page_view", json!({"user_id": 42})),
                "wrong_type:user_id",
            ),
            (v2("page_view", json!({"url": null})), "missing_field:url"),
            (v2("page_view", json!({"sku": 5})), "wrong_type:sku"),
            (
                v2("page_view", json!({"device_id": false})),
                "wrong_type:device_id",
            ),
            (v2("add_to_cart", json!({"sku": null})), "missing_field:sku"),
            (
                v2("add_to_cart", json!({"quantity": "2"})),
                "wrong_type:quantity",
            ),
            (
                v2("add_to_cart", json!({"quantity": 0})),
                "invalid_value:quantity",
            ),
            (
                v2("add_to_cart", json!({"price_cents": 19.99})),
                "wrong_type:price_cents",
            ),
            (
                v2("add_to_cart", json!({"price_cents": -100})),
                "invalid_value:price_cents",
            ),
            (
                v2("order_placed", json!({"items": null})),
                "missing_field:items",
            ),
            (
                v2("order_placed", json!({"items": []})),
                "invalid_value:items",
            ),
            (
                v2("order_placed", json!({"items": {"sku": "S"}})),
                "wrong_type:items",
            ),
            (
                v2("order_placed", json!({"items": ["S"]})),
                "wrong_type:items",
            ),
            (
                v2(
                    "order_placed",
                    json!({"items": [{"quantity": 1, "price_cents": 1}]}),
                ),
                "missing_field:items.sku",
            ),
            (
                v2(
                    "order_placed",
                    json!({"items": [{"sku": "S", "quantity": "2", "price_cents": 1}]}),
                ),
                "wrong_type:items.quantity",
            ),
            (
                v2(
                    "order_placed",
                    json!({"items": [{"sku": "S", "quantity": 0, "price_cents": 1}]}),
                ),
                "invalid_value:items.quantity",
            ),
            (
                v2(
                    "order_placed",
                    json!({"items": [{"sku": "S", "quantity": 1}]}),
                ),
                "missing_field:items.price_cents",
            ),
            (
                v2("order_placed", json!({"total_cents": "1999"})),
                "wrong_type:total_cents",
            ),
            (
                v2("order_placed", json!({"total_cents": -1})),
                "invalid_value:total_cents",
            ),
            (
                v2("order_placed", json!({"currency": null})),
                "missing_field:currency",
            ),
            (
                v2("order_placed", json!({"currency": "usd"})),
                "invalid_value:currency",
            ),
            (
                v2("order_placed", json!({"currency": "EURO"})),
                "invalid_value:currency",
            ),
            (
                v2("order_placed", json!({"discount_cents": -250})),
                "invalid_value:discount_cents",
            ),
            (
                v2("order_cancelled", json!({"order_id": null})),
                "missing_field:order_id",
            ),
            (
                v2("order_cancelled", json!({"user_id": ["u"]})),
                "wrong_type:user_id",
            ),
            (
                v2("payment", json!({"payment_id": null})),
                "missing_field:payment_id",
            ),
            (
                v2("payment", json!({"provider": null})),
                "missing_field:provider",
            ),
            (v2("payment", json!({"status": true})), "wrong_type:status"),
            (
                v2("payment", json!({"amount_cents": 12.5})),
                "wrong_type:amount_cents",
            ),
            (
                v2("payment", json!({"amount_cents": -500})),
                "invalid_value:amount_cents",
            ),
            (
                v2("payment", json!({"card_fingerprint": 1})),
                "wrong_type:card_fingerprint",
            ),
            (
                v2("payment", json!({"card_number": 4_111_111_111_111_111_i64})),
                "wrong_type:card_number",
            ),
            (
                v2("payment", json!({"card_number": "4111"})),
                "invalid_value:card_number",
            ),
            (
                v2("payment", json!({"card_number": "4111-1111-1111-111x"})),
                "invalid_value:card_number",
            ),
            (
                v2("inventory_adjusted", json!({"delta": "-3"})),
                "wrong_type:delta",
            ),
            (
                v2("inventory_adjusted", json!({"delta": 1.5})),
                "wrong_type:delta",
            ),
            (
                v2("inventory_adjusted", json!({"reason": null})),
                "missing_field:reason",
            ),
            (
                v2("inventory_adjusted", json!({"warehouse": 3})),
                "wrong_type:warehouse",
            ),
        ];
        for (line, want) in &cases {
            assert_eq!(reason(line), *want, "{line}");
        }
        // SPEC §1 inputs are UTF-8: a line that is not is not JSON either.
        let mut not_utf8 = v2("page_view", json!({"url": "/"})).into_bytes();
        let at = not_utf8.len() - 2;
        not_utf8.insert(at, 0xff);
        assert_eq!(validate(&not_utf8), Err("invalid_json".to_owned()));
    }

    #[test]
    fn the_size_limit_is_64_kib_of_the_line() {
        let pad = |total: usize| {
            let line = v2("page_view", json!({"url": ""}));
            let url = "x".repeat(total - line.len());
            v2("page_view", json!({"url": url}))
        };
        assert_eq!(pad(MAX_EVENT_BYTES).len(), MAX_EVENT_BYTES);
        admitted(&pad(MAX_EVENT_BYTES));
        assert_eq!(reason(&pad(MAX_EVENT_BYTES + 1)), "oversize");
        // Size comes first: a huge line that is not JSON is oversize, not invalid JSON.
        assert_eq!(reason(&"{".repeat(MAX_EVENT_BYTES + 1)), "oversize");
    }

    #[test]
    fn every_range_admits_its_bounds_and_quarantines_one_past() {
        let item =
            |q: i64, p: i64| json!({"items": [{"sku": "S", "quantity": q, "price_cents": p}]});
        let cases: Vec<(&str, Value, Value, &str)> = vec![
            (
                "add_to_cart",
                json!({"quantity": 1}),
                json!({"quantity": 0}),
                "quantity",
            ),
            (
                "add_to_cart",
                json!({"quantity": MAX_QUANTITY}),
                json!({"quantity": MAX_QUANTITY + 1}),
                "quantity",
            ),
            (
                "add_to_cart",
                json!({"price_cents": 0}),
                json!({"price_cents": -1}),
                "price_cents",
            ),
            (
                "add_to_cart",
                json!({"price_cents": MAX_CENTS}),
                json!({"price_cents": MAX_CENTS + 1}),
                "price_cents",
            ),
            (
                "order_placed",
                item(MAX_QUANTITY, 1),
                item(MAX_QUANTITY + 1, 1),
                "items.quantity",
            ),
            (
                "order_placed",
                item(1, MAX_CENTS),
                item(1, MAX_CENTS + 1),
                "items.price_cents",
            ),
            ("order_placed", item(1, 0), item(1, -1), "items.price_cents"),
            (
                "order_placed",
                json!({"total_cents": MAX_CENTS}),
                json!({"total_cents": MAX_CENTS + 1}),
                "total_cents",
            ),
            (
                "order_placed",
                json!({"discount_cents": MAX_CENTS}),
                json!({"discount_cents": MAX_CENTS + 1}),
                "discount_cents",
            ),
            (
                "payment",
                json!({"amount_cents": MAX_CENTS}),
                json!({"amount_cents": MAX_CENTS + 1}),
                "amount_cents",
            ),
            (
                "payment",
                json!({"amount_cents": 0}),
                json!({"amount_cents": i64::MIN}),
                "amount_cents",
            ),
            (
                "payment",
                json!({"amount_cents": 0}),
                json!({"amount_cents": u64::MAX}),
                "amount_cents",
            ),
            (
                "inventory_adjusted",
                json!({"delta": MAX_CENTS}),
                json!({"delta": MAX_CENTS + 1}),
                "delta",
            ),
            (
                "inventory_adjusted",
                json!({"delta": -MAX_CENTS}),
                json!({"delta": -MAX_CENTS - 1}),
                "delta",
            ),
            (
                "inventory_adjusted",
                json!({"delta": 0}),
                json!({"delta": i64::MAX}),
                "delta",
            ),
            (
                "page_view",
                json!({"event_time": "2000-01-01T00:00:00Z"}),
                json!({"event_time": "1999-12-31T23:59:59.999Z"}),
                "event_time",
            ),
            (
                "page_view",
                json!({"event_time": "2099-12-31T23:59:59.999Z"}),
                json!({"event_time": "2100-01-01T00:00:00Z"}),
                "event_time",
            ),
            (
                "page_view",
                // The bound is an instant: an offset moves a local time across it.
                json!({"event_time": "2000-01-01T01:00:00+01:00"}),
                json!({"event_time": "2000-01-01T00:59:59.999+01:00"}),
                "event_time",
            ),
            (
                "page_view",
                json!({"event_time": "2099-12-31T19:59:59.9999-04:00"}),
                json!({"event_time": "2099-12-31T20:00:00-04:00"}),
                "event_time",
            ),
        ];
        for (ty, inside, outside, field) in cases {
            admitted(&v2(ty, inside.clone()));
            assert_eq!(
                reason(&v2(ty, outside.clone())),
                format!("invalid_value:{field}"),
                "{ty} {outside}"
            );
        }
    }

    #[test]
    fn the_time_bounds_are_the_calendar_instants() {
        assert_eq!(EARLIEST_EVENT_MS, days_from_civil(2000, 1, 1) * 86_400_000);
        assert_eq!(END_EVENT_MS, days_from_civil(2100, 1, 1) * 86_400_000);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn event_times_are_rfc_3339_with_an_offset_floored_to_the_millisecond() {
        let t = |s: &str| parse_rfc3339(s);
        let base = Some(1_795_244_400_000);
        assert_eq!(t("2026-11-21T07:00:00Z"), base);
        assert_eq!(t("2026-11-21t07:00:00z"), base);
        assert_eq!(t("2026-11-21 07:00:00Z"), base);
        assert_eq!(t("2026-11-21T08:00:00+01:00"), base);
        assert_eq!(t("2026-11-21T06:30:00-00:30"), base);
        assert_eq!(t("2026-11-21T07:00:00-00:00"), base);
        assert_eq!(t("2026-11-21T07:00:00.5Z"), base.map(|b| b + 500));
        assert_eq!(
            t("2026-11-21T07:00:00.123999999999Z"),
            base.map(|b| b + 123)
        );
        assert_eq!(t("2026-11-21T06:59:60Z"), base);
        assert_eq!(t("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        for bad in [
            "2026-11-21T07:00:00",
            "2026-11-21T07:00Z",
            "2026-11-21T07:00:00+0100",
            "2026-11-21T07:00:00+01",
            "2026-11-21T07:00:00+24:00",
            "2026-11-21T07:00:00+01:60",
            "2026-11-21T07:00:00.Z",
            "2026-11-21T07:00:00,5Z",
            "2026-11-21T07:00:00 Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T07:60:00Z",
            "2026-11-21T07:00:61Z",
            "2026-02-29T07:00:00Z",
            "2100-02-29T07:00:00Z",
            "2026-13-01T07:00:00Z",
            "2026-00-01T07:00:00Z",
            "2026-11-31T07:00:00Z",
            "2026-1-21T07:00:00Z",
            "+2026-11-21T07:00:00Z",
            "2026-11-21_07:00:00Z",
            "2026-11-21T07:00:00Zjunk",
            "１９７０-01-01T00:00:00Z",
            "",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn checks_run_in_field_order() {
        // Several faults: the first field in SPEC's order names the reason.
        let cases = [
            (
                json!({"event_id": "", "tenant_id": "a b"}),
                "invalid_value:event_id",
            ),
            (
                json!({"tenant_id": "a b", "type": "refund"}),
                "invalid_value:tenant_id",
            ),
            (
                json!({"type": 7, "event_time": "yesterday"}),
                "wrong_type:type",
            ),
            (
                json!({"type": "refund", "event_time": "yesterday"}),
                "invalid_value:event_time",
            ),
            (
                json!({"event_time": "yesterday", "schema_version": 3}),
                "invalid_value:event_time",
            ),
            (
                json!({"type": "refund", "schema_version": 3}),
                "unsupported_schema_version",
            ),
            (
                json!({"schema_version": 3, "user_id": 5}),
                "unsupported_schema_version",
            ),
            (json!({"type": "refund", "user_id": 5}), "unknown_type"),
            (json!({"user_id": 5, "url": null}), "wrong_type:user_id"),
            (json!({"url": null, "sku": 5}), "missing_field:url"),
        ];
        for (fields, want) in cases {
            let line = v2("page_view", fields.clone());
            assert_eq!(reason(&line), want, "{line}");
        }
        let order = v2(
            "order_placed",
            json!({"items": [{"sku": "A", "quantity": 1, "price_cents": -1}, {"sku": 7}], "total_cents": -1, "currency": "x"}),
        );
        assert_eq!(reason(&order), "invalid_value:items.price_cents");
        let payment = v2("payment", json!({"amount_cents": -1, "card_number": "1"}));
        assert_eq!(reason(&payment), "invalid_value:amount_cents");
        // Size and JSON come before every field.
        assert_eq!(reason("{\"event_id\": 7"), "invalid_json");
    }

    #[test]
    fn nulls_are_absent_only_where_a_field_is_optional() {
        let line = |fields: &str| {
            format!(
                r#"{{"event_id":"e","tenant_id":"t","type":"payment","event_time":"2026-11-21T07:00:00Z","schema_version":1,"user_id":"u","order_id":"o","payment_id":"p","provider":"x","status":"y","amount_cents":1{fields}}}"#
            )
        };
        let e = admitted(&line(
            r#","device_id":null,"card_fingerprint":null,"card_number":null"#,
        ));
        let Body::Payment(p) = e.body else { panic!() };
        assert_eq!(
            (p.device_id, p.card_fingerprint, p.card),
            (None, None, None)
        );
        assert_eq!(reason(&line(r#","user_id":null"#)), "wrong_type:user_id");
        let order = v2("order_placed", json!({}));
        let order = order.replace(
            r#""currency":"EUR""#,
            r#""currency":"EUR","discount_cents":null"#,
        );
        let Body::OrderPlaced(o) = admitted(&order).body else {
            panic!()
        };
        assert_eq!(o.discount_cents, 0);
    }

    #[test]
    fn a_v1_order_is_usd_and_ignores_the_v2_fields() {
        let line = v2(
            "order_placed",
            json!({"schema_version": 1, "currency": "eur!", "discount_cents": "lots"}),
        );
        let Body::OrderPlaced(o) = admitted(&line).body else {
            panic!()
        };
        assert_eq!((o.currency.as_str(), o.discount_cents), ("USD", 0));
        let line = v2("order_placed", json!({"discount_cents": 70}));
        let Body::OrderPlaced(o) = admitted(&line).body else {
            panic!()
        };
        assert_eq!((o.currency.as_str(), o.discount_cents), ("EUR", 70));
    }

    #[test]
    fn identifiers_are_counted_in_characters_and_extra_fields_are_ignored() {
        admitted(&v2("page_view", json!({"event_id": "é".repeat(128)})));
        assert_eq!(
            reason(&v2("page_view", json!({"event_id": "é".repeat(129)}))),
            "invalid_value:event_id"
        );
        admitted(&v2(
            "page_view",
            json!({"tenant_id": "A-z_09".repeat(10) + "abcd"}),
        ));
        admitted(&v2(
            "page_view",
            json!({"extra": {"nested": [1, null]}, "gateway": 1.5}),
        ));
    }

    #[test]
    fn a_card_number_becomes_bin_and_last4_and_the_cvv_goes() {
        let line = v2(
            "payment",
            json!({"card_number": "4111 1111-1111 1234", "cvv": "987"}),
        );
        let Body::Payment(p) = admitted(&line).body else {
            panic!()
        };
        assert_eq!(p.card, Some(("411111".into(), "1234".into())));
        assert_eq!(
            mask_card("4111111111111234"),
            Some(("411111".into(), "1234".into()))
        );
        assert_eq!(mask_card("12345678901"), None);
        assert_eq!(
            mask_card("123456789012"),
            Some(("123456".into(), "9012".into()))
        );
        assert_eq!(mask_card("12345678901234567890"), None);
        assert_eq!(mask_card("4111 1111 1111 123a"), None);

        let mut v = json!({
            "card_number": "4111111111111234",
            "cvv": 321,
            "nested": [{"card_number": "5500-0000-0000-0004", "cvv": "1"}],
            "bad": {"card_number": "12"},
        });
        mask_value(&mut v);
        assert_eq!(
            v,
            json!({
                "card_bin": "411111", "card_last4": "1234",
                "nested": [{"card_bin": "550000", "card_last4": "0004"}],
                "bad": {},
            })
        );
    }

    #[test]
    fn a_later_copy_counts_once_per_tenant_and_event_id() {
        let a = v2("page_view", json!({"event_id": "d1"}));
        let b = v2(
            "page_view",
            json!({"event_id": "d1", "tenant_id": "globex"}),
        );
        let broken = "{\"event_id\":\"d1\", broken".to_owned();
        let out = run(&[broken, a.clone(), b, a]);
        assert_eq!((out.valid, out.duplicates), (2, 1));
        assert_eq!(out.quarantined["invalid_json"], 1);
        let lines: Vec<usize> = out.admitted.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, vec![1, 2]);
    }

    // --------------------------------------------------------------------------------------
    // Lateness (SPEC §2.7)
    // --------------------------------------------------------------------------------------

    /// A page view of `tenant` at `BASE + offset`.
    fn view_of(tenant: &str, id: &str, offset: Millis) -> String {
        event(
            id,
            "page_view",
            offset,
            json!({"tenant_id": tenant, "user_id": "u1", "url": "/"}),
        )
    }

    fn run_with(lines: &[String], params: &Params) -> OracleViews {
        let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        compute(&lines, params)
    }

    fn late_after(ms: Millis, epoch_lines: usize) -> Params {
        Params {
            lateness: Some(Lateness { ms, epoch_lines }),
            ..Params::default()
        }
    }

    fn admitted_lines(out: &OracleViews) -> Vec<usize> {
        out.admitted.iter().map(|(line, _)| *line).collect()
    }

    fn too_late(out: &OracleViews) -> usize {
        out.quarantined.get("too_late").copied().unwrap_or(0)
    }

    #[test]
    fn one_tenants_clock_does_not_make_another_tenants_events_late() {
        let lines = vec![
            view_of("a", "e1", 60 * MIN),
            view_of("b", "e1", 5 * MIN),
            view_of("a", "e2", 0),
            view_of("b", "e2", 0),
            view_of("c", "e1", 0),
        ];
        let out = run_with(&lines, &late_after(10 * MIN, 1));
        // a's watermark (60 min) makes its own event at 0 late; b's (5 min) does not make b's
        // late, and c has no watermark at all.
        assert_eq!(admitted_lines(&out), vec![0, 1, 3, 4]);
        assert_eq!((too_late(&out), out.duplicates, out.valid), (1, 0, 4));
    }

    #[test]
    fn the_watermark_counts_only_earlier_logical_times() {
        let lines = vec![
            view_of("a", "e1", 60 * MIN), // logical time 0 raises the watermark to 60 min
            view_of("a", "e2", 0),        // logical time 0: not yet behind it
            view_of("a", "e3", 0),        // logical time 1: more than 10 min behind 60 min
            view_of("a", "e4", 50 * MIN), // logical time 1: exactly W − L is not late
        ];
        let out = run_with(&lines, &late_after(10 * MIN, 2));
        assert_eq!(admitted_lines(&out), vec![0, 1, 3]);
        assert_eq!(too_late(&out), 1);
        // One line per logical time: the second line already sees the first.
        let out = run_with(&lines, &late_after(10 * MIN, 1));
        assert_eq!(admitted_lines(&out), vec![0, 3]);
        assert_eq!(too_late(&out), 2);
        // 0 lines per logical time is one.
        assert_eq!(run_with(&lines, &late_after(10 * MIN, 0)), out);
        // The watermark is the greatest time so far, not the latest: an event at 50 min in
        // logical time 1 leaves it at 60 min for logical time 2.
        let mut more = lines.clone();
        more.push(view_of("a", "e5", 49 * MIN));
        let out = run_with(&more, &late_after(10 * MIN, 2));
        assert_eq!(admitted_lines(&out), vec![0, 1, 3]);
        assert_eq!(too_late(&out), 2);
    }

    #[test]
    fn a_late_copy_of_an_admitted_event_is_too_late_not_a_duplicate() {
        let lines = vec![
            view_of("a", "e1", 0),
            view_of("a", "e2", 60 * MIN),
            view_of("a", "e1", 0),        // late: judged before dedup
            view_of("a", "e2", 60 * MIN), // within L and remembered: a duplicate
        ];
        let out = run_with(&lines, &late_after(10 * MIN, 1));
        assert_eq!(admitted_lines(&out), vec![0, 1]);
        assert_eq!((too_late(&out), out.duplicates, out.valid), (1, 1, 2));
        assert_eq!(out.quarantined.values().sum::<usize>(), 1);
    }

    #[test]
    fn a_copy_of_a_forgotten_event_is_admitted_again() {
        let lines = vec![
            view_of("a", "e1", 0),
            view_of("a", "e2", 60 * MIN),
            // Same id, first copy at 0 is older than W − L = 50 min: forgotten. This copy at
            // 55 min is within L, so it counts as new.
            view_of("a", "e1", 55 * MIN),
            // Now the remembered copy is the one at 55 min, within L: a duplicate.
            view_of("a", "e1", 55 * MIN),
        ];
        let out = run_with(&lines, &late_after(10 * MIN, 1));
        assert_eq!(admitted_lines(&out), vec![0, 1, 2]);
        assert_eq!((too_late(&out), out.duplicates, out.valid), (0, 1, 3));
        // Both copies of e1 are in the views: two sessions, the second with two views.
        let counts: Vec<Cell> = out.views["sessions"].iter().map(|r| r[4].clone()).collect();
        assert_eq!(counts, vec![int(1), int(2)]);
        // Remembered forever without lateness.
        let out = run_with(&lines, &Params::default());
        assert_eq!(admitted_lines(&out), vec![0, 1]);
        assert_eq!(out.duplicates, 2);
    }

    #[test]
    fn a_readmitted_order_is_judged_by_its_own_line() {
        let lines = vec![
            order("e1", "u1", "o1", 0, 100),
            order("e2", "u1", "o2", 60 * MIN, 100),
            order("e1", "u1", "o3", 55 * MIN, 100), // the forgotten e1, admitted again
        ];
        let params = Params {
            velocity_switch: Some((2, 1)),
            ..late_after(10 * MIN, 1)
        };
        let out = run_with(&lines, &params);
        assert_eq!(admitted_lines(&out), vec![0, 1, 2]);
        // Only the copy from line 2 is judged with threshold 1; o1 keeps the 5 of line 0.
        assert_eq!(
            alerts_of(&out, "velocity"),
            vec![alert("velocity", "o3", BASE + 55 * MIN)]
        );
    }

    #[test]
    fn a_retroactive_switch_leaves_orders_past_the_lateness_with_their_verdicts() {
        let lines = vec![
            order("e1", "u1", "o1", 0, 100),
            order("e2", "u2", "o2", 50 * MIN, 100),
            order("e3", "u3", "o3", 60 * MIN, 100),
            order("e4", "u4", "o4", 65 * MIN, 100),
        ];
        // Switched at line 3 (logical time 3): W = 60 min there, so the cutoff is 50 min.
        let params = Params {
            velocity_switch: Some((3, 1)),
            velocity_retroactive: true,
            ..late_after(10 * MIN, 1)
        };
        let alerted = |params: &Params| -> Vec<String> {
            let out = run_with(&lines, params);
            let mut subjects: Vec<String> = alerts_of(&out, "velocity")
                .into_iter()
                .map(|row| match &row[2] {
                    Cell::Str(s) => s.clone(),
                    other => panic!("subject {other:?}"),
                })
                .collect();
            subjects.sort();
            subjects
        };
        assert_eq!(alerted(&params), vec!["o2", "o3", "o4"]);
        // Without a lateness every earlier order is judged again.
        let everything = Params {
            lateness: None,
            ..params.clone()
        };
        assert_eq!(alerted(&everything), vec!["o1", "o2", "o3", "o4"]);
        // From now on: only the switch line's order and later.
        let from_now = Params {
            velocity_retroactive: false,
            ..params
        };
        assert_eq!(alerted(&from_now), vec!["o4"]);
    }

    #[test]
    fn without_lateness_nothing_is_late() {
        let lines = vec![
            view_of("a", "e1", 10 * HOUR_MS),
            view_of("a", "e2", 0), // ten hours behind
            view_of("a", "e1", 10 * HOUR_MS),
        ];
        let out = run_with(&lines, &Params::default());
        assert_eq!(admitted_lines(&out), vec![0, 1]);
        assert_eq!((too_late(&out), out.duplicates), (0, 1));
        assert_eq!(out, run(&lines));
        // The same input with an hour of lateness drops the old event.
        let out = run_with(&lines, &late_after(HOUR_MS, 1));
        assert_eq!(admitted_lines(&out), vec![0]);
        assert_eq!((too_late(&out), out.duplicates), (1, 1));
    }

    #[test]
    fn extreme_lateness_does_not_overflow() {
        let lines = vec![view_of("a", "e1", HOUR_MS), view_of("a", "e2", 0)];
        let out = run_with(&lines, &late_after(Millis::MAX, 1));
        assert_eq!((out.valid, too_late(&out)), (2, 0));
        // A negative L puts W − L above every time: everything after the first is late.
        let out = run_with(&lines, &late_after(Millis::MIN, 1));
        assert_eq!((out.valid, too_late(&out)), (1, 1));
    }
}
