//! A site's share of the p% dominance rule: per group of its answer, the
//! two largest patient contributions to each SUM partial and their total,
//! appended after `ihdsi_patients` (see [`crate::dominance`]).
//!
//! The contributions come from a second, per-patient plan, run on the
//! site's backend like the subplan, over the same admitted subplan ([`ihdsi_planner::dominance::contributions`]), matched
//! to the answer's groups by key in Arrow's row format, which compares
//! NULL keys as equal, as GROUP BY does.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::logical_expr::LogicalPlan;

use super::backend::SiteBackend;
use crate::dominance::Dominance;
use crate::error::{EngineError, Result};
use ihdsi_catalog::Bounding;
use ihdsi_planner::dominance::contributions;
use ihdsi_planner::release::dominance_columns;

/// `answer` with the dominance columns of every SUM partial of `plan`
/// (the admitted, unbounded subplan) appended.
pub(crate) async fn append_dominance(
    backend: &dyn SiteBackend,
    plan: &LogicalPlan,
    bounding: Option<Bounding>,
    answer: RecordBatch,
    key_count: usize,
) -> Result<RecordBatch> {
    let Some(c) = contributions(plan, bounding)? else {
        return Ok(answer);
    };
    let batches = backend.collect(c.plan).await?;
    let mut cells = vec![vec![Dominance::default(); c.partials.len()]; answer.num_rows()];
    let group_of = group_index(&answer, key_count)?;
    for batch in &batches {
        let groups = group_of.rows(batch)?;
        let contributions = (0..c.partials.len())
            .map(|n| {
                batch
                    .column(key_count + n)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or_else(|| EngineError::Internal("contribution is not Float64".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        for (row, group) in groups.into_iter().enumerate() {
            // A group this site's bounding dropped entirely is not in the answer.
            let Some(group) = group else { continue };
            for (cell, values) in cells[group].iter_mut().zip(&contributions) {
                if !values.is_null(row) {
                    cell.add(values.value(row));
                }
            }
        }
    }
    let mut fields: Vec<Arc<Field>> = answer.schema().fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = answer.columns().to_vec();
    for (n, &j) in c.partials.iter().enumerate() {
        let parts: [fn(&Dominance) -> f64; 3] = [|d| d.top1, |d| d.top2, |d| d.total];
        for (name, part) in dominance_columns(j).into_iter().zip(parts) {
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
