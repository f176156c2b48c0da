//! A site's share of the p% dominance rule: per group of its answer and
//! per judged cell, the two largest patient contributions, their total and
//! (for a variance's spread) the most rows one patient has, appended after
//! the cell counts (see [`crate::disclosure::dominance`]).
//!
//! The contributions come from a second, per-patient plan, run on the
//! site's backend like the subplan, over the same admitted subplan
//! ([`ihdsi_planner::partials::dominance::contributions`]), matched to the answer's
//! groups by key in Arrow's row format, which compares NULL keys as equal,
//! as GROUP BY does. A spread is measured from the site's own mean of the
//! group, computed from the same per-patient rows.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::logical_expr::LogicalPlan;

use super::backend::SiteBackend;
use crate::bounded::ExecutionBudget;
use crate::disclosure::dominance::Dominance;
use crate::site::error::{Result, SiteError};
use ihdsi_catalog::Bounding;
use ihdsi_planner::partials::dominance::contributions;
use ihdsi_planner::release::dominance::{DominanceEntry, contribution_width};
use ihdsi_planner::release::dominance_columns;

/// The per-patient values of one batch, typed once.
struct Values<'a>(Vec<&'a Float64Array>);

impl Values<'_> {
    fn get(&self, c: usize, row: usize) -> f64 {
        let a = self.0[c];
        if a.is_null(row) { 0.0 } else { a.value(row) }
    }
}

/// Each contribution batch's answer rows and typed values.
type Typed<'a> = Vec<(Vec<Option<usize>>, Values<'a>)>;

/// `answer` with the dominance columns of every judged cell of `plan`
/// (the admitted, unbounded subplan) appended, and the entries.
pub(crate) async fn append_dominance(
    backend: &dyn SiteBackend,
    budget: ExecutionBudget,
    plan: &LogicalPlan,
    bounding: Option<Bounding>,
    answer: RecordBatch,
    key_count: usize,
) -> Result<(RecordBatch, Vec<DominanceEntry>)> {
    let Some(c) = contributions(plan, bounding)? else {
        return Ok((answer, Vec::new()));
    };
    let batches = backend.collect(c.plan, budget).await?;
    let group_of = group_index(&answer, key_count)?;
    let typed: Typed<'_> = batches
        .iter()
        .map(|b| {
            let groups = group_of.rows(b)?;
            let columns = (key_count..b.num_columns())
                .map(|i| {
                    b.column(i)
                        .as_any()
                        .downcast_ref::<Float64Array>()
                        .ok_or_else(|| SiteError::Internal("contribution is not Float64".into()))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((groups, Values(columns)))
        })
        .collect::<Result<_>>()?;
    let rows = answer.num_rows();
    let mut cells = vec![vec![Dominance::default(); c.entries.len()]; rows];
    let mut at = 0;
    for (n, e) in c.entries.iter().enumerate() {
        if e.spread {
            add_spread(&typed, at, n, &mut cells);
        } else {
            for (groups, v) in &typed {
                for (row, g) in groups.iter().enumerate() {
                    // A group this site's bounding dropped is not in the answer.
                    if let Some(g) = g {
                        cells[*g][n].add(v.get(at, row));
                    }
                }
            }
        }
        at += contribution_width(e);
    }
    Ok((with_summaries(answer, &cells, c.entries.len())?, c.entries))
}

/// Entry `n`, a spread, whose per-patient Σx, Σx², n start at column
/// `at`: each patient's squared deviation from the site's group mean.
fn add_spread(typed: &Typed<'_>, at: usize, n: usize, cells: &mut [Vec<Dominance>]) {
    let rows = cells.len();
    let (mut sum, mut count) = (vec![0f64; rows], vec![0f64; rows]);
    for (groups, v) in typed {
        for (row, g) in groups.iter().enumerate() {
            if let Some(g) = g {
                sum[*g] += v.get(at, row);
                count[*g] += v.get(at + 2, row);
            }
        }
    }
    for (groups, v) in typed {
        for (row, g) in groups.iter().enumerate() {
            let Some(g) = g else { continue };
            let (s, q, k) = (v.get(at, row), v.get(at + 1, row), v.get(at + 2, row));
            if k == 0.0 {
                continue;
            }
            let mean = sum[*g] / count[*g];
            let deviation = (q - 2.0 * mean * s + k * mean * mean).max(0.0);
            let cell = &mut cells[*g][n];
            cell.add(deviation);
            cell.rows = cell.rows.max(k);
        }
    }
}

/// `answer` with four summary columns per dominance entry appended.
fn with_summaries(
    answer: RecordBatch,
    cells: &[Vec<Dominance>],
    entries: usize,
) -> Result<RecordBatch> {
    let mut fields: Vec<Arc<Field>> = answer.schema().fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = answer.columns().to_vec();
    for n in 0..entries {
        let parts: [fn(&Dominance) -> f64; 4] = [|d| d.top1, |d| d.top2, |d| d.total, |d| d.rows];
        for (name, part) in dominance_columns(n).into_iter().zip(parts) {
            fields.push(Arc::new(Field::new(name, DataType::Float64, false)));
            let values = Float64Array::from_iter_values(cells.iter().map(|g| part(&g[n])));
            columns.push(Arc::new(values));
        }
    }
    let schema = Schema::new(fields).with_metadata(answer.schema().metadata().clone());
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

/// Finds the answer row of a group by its keys.
struct GroupIndex {
    key_count: usize,
    converter: Option<RowConverter>,
    index: HashMap<Vec<u8>, usize>,
    rows: usize,
}

fn group_index(answer: &RecordBatch, key_count: usize) -> Result<GroupIndex> {
    if key_count == 0 {
        return Ok(GroupIndex {
            key_count,
            converter: None,
            index: HashMap::new(),
            rows: answer.num_rows(),
        });
    }
    let fields = answer.schema().fields()[..key_count]
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    let keys = converter.convert_columns(&answer.columns()[..key_count])?;
    let index = (0..keys.num_rows())
        .map(|r| (keys.row(r).as_ref().to_vec(), r))
        .collect();
    Ok(GroupIndex {
        key_count,
        converter: Some(converter),
        index,
        rows: answer.num_rows(),
    })
}

impl GroupIndex {
    /// The answer row of each row of `batch` (keys first), if any.
    fn rows(&self, batch: &RecordBatch) -> Result<Vec<Option<usize>>> {
        let Some(converter) = &self.converter else {
            // Without GROUP BY the answer has its one group, or none.
            return Ok(vec![(self.rows == 1).then_some(0); batch.num_rows()]);
        };
        let keys: Vec<ArrayRef> = batch.columns()[..self.key_count].to_vec();
        let keys = converter.convert_columns(&keys)?;
        Ok((0..keys.num_rows())
            .map(|r| self.index.get(keys.row(r).as_ref()).copied())
            .collect())
    }
}
