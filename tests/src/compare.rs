//! Comparing a federated result with the oracle's.
//!
//! Rows are compared as multisets (both sides sorted the same way), cells by
//! value across integer widths, floats within 1e-9 relative.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::ScalarValue;

/// A normalised cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i128),
    Float(f64),
    Text(String),
}

impl Cell {
    fn sort_key(&self) -> String {
        match self {
            Cell::Null => "\0".into(),
            Cell::Int(i) => format!("i{i:040}"),
            Cell::Float(f) => format!("f{f:.6e}"),
            Cell::Text(s) => format!("s{s}"),
        }
    }
}

fn cell(v: ScalarValue) -> Cell {
    if v.is_null() {
        return Cell::Null;
    }
    match v {
        ScalarValue::Int8(Some(x)) => Cell::Int(x.into()),
        ScalarValue::Int16(Some(x)) => Cell::Int(x.into()),
        ScalarValue::Int32(Some(x)) => Cell::Int(x.into()),
        ScalarValue::Int64(Some(x)) => Cell::Int(x.into()),
        ScalarValue::UInt8(Some(x)) => Cell::Int(x.into()),
        ScalarValue::UInt16(Some(x)) => Cell::Int(x.into()),
        ScalarValue::UInt32(Some(x)) => Cell::Int(x.into()),
        ScalarValue::UInt64(Some(x)) => Cell::Int(x.into()),
        ScalarValue::Float32(Some(x)) => Cell::Float(x.into()),
        ScalarValue::Float64(Some(x)) => Cell::Float(x),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Cell::Text(s),
        other => Cell::Text(other.to_string()),
    }
}

/// All rows of `batches`, normalised and sorted.
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<Cell>> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let row = b
                .columns()
                .iter()
                .map(|c| {
                    ScalarValue::try_from_array(c, r)
                        .map(cell)
                        .unwrap_or(Cell::Text("<err>".into()))
                })
                .collect();
            out.push(row);
        }
    }
    out.sort_by_cached_key(|r: &Vec<Cell>| r.iter().map(Cell::sort_key).collect::<Vec<_>>());
    out
}

fn close(a: f64, b: f64) -> bool {
    if a == b {
        return true;
    }
    let scale = a.abs().max(b.abs());
    (a - b).abs() <= 1e-9 * scale.max(1e-300) || (a - b).abs() < 1e-12
}

fn cells_equal(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Float(x), Cell::Float(y)) => close(*x, *y),
        (Cell::Float(x), Cell::Int(y)) | (Cell::Int(y), Cell::Float(x)) => close(*x, *y as f64),
        _ => a == b,
    }
}

/// `None` when equal, else a description of the first difference (test
/// output only: synthetic data).
pub fn diff(federated: &[RecordBatch], oracle: &[RecordBatch]) -> Option<String> {
    diff_rows(&rows(federated), &rows(oracle), |_, a, b| cells_equal(a, b))
}

/// The first difference of two sorted row lists under `equal(column, …)`.
fn diff_rows(
    f: &[Vec<Cell>],
    o: &[Vec<Cell>],
    equal: impl Fn(usize, &Cell, &Cell) -> bool,
) -> Option<String> {
    if f.len() != o.len() {
        return Some(format!(
            "{} federated rows vs {} oracle rows",
            f.len(),
            o.len()
        ));
    }
    for (i, (a, b)) in f.iter().zip(o).enumerate() {
        let same = a.len() == b.len()
            && a.iter()
                .zip(b)
                .enumerate()
                .all(|(j, (x, y))| equal(j, x, y));
        if !same {
            return Some(format!("row {i}: federated {a:?} vs oracle {b:?}"));
        }
    }
    None
}

fn is_zero(c: &Cell) -> bool {
    matches!(c, Cell::Int(0)) || matches!(c, Cell::Float(x) if *x == 0.0)
}

/// [`diff`] with the documented withholding applied to the oracle's side,
/// for queries whose first `keys` columns are their group keys: a cell on
/// no patient is withheld (NULL), whatever the threshold, so an oracle
/// cell of 0 may be NULL in the federation; and an aggregate without GROUP
/// BY over no patient at all releases no row, so an oracle row whose
/// cells are all empty (a scalar release over nobody, alone or labelled as
/// a branch of a UNION ALL) may be missing from the federation.
pub fn diff_withheld(
    federated: &[RecordBatch],
    oracle: &[RecordBatch],
    keys: usize,
) -> Option<String> {
    let f = rows(federated);
    let mut o = rows(oracle);
    let empty = |r: &Vec<Cell>| r[keys..].iter().all(|c| *c == Cell::Null || is_zero(c));
    let key_of = |r: &Vec<Cell>| r[..keys].iter().map(Cell::sort_key).collect::<Vec<_>>();
    let released: std::collections::HashSet<Vec<String>> = f.iter().map(key_of).collect();
    o.retain(|r| !empty(r) || released.contains(&key_of(r)));
    diff_rows(&f, &o, |j, x, y| {
        cells_equal(x, y) || (j >= keys && *x == Cell::Null && is_zero(y))
    })
}

/// Every cell of `batches` (numeric columns only) as a float, NULL as NaN,
/// row by row in order: for statistics compared against reference
/// libraries, which speak floats.
pub fn floats(batches: &[RecordBatch]) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    for b in batches {
        let columns: Vec<_> = b
            .columns()
            .iter()
            .map(|c| {
                cast(c, &DataType::Float64)
                    .expect("a numeric column")
                    .as_primitive::<Float64Type>()
                    .clone()
            })
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| if c.is_null(r) { f64::NAN } else { c.value(r) })
                    .collect(),
            );
        }
    }
    out
}
