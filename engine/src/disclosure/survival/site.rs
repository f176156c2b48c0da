//! The time-axis rule on a site's own answer, with the site's own k,
//! before anything leaves: the answer's bins are coarsened per stratum
//! (the keys before the bin), their counts summed.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use datafusion::common::ScalarValue;
use ihdsi_planner::cells::CellRef;
use ihdsi_planner::survival::TimeAxis;

use super::{Departures, released};
use crate::disclosure::site::{AnswerShape, answer_schema};
use crate::error::{EngineError, Result};

/// The column holding the patients behind `partial`.
fn cell_column(shape: AnswerShape<'_>, partial: usize) -> usize {
    match shape.cells.per_partial.get(partial).and_then(|c| c.first()) {
        Some(CellRef::Column(n)) => shape.patients + 1 + n,
        _ => shape.patients,
    }
}

fn counts(batch: &RecordBatch, c: usize) -> Result<&Int64Array> {
    batch
        .column(c)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| EngineError::Internal("a count on a time axis is not Int64".into()))
}

/// Coarsen `batch`'s bins under `min`; return the released bins and the
/// number of bins of withheld strata.
pub fn release(
    batch: &RecordBatch,
    shape: AnswerShape<'_>,
    axis: TimeAxis,
    min: u64,
) -> Result<(RecordBatch, u64)> {
    if !shape.dominance.is_empty() || shape.key_count == 0 {
        return Err(EngineError::Internal(
            "a time axis has a bin key and counts only".into(),
        ));
    }
    let keys = shape.key_count;
    let rows = batch.num_rows();
    let key_values: Vec<Vec<ScalarValue>> = (0..rows)
        .map(|r| {
            (0..keys)
                .map(|c| ScalarValue::try_from_array(batch.column(c), r))
                .collect::<datafusion::error::Result<Vec<_>>>()
        })
        .collect::<datafusion::error::Result<_>>()?;
    let summed: Vec<&Int64Array> = (keys..batch.num_columns())
        .map(|c| counts(batch, c))
        .collect::<Result<_>>()?;
    let events = axis
        .events
        .map(|e| counts(batch, cell_column(shape, e)))
        .transpose()?;
    let competing = axis
        .competing
        .map(|c| counts(batch, cell_column(shape, c)))
        .transpose()?;
    let patients = counts(batch, shape.patients)?;
    // Patients without a follow-up time (a NULL bin) are not on the curve.
    let mut order: Vec<usize> = (0..rows)
        .filter(|&r| !key_values[r][keys - 1].is_null())
        .collect();
    order.sort_by(|&a, &b| {
        key_values[a]
            .partial_cmp(&key_values[b])
            .unwrap_or(Ordering::Equal)
    });
    let (mut out_keys, mut out_counts) = (Vec::new(), vec![Vec::new(); summed.len()]);
    let mut dropped = 0u64;
    let same_stratum = |a: usize, b: usize| key_values[a][..keys - 1] == key_values[b][..keys - 1];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && same_stratum(order[start], order[end]) {
            end += 1;
        }
        let run = &order[start..end];
        let bins: Vec<Departures> = run
            .iter()
            .map(|&r| Departures {
                events: events.map(|e| u64::try_from(e.value(r)).unwrap_or(0)),
                competing: competing.map(|c| u64::try_from(c.value(r)).unwrap_or(0)),
                leaving: u64::try_from(patients.value(r)).unwrap_or(0),
            })
            .collect();
        let bins = released(&bins, min);
        if bins.is_empty() {
            dropped += run.len() as u64;
        }
        for (segment, label) in bins {
            let members = &run[segment];
            out_keys.push(key_values[run[label]].clone());
            for (column, out) in summed.iter().zip(out_counts.iter_mut()) {
                out.push(members.iter().map(|&r| column.value(r)).sum::<i64>());
            }
        }
        start = end;
    }
    let schema = answer_schema(batch.schema_ref(), shape);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for c in 0..keys {
        let values = out_keys.iter().map(|k| k[c].clone());
        columns.push(if out_keys.is_empty() {
            datafusion::arrow::array::new_empty_array(batch.column(c).data_type())
        } else {
            ScalarValue::iter_to_array(values)?
        });
    }
    for out in out_counts {
        columns.push(Arc::new(Int64Array::from(out)));
    }
    Ok((RecordBatch::try_new(schema, columns)?, dropped))
}
