//! The time-axis rule on a site's own answer, with the site's own k,
//! before anything leaves: the answer's bins are coarsened per stratum
//! (the keys before the bin), their counts summed.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use datafusion::common::ScalarValue;
use ihdsi_planner::release::axis::TimeAxis;
use ihdsi_planner::release::cells::CellRef;

use super::{Departures, released};
use crate::disclosure::site::{AnswerShape, answer_schema, int64};
use crate::site::error::{Result, SiteError};

/// The column holding the patients behind `partial`.
fn cell_column(shape: AnswerShape<'_>, partial: usize) -> usize {
    match shape.cells.per_partial.get(partial).and_then(|c| c.first()) {
        Some(CellRef::Column(n)) => shape.patients + 1 + n,
        _ => shape.patients,
    }
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
        return Err(SiteError::Internal(
            "a time axis has a bin key and counts only".into(),
        ));
    }
    let keys = shape.key_count;
    let key_values: Vec<Vec<ScalarValue>> = (0..batch.num_rows())
        .map(|r| {
            (0..keys)
                .map(|c| ScalarValue::try_from_array(batch.column(c), r))
                .collect::<datafusion::error::Result<Vec<_>>>()
        })
        .collect::<datafusion::error::Result<_>>()?;
    let summed: Vec<&Int64Array> = (keys..batch.num_columns())
        .map(|c| int64(batch, c))
        .collect::<Result<_>>()?;
    let departures = departures(batch, shape, axis)?;
    let mut out = Out {
        keys: Vec::new(),
        counts: vec![Vec::new(); summed.len()],
    };
    let mut dropped = 0u64;
    for run in strata(&key_values) {
        let bins = released(&run.iter().map(|&r| departures(r)).collect::<Vec<_>>(), min);
        if bins.is_empty() {
            dropped += run.len() as u64;
        }
        for (segment, label) in bins {
            out.keys.push(key_values[run[label]].clone());
            for (column, sums) in summed.iter().zip(out.counts.iter_mut()) {
                sums.push(
                    run[segment.clone()]
                        .iter()
                        .map(|&r| column.value(r))
                        .sum::<i64>(),
                );
            }
        }
    }
    Ok((out.batch(batch, shape)?, dropped))
}

/// Each row's events, competing events and departing patients, as the
/// rule reads them: the patients behind each count.
fn departures<'a>(
    batch: &'a RecordBatch,
    shape: AnswerShape<'_>,
    axis: TimeAxis,
) -> Result<impl Fn(usize) -> Departures + 'a> {
    let cells = |partial: Option<usize>| {
        partial
            .map(|p| int64(batch, cell_column(shape, p)))
            .transpose()
    };
    let (events, competing) = (cells(axis.events)?, cells(axis.competing)?);
    let patients = int64(batch, shape.patients)?;
    let count = |a: &Int64Array, r: usize| u64::try_from(a.value(r)).unwrap_or(0);
    Ok(move |r: usize| Departures {
        events: events.map(|e| count(e, r)),
        competing: competing.map(|c| count(c, r)),
        leaving: count(patients, r),
    })
}

/// The rows of each stratum (the keys before the bin), each in bin order;
/// rows with a NULL bin (no follow-up time) are on no curve.
fn strata(key_values: &[Vec<ScalarValue>]) -> Vec<Vec<usize>> {
    let Some(bin) = key_values.first().map(|k| k.len() - 1) else {
        return Vec::new();
    };
    let mut order: Vec<usize> = (0..key_values.len())
        .filter(|&r| !key_values[r][bin].is_null())
        .collect();
    order.sort_by(|&a, &b| {
        key_values[a]
            .partial_cmp(&key_values[b])
            .unwrap_or(Ordering::Equal)
    });
    let mut runs: Vec<Vec<usize>> = Vec::new();
    for r in order {
        match runs.last_mut() {
            Some(run) if key_values[run[0]][..bin] == key_values[r][..bin] => run.push(r),
            _ => runs.push(vec![r]),
        }
    }
    runs
}

/// The released bins: their keys, and the sums of every count column.
struct Out {
    keys: Vec<Vec<ScalarValue>>,
    counts: Vec<Vec<i64>>,
}

impl Out {
    fn batch(self, input: &RecordBatch, shape: AnswerShape<'_>) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(input.num_columns());
        for c in 0..shape.key_count {
            columns.push(if self.keys.is_empty() {
                datafusion::arrow::array::new_empty_array(input.column(c).data_type())
            } else {
                ScalarValue::iter_to_array(self.keys.iter().map(|k| k[c].clone()))?
            });
        }
        for sums in self.counts {
            columns.push(Arc::new(Int64Array::from(sums)));
        }
        Ok(RecordBatch::try_new(
            answer_schema(input.schema_ref(), shape),
            columns,
        )?)
    }
}
