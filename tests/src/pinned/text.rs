//! The text of a result as a pinned file holds it (see the parent
//! module): cells never blank, floats rounded, plans a line a row, and
//! metadata without what changes from run to run.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::arrow::util::display::array_value_to_string;
use ihdsi_cli::client::QueryResult;
use sqllogictest::{DBOutput, DefaultColumnType};

const NULL: &str = "NULL";
const EMPTY: &str = "(empty)";
/// Significant digits of a float cell.
const SIGNIFICANT: i32 = 6;

/// The result's rows as text cells.
pub(super) fn result_rows(result: &QueryResult) -> DBOutput<DefaultColumnType> {
    let types = result
        .schema
        .fields()
        .iter()
        .map(|f| column_type(f.data_type()))
        .collect();
    let mut rows = Vec::new();
    for batch in &result.batches {
        for row in 0..batch.num_rows() {
            let cells = batch
                .columns()
                .iter()
                .map(|c| cell(value(c, row)))
                .collect();
            rows.extend(lines_of(cells));
        }
    }
    DBOutput::Rows { types, rows }
}

/// The result's metadata that does not change from run to run, sorted.
pub(super) fn metadata_rows(result: &QueryResult) -> DBOutput<DefaultColumnType> {
    let schema = &result.schema;
    let mut rows: Vec<Vec<String>> = schema
        .metadata()
        .iter()
        .filter(|(key, _)| key.as_str() != "ihdsi.query_id" && !key.contains("elapsed"))
        .map(|(key, v)| vec![key.clone(), cell(stable(key, v))])
        .collect();
    for field in schema.fields().iter() {
        for (key, v) in field.metadata() {
            if key.starts_with("ihdsi.") {
                rows.push(vec![format!("{}:{key}", field.name()), cell(v.clone())]);
            }
        }
    }
    rows.sort();
    DBOutput::Rows {
        types: vec![DefaultColumnType::Text, DefaultColumnType::Text],
        rows,
    }
}

/// `value` of metadata `key` in an order that does not depend on which
/// site answered first.
fn stable(key: &str, value: &str) -> String {
    if key != "ihdsi.sites" {
        return value.to_string();
    }
    let mut sites: Vec<&str> = value.split(',').collect();
    sites.sort_unstable();
    sites.join(",")
}

fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

/// A cell's text as the file holds it: never blank, which would end the
/// record.
fn cell(text: String) -> String {
    if text.trim().is_empty() {
        EMPTY.to_string()
    } else {
        text
    }
}

/// Row `row` of `array` as text (see the module documentation).
fn value(array: &ArrayRef, row: usize) -> String {
    if array.is_null(row) {
        return NULL.to_string();
    }
    match array.data_type() {
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::List(_) => list(&array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => list(&array.as_list::<i64>().value(row)),
        DataType::Struct(_) => {
            let s = array.as_struct();
            let fields: Vec<String> = s
                .column_names()
                .into_iter()
                .zip(s.columns())
                .map(|(name, column)| format!("{name}: {}", value(column, row)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        _ => array_value_to_string(array, row).unwrap_or_else(|e| format!("<{e}>")),
    }
}

fn list(items: &ArrayRef) -> String {
    let items: Vec<String> = (0..items.len()).map(|i| value(items, i)).collect();
    format!("[{}]", items.join(", "))
}

/// `x` to [`SIGNIFICANT`] digits, without trailing zeros; scientific
/// notation outside 1e-4 ..= 1e15.
fn float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        let sign = if x < 0.0 { "-" } else { "" };
        return format!("{sign}Infinity");
    }
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..=14).contains(&magnitude) {
        return format!("{x:.5e}");
    }
    let text = if magnitude < SIGNIFICANT {
        let decimals = usize::try_from(SIGNIFICANT - 1 - magnitude).unwrap_or(0);
        format!("{x:.decimals$}")
    } else {
        let scale = 10f64.powi(magnitude + 1 - SIGNIFICANT);
        format!("{:.0}", (x / scale).round() * scale)
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// One result row as the file's rows: a multi-line last cell continues
/// on rows of its own, one per line, its indentation shown as `-`;
/// line breaks in other cells are written `\n`.
fn lines_of(mut cells: Vec<String>) -> Vec<Vec<String>> {
    let multiline = cells.last().is_some_and(|c| c.contains('\n'));
    let tail = if multiline { cells.pop() } else { None };
    for c in &mut cells {
        if c.contains('\n') {
            *c = c.replace('\n', "\\n");
        }
    }
    let mut rows = Vec::new();
    if !cells.is_empty() {
        rows.push(cells);
    }
    if let Some(text) = tail {
        rows.extend(text.lines().map(|line| {
            let content = line.trim_start();
            let indent = "-".repeat(line.len() - content.len());
            vec![cell(format!("{indent}{content}"))]
        }));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_keep_six_significant_digits() {
        assert_eq!(float(0.1 + 0.2), "0.3");
        assert_eq!(float(2.0 / 3.0), "0.666667");
        assert_eq!(float(1234567.0), "1234570");
        assert_eq!(float(365.0), "365");
        assert_eq!(float(-0.000123456789), "-0.000123457");
        assert_eq!(float(0.0000123), "1.23000e-5");
        assert_eq!(float(-0.0), "0");
    }

    #[test]
    fn a_plan_continues_a_line_a_row() {
        let rows = lines_of(vec![
            "coordinator_plan".into(),
            "Projection: a\n  Aggregate: b\n\n".into(),
        ]);
        assert_eq!(
            rows,
            vec![
                vec!["coordinator_plan".to_string()],
                vec!["Projection: a".to_string()],
                vec!["--Aggregate: b".to_string()],
                vec![EMPTY.to_string()],
            ]
        );
        assert_eq!(
            lines_of(vec!["a\nb".into(), "c".into()]),
            vec![vec!["a\\nb", "c"]]
        );
    }
}
