//! What a site releases of its own answer: groups of at least its own
//! `min_group_size` distinct patients, and in them only the cells of at
//! least as many (see the [module above](super) for why cells, not groups).
//!
//! A site applies its own rule whatever the coordinator asks: its
//! threshold is in `site.toml`, never in the request. A withheld cell
//! leaves the site as a NULL partial with a cell count of 0, and the
//! dominance summaries of its sums as zeros: nothing about its patients
//! leaves, and the coordinator merges the other sites' patients only.

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::compute::kernels::cmp::gt_eq;
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{filter_record_batch, nullif, or_kleene};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};

use crate::protocol::{SITE_ELAPSED_KEY, SITE_SUPPRESSED_KEY};
use crate::site::error::{Result, SiteError};
use ihdsi_planner::release::DOMINANCE_WIDTH;
use ihdsi_planner::release::cells::{CellLayout, CellRef};
use ihdsi_planner::release::dominance::DominanceEntry;

/// The schema metadata of a site's answer stream: how many groups the
/// site suppressed under its own threshold and how long it worked on the
/// subplan. Neither says which groups or how many patients; this is all a
/// site adds to its partials.
pub(crate) fn stream_metadata(
    suppressed: u64,
    elapsed: std::time::Duration,
) -> std::collections::HashMap<String, String> {
    [
        (SITE_SUPPRESSED_KEY.to_string(), suppressed.to_string()),
        (
            SITE_ELAPSED_KEY.to_string(),
            elapsed.as_micros().to_string(),
        ),
    ]
    .into_iter()
    .collect()
}

/// The columns of a site's answer: `k*` keys, `p*` partials, the patient
/// count, the cell counts and the dominance summaries, in that order.
#[derive(Debug, Clone, Copy)]
pub struct AnswerShape<'a> {
    pub key_count: usize,
    /// Index of `ihdsi_patients`.
    pub patients: usize,
    pub cells: &'a CellLayout,
    /// Dominance entries, when the coordinator asked for them.
    pub dominance: &'a [DominanceEntry],
}

/// `schema` with the partial columns `p*` nullable.
pub(crate) fn answer_schema(schema: &SchemaRef, shape: AnswerShape<'_>) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let partial = i >= shape.key_count && i < shape.patients;
            f.as_ref().clone().with_nullable(f.is_nullable() || partial)
        })
        .collect();
    std::sync::Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

pub(crate) fn int64(batch: &RecordBatch, c: usize) -> Result<&Int64Array> {
    batch
        .column(c)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| SiteError::Internal("a patient count is not Int64".into()))
}

/// Keep the groups of `batch` with at least `min` distinct patients and
/// withhold their cells of fewer; return them and the number of groups
/// dropped.
pub fn release(
    batch: &RecordBatch,
    shape: AnswerShape<'_>,
    min: u64,
) -> Result<(RecordBatch, u64)> {
    let min = i64::try_from(min).unwrap_or(i64::MAX);
    let keep = gt_eq(int64(batch, shape.patients)?, &Int64Array::new_scalar(min))?;
    // Partials are always nullable in an answer, withheld or not, so that
    // the schema says nothing about the data.
    let schema = answer_schema(batch.schema_ref(), shape);
    let kept = filter_record_batch(&batch.clone().with_schema(schema)?, &keep)?;
    let dropped = (batch.num_rows() - kept.num_rows()) as u64;
    let first_cell = shape.patients + 1;
    // Per cell column: the rows where it is under the threshold.
    let small = (0..shape.cells.sources.len())
        .map(|c| {
            let counts = int64(&kept, first_cell + c)?;
            let enough = gt_eq(counts, &Int64Array::new_scalar(min))?;
            Ok(datafusion::arrow::compute::not(&enough)?)
        })
        .collect::<Result<Vec<BooleanArray>>>()?;
    if small.iter().all(|s| s.true_count() == 0) {
        return Ok((kept, dropped));
    }
    let mut columns: Vec<ArrayRef> = kept.columns().to_vec();
    let partials = shape.patients - shape.key_count;
    let none = BooleanArray::from(vec![false; kept.num_rows()]);
    let mut withheld = Vec::with_capacity(partials);
    for j in 0..partials {
        let mut mask = none.clone();
        for r in shape.cells.per_partial.get(j).into_iter().flatten() {
            if let CellRef::Column(c) = r {
                mask = or_kleene(&mask, &small[*c])?;
            }
        }
        let column = &mut columns[shape.key_count + j];
        *column = nullif(column.as_ref(), &mask)?;
        withheld.push(mask);
    }
    for (c, mask) in small.iter().enumerate() {
        let zeros = Int64Array::new_scalar(0);
        let column = &mut columns[first_cell + c];
        *column = zip(mask, &zeros, column)?;
    }
    let first_summary = first_cell + shape.cells.sources.len();
    for (n, e) in shape.dominance.iter().enumerate() {
        for k in 0..DOMINANCE_WIDTH {
            let column = &mut columns[first_summary + DOMINANCE_WIDTH * n + k];
            *column = zip(&withheld[e.partial], &Float64Array::new_scalar(0.0), column)?;
        }
    }
    Ok((RecordBatch::try_new(kept.schema(), columns)?, dropped))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use ihdsi_planner::release::cells::CellSource;

    fn batch(
        keys: Vec<&str>,
        partial: Vec<i64>,
        patients: Vec<i64>,
        cells: Vec<i64>,
    ) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k0", DataType::Utf8, true),
            Field::new("p0", DataType::Int64, true),
            Field::new("ihdsi_patients", DataType::Int64, false),
            Field::new("ihdsi_c0", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(Int64Array::from(partial)),
                Arc::new(Int64Array::from(patients)),
                Arc::new(Int64Array::from(cells)),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn small_groups_are_dropped_and_small_cells_withheld() {
        let layout = CellLayout {
            per_partial: vec![vec![CellRef::Column(0)]],
            sources: vec![CellSource {
                filter: None,
                value: None,
                nonzero: false,
                bounds: None,
            }],
        };
        let shape = AnswerShape {
            key_count: 1,
            patients: 2,
            cells: &layout,
            dominance: &[],
        };
        let b = batch(
            vec!["a", "b", "c", "d"],
            vec![40, 3, 0, 25],
            vec![40, 9, 30, 25],
            vec![40, 3, 0, 10],
        );
        let (kept, dropped) = release(&b, shape, 10).expect("release");
        assert_eq!(dropped, 1);
        let p = kept
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("p0");
        let c = kept
            .column(3)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("c0");
        // a: released; c: its cell has no patient, withheld like a small one.
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![Some(40), None, Some(25)]);
        assert_eq!(c.values().to_vec(), vec![40, 0, 10]);
    }
}
