//! Helpers shared by the test modules: seeded inputs, runs, Parquet read-back.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use arrow_array::{Array, BooleanArray, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use weir::generator::{GenConfig, Generator};
use weir::row::{Cell, Row, VIEWS};
use weir::run::{RunConfig, RunResult, run_bounded};

/// A small deterministic PRNG for test input mangling (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Generated lines for `seed`, then mangled further: shuffled within windows of `window`
/// lines (the generator emits in near time order, so a window spans minutes to hours of event
/// time), extra exact duplicates moved later, and extra malformed lines.
pub fn mangled_input(seed: u64, lines: usize, window: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut out: Vec<String> = Generator::new(GenConfig {
        seed,
        tenants: 3,
        start_ms: GenConfig::DEFAULT_START_MS,
    })
    .take(lines)
    .collect();
    for chunk in out.chunks_mut(window.max(2)) {
        for i in (1..chunk.len()).rev() {
            let j = rng.below(i + 1);
            chunk.swap(i, j);
        }
    }
    let extra = lines / 50;
    for _ in 0..extra {
        let from = rng.below(out.len());
        let to = (from + rng.below(window.max(2) * 4)).min(out.len());
        let copy = out[from].clone();
        out.insert(to, copy);
    }
    for k in 0..extra / 4 {
        let at = rng.below(out.len());
        let bad = match k % 4 {
            0 => out[at][..out[at].len() / 2].to_owned(),
            1 => out[at].replacen("\"schema_version\":", "\"schema_version\":9,\"x\":", 1),
            2 => out[at].replacen("\"tenant_id\":\"", "\"tenant_id\":\"bad tenant ", 1),
            _ => "\u{0}\u{1} garbage".to_owned(),
        };
        out.insert(at, bad);
    }
    out
}

pub fn run_lines(lines: &[String], config: &RunConfig) -> RunResult {
    let text = lines.join("\n");
    run_bounded(config, text.as_bytes()).expect("bounded run")
}

/// The published rows of every view, by name.
pub fn views_of(result: &RunResult) -> BTreeMap<&'static str, Vec<Row>> {
    result.store.read(|p| {
        VIEWS
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name, p.rows(i)))
            .collect()
    })
}

/// Asserts two view sets are equal, naming the first differing rows of each view.
pub fn assert_views_eq(
    got: &BTreeMap<&'static str, Vec<Row>>,
    want: &BTreeMap<&'static str, Vec<Row>>,
    context: &str,
) {
    for view in VIEWS {
        let g = &got[view.name];
        let w = &want[view.name];
        if g != w {
            let missing: Vec<_> = w.iter().filter(|r| !g.contains(r)).take(5).collect();
            let extra: Vec<_> = g.iter().filter(|r| !w.contains(r)).take(5).collect();
            panic!(
                "{context}: view {} differs ({} rows vs oracle {}); missing {missing:?}; extra {extra:?}",
                view.name,
                g.len(),
                w.len()
            );
        }
    }
}

/// Reads a Parquet file back as rows of cells.
pub fn read_parquet(path: &Path) -> (Vec<String>, Vec<Row>) {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut names = Vec::new();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        names = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for r in 0..batch.num_rows() {
            let row = batch
                .columns()
                .iter()
                .map(|col| {
                    let any = col.as_any();
                    if let Some(a) = any.downcast_ref::<Int64Array>() {
                        Cell::Int(a.value(r))
                    } else if let Some(a) = any.downcast_ref::<StringArray>() {
                        Cell::Str(a.value(r).to_owned())
                    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
                        Cell::Bool(a.value(r))
                    } else {
                        panic!("unexpected column type {:?}", col.data_type())
                    }
                })
                .collect();
            rows.push(row);
        }
    }
    (names, rows)
}

/// A fresh, empty scratch directory under the target directory.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
