//! Rendering results for `ihdsi query` and the demo.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::client::QueryResult;
use crate::error::{CliError, Result};

/// Output formats of `ihdsi query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Whether `result` is an `EXPLAIN` (its two columns `plan_type`, `plan`).
fn is_explain(result: &QueryResult) -> bool {
    let names: Vec<&str> = result
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    names == ["plan_type", "plan"]
}

/// An `EXPLAIN` as sections, a heading per plan type and its plan
/// indented below: a table of two columns of multi-line SQL and plans
/// wraps unreadably in a terminal.
fn explain_sections(batches: &[RecordBatch]) -> String {
    use datafusion::arrow::array::{Array, StringArray};
    let mut out = String::new();
    for b in batches {
        let column = |i: usize| b.column(i).as_any().downcast_ref::<StringArray>();
        let (Some(kinds), Some(plans)) = (column(0), column(1)) else {
            continue;
        };
        for row in 0..b.num_rows() {
            if kinds.is_valid(row) {
                out.push_str(kinds.value(row));
                out.push_str(":\n");
            }
            for line in plans.value(row).lines() {
                out.push_str("    ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.trim_end().to_string()
}

fn err(e: impl std::fmt::Display) -> CliError {
    CliError::Client(format!("cannot format result: {e}"))
}

/// Render the batches in `format`.
pub fn render(result: &QueryResult, format: Format) -> Result<String> {
    let batches: Vec<RecordBatch> = result
        .batches
        .iter()
        .map(|b| {
            b.clone()
                .with_schema(b.schema())
                .unwrap_or_else(|_| b.clone())
        })
        .collect();
    // No rows (every group withheld) still shows the columns.
    let batches = if batches.is_empty() {
        vec![RecordBatch::new_empty(std::sync::Arc::clone(
            &result.schema,
        ))]
    } else {
        batches
    };
    match format {
        Format::Table if is_explain(result) => Ok(explain_sections(&batches)),
        Format::Table => Ok(pretty_format_batches(&batches).map_err(err)?.to_string()),
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut w = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                for b in &batches {
                    w.write(b).map_err(err)?;
                }
            }
            String::from_utf8(out).map_err(err)
        }
        Format::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(Vec::new());
            for b in &batches {
                w.write(b).map_err(err)?;
            }
            w.finish().map_err(err)?;
            let out = w.into_inner();
            Ok(if out.is_empty() {
                "[]".into()
            } else {
                String::from_utf8(out).map_err(err)?
            })
        }
    }
}

/// The footer line: row count and suppressed groups.
pub fn footer(result: &QueryResult) -> String {
    use ihdsi_engine::protocol::metadata as key;
    let n = result.num_rows();
    let meta = result.schema.metadata();
    let rows = format!("{n} row{}", if n == 1 { "" } else { "s" });
    // EXPLAIN, and queries over the public vocabulary only, read no
    // patient data: no rule was applied, so none is mentioned.
    if meta.get(key::SITES).is_none_or(String::is_empty) {
        return rows;
    }
    if meta.get(key::PRIVACY_MODE).map(String::as_str) == Some("dp") {
        let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
        return format!(
            "{n} row{} released with differential privacy; ρ charged {}, {} of {} remain{}",
            if n == 1 { "" } else { "s" },
            get(key::RHO_CHARGED),
            get(key::RHO_REMAINING),
            get(key::RHO_TOTAL),
            if get(key::CACHED) != "0" {
                " (answered from the cache, free)"
            } else {
                ""
            }
        );
    }
    let rows = format!("{rows} released");
    match result.suppressed_groups() {
        Some(s) => format!(
            "{rows}; {s} group{} suppressed (fewer patients than the minimum group size)",
            if s == 1 { "" } else { "s" }
        ),
        None => format!("{rows}; groups under the minimum group size are withheld, uncounted"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use datafusion::arrow::datatypes::Schema;

    use super::*;

    fn result(metadata: &[(&str, &str)]) -> QueryResult {
        let metadata: HashMap<String, String> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        QueryResult {
            schema: Arc::new(Schema::empty().with_metadata(metadata)),
            batches: Vec::new(),
        }
    }

    /// The rules are mentioned only after a result that read patient
    /// data: not after EXPLAIN (no metadata) or a query over the public
    /// vocabulary only (no site asked).
    #[test]
    fn the_footer_names_the_rules_only_after_patient_data() {
        use ihdsi_engine::protocol::metadata as key;
        assert_eq!(footer(&result(&[])), "0 rows");
        assert_eq!(footer(&result(&[(key::SITES, "")])), "0 rows");
        let released = footer(&result(&[(key::SITES, "kr,lu,us")]));
        assert!(released.contains("withheld"), "{released}");
        let counted = footer(&result(&[(key::SITES, "lu"), (key::SUPPRESSED, "2")]));
        assert!(counted.contains("2 groups suppressed"), "{counted}");
    }
}
