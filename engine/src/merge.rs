//! The coordinator's merge: combine the sites' partials per group and
//! compute each analyst aggregate from them. Which merged groups and cells
//! may be released, and how they are rounded or noised, is the disclosure
//! layer's decision ([`crate::disclosure`]); nothing here withholds.
//!
//! This runs in plain Rust, outside DataFusion's optimiser, so that the
//! rules are applied exactly where they are written and nothing can be
//! reordered around them. Groups are keyed by Arrow's row format; each
//! group holds at most one partial row per site.
//!
//! Variances use Chan, Golub & LeVeque's parallel update on `(n, mean, M2)`,
//! which is numerically stable where the textbook `Σx² − n·mean²` is not.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, new_empty_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;

use crate::error::{EngineError, Result};
use crate::fanout::SitePartials;
use crate::protocol::dominance::{Dominance, SummaryColumns};
use ihdsi_planner::Release;
use ihdsi_planner::release::aggregates::Merge;

/// A released group's keys and exact patient count (for the differencing
/// detector, which lives in the disclosure layer and reads them from here).
pub type GroupCount = (Vec<ScalarValue>, i64);

/// The released table of one boundary, and what was withheld.
#[derive(Debug, Clone)]
pub struct Released {
    /// Columns `c0..cN`: the keys and the merged aggregates.
    pub batch: RecordBatch,
    /// Merged groups withheld: under the federation's `min_group_size`.
    pub suppressed: u64,
    /// Key values and exact distinct-patient count of each released group,
    /// for the differencing detector (never released or logged).
    pub groups: Vec<GroupCount>,
    /// Per analyst aggregate of the release, how many of its released
    /// cells were withheld (NULL under the rules, not in the data).
    pub withheld_cells: Vec<u64>,
}

/// One merged group: its keys, each site's partial row, and the exact
/// number of distinct patients behind it and behind each of its cells.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) keys: Vec<ScalarValue>,
    /// Per site that sent the group: its partial values `p*`.
    pub(crate) rows: Vec<Vec<ScalarValue>>,
    pub(crate) patients: i64,
    /// Merged cell counts (`ihdsi_c*`), summed over sites.
    pub(crate) cells: Vec<i64>,
    /// Index of the last site that contributed a row, to catch a site that
    /// sends the same group twice.
    pub(crate) last_site: usize,
    /// Per dominance entry of the release, each site's summary, in the
    /// order of `rows` (empty when the rule is off).
    pub(crate) summaries: Vec<Vec<Dominance>>,
    /// Per analyst aggregate: withheld by the disclosure layer (released
    /// as NULL).
    pub(crate) withheld: Vec<bool>,
}

/// One site batch's columns, read once: its cell counts and dominance
/// summaries by position.
struct SiteColumns<'a> {
    batch: &'a RecordBatch,
    counts: Vec<&'a Int64Array>,
    summaries: Vec<SummaryColumns<'a>>,
}

impl<'a> SiteColumns<'a> {
    fn of(release: &Release, batch: &'a RecordBatch) -> Result<Self> {
        let width = release.site_types().len();
        if batch.num_columns() != width {
            return Err(EngineError::Internal(format!(
                "partial batch has {} columns, expected {width}",
                batch.num_columns()
            )));
        }
        let base = release.base_width();
        let counts = (0..release.cells.sources.len())
            .map(|c| {
                batch
                    .column(base + c)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| EngineError::Internal("cell count is not Int64".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        let summaries = (0..release.dominance.len())
            .map(|n| SummaryColumns::of(release, batch, n))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            batch,
            counts,
            summaries,
        })
    }
}

impl Group {
    /// A group no site has sent a row of yet.
    pub(crate) fn empty(release: &Release) -> Self {
        Self {
            keys: Vec::new(),
            rows: Vec::new(),
            patients: 0,
            cells: vec![0; release.cells.sources.len()],
            last_site: usize::MAX,
            summaries: vec![Vec::new(); release.dominance.len()],
            withheld: vec![false; release.merges.len()],
        }
    }

    /// Add row `r` of site `site`'s batch: its partials, patient and cell
    /// counts (checked for overflow) and dominance summaries.
    fn absorb(
        &mut self,
        release: &Release,
        site: usize,
        columns: &SiteColumns<'_>,
        r: usize,
    ) -> Result<()> {
        let (keys, base) = (release.key_count, release.base_width());
        let values = (0..base)
            .map(|c| ScalarValue::try_from_array(columns.batch.column(c), r))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        self.last_site = site;
        if self.keys.is_empty() {
            self.keys = values[..keys].to_vec();
        }
        self.patients = self
            .patients
            .checked_add(as_i64(&values[base - 1])?)
            .ok_or_else(overflow)?;
        for (total, column) in self.cells.iter_mut().zip(&columns.counts) {
            let n = if column.is_null(r) {
                0
            } else {
                column.value(r)
            };
            *total = total.checked_add(n).ok_or_else(overflow)?;
        }
        self.rows.push(values[keys..base - 1].to_vec());
        for (per_site, summary) in self.summaries.iter_mut().zip(&columns.summaries) {
            per_site.push(summary.get(r));
        }
        Ok(())
    }
}

/// Merge the sites' partial rows per group, unthresholded. Also returns
/// the number of groups that exist (a query without GROUP BY has its one
/// group even when every site withheld it).
pub(crate) fn merge_groups(
    release: &Release,
    answers: &[SitePartials],
) -> Result<(Vec<Group>, usize)> {
    let keys = release.key_count;
    let key_types: Vec<SortField> = release
        .site_types()
        .into_iter()
        .take(keys)
        .map(SortField::new)
        .collect();
    let converter = RowConverter::new(key_types)?;
    let mut index: HashMap<OwnedRow, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let batches = answers
        .iter()
        .enumerate()
        .flat_map(|(s, a)| a.batches.iter().map(move |b| (s, b)));
    for (site, batch) in batches {
        let columns = SiteColumns::of(release, batch)?;
        // Without GROUP BY there is exactly one group; the row format cannot
        // encode zero columns, so it is not used then.
        let rows = if keys > 0 {
            Some(converter.convert_columns(&batch.columns()[..keys])?)
        } else {
            None
        };
        for r in 0..batch.num_rows() {
            let slot = match &rows {
                Some(rows) => {
                    let next = groups.len();
                    *index.entry(rows.row(r).owned()).or_insert(next)
                }
                None => 0,
            };
            if slot == groups.len() {
                groups.push(Group::empty(release));
            }
            if groups[slot].last_site == site {
                return Err(EngineError::implausible(
                    &answers[site].site,
                    "the same group was sent twice",
                ));
            }
            groups[slot].absorb(release, site, &columns, r)?;
        }
    }
    // A query without GROUP BY has its one group even when every site
    // withheld it: it counts as suppressed, like any other group.
    let before = if keys == 0 {
        groups.len().max(1)
    } else {
        groups.len()
    };
    Ok((groups, before))
}

/// The released batch `c0..cN` of `groups`, each aggregate finalised from
/// its group's partial rows; withheld cells are NULL. Every released count
/// passes through `finish_count` (the disclosure layer's rounding or
/// post-processing of noise; this module applies no rule of its own).
pub(crate) fn build_output(
    release: &Release,
    groups: &[Group],
    finish_count: impl Fn(ScalarValue) -> Result<ScalarValue>,
) -> Result<RecordBatch> {
    let schema = release.released_schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let values: Vec<ScalarValue> = if i < release.key_count {
            groups.iter().map(|g| g.keys[i].clone()).collect()
        } else {
            let a = i - release.key_count;
            let m = &release.merges[a];
            groups
                .iter()
                .map(|g| {
                    if g.withheld.get(a).copied().unwrap_or(true) {
                        return Ok(ScalarValue::try_from(field.data_type())?);
                    }
                    let v = finalize(m, &g.rows)?;
                    match m {
                        Merge::Count(_) => finish_count(v),
                        _ => Ok(v),
                    }
                })
                .collect::<Result<_>>()?
        };
        let array = if values.is_empty() {
            new_empty_array(field.data_type())
        } else {
            cast(&ScalarValue::iter_to_array(values)?, field.data_type())?
        };
        columns.push(array);
    }
    Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
}

/// Integer overflow while merging: no real cohort gets there, so it is a
/// site sending implausible numbers or an attack on wrap-around (A26).
pub(crate) fn overflow() -> EngineError {
    EngineError::Overflow
}

/// A count partial as an integer. NULL is a cell the site withheld and
/// adds nothing; a value that is not a whole number of rows or patients is
/// refused, never read as 0.
pub(crate) fn as_i64(v: &ScalarValue) -> Result<i64> {
    if v.is_null() {
        return Ok(0);
    }
    match v.data_type() {
        t if t.is_integer() => match v.cast_to(&datafusion::arrow::datatypes::DataType::Int64) {
            Ok(ScalarValue::Int64(Some(x))) => Ok(x),
            _ => Err(overflow()),
        },
        t => Err(EngineError::Internal(format!(
            "a count partial of type {t}, not an integer"
        ))),
    }
}

pub(crate) fn as_f64(v: &ScalarValue) -> Option<f64> {
    match v.cast_to(&datafusion::arrow::datatypes::DataType::Float64) {
        Ok(ScalarValue::Float64(x)) => x,
        _ => None,
    }
}

/// A NULL of partial column `p`'s type.
fn typed_null(rows: &[Vec<ScalarValue>], p: usize) -> ScalarValue {
    rows.first()
        .and_then(|r| ScalarValue::try_from(r[p].data_type()).ok())
        .unwrap_or(ScalarValue::Null)
}

/// `(n, mean, M2)` of the sites' `(count, mean, var_pop)` partials, by
/// Chan et al.'s parallel update; sites without values are skipped.
pub(crate) fn moments(
    rows: &[Vec<ScalarValue>],
    count: usize,
    mean: usize,
    var_pop: usize,
) -> Result<(f64, f64, f64)> {
    let (mut n, mut mu, mut m2) = (0f64, 0f64, 0f64);
    for r in rows {
        let nb = as_i64(&r[count])? as f64;
        let (Some(mb), Some(vb)) = (as_f64(&r[mean]), as_f64(&r[var_pop])) else {
            continue;
        };
        if nb == 0.0 {
            continue;
        }
        let total = n + nb;
        let delta = mb - mu;
        mu += delta * nb / total;
        m2 += vb * nb + delta * delta * n * nb / total;
        n = total;
    }
    Ok((n, mu, m2))
}

pub(crate) fn finalize(m: &Merge, rows: &[Vec<ScalarValue>]) -> Result<ScalarValue> {
    let col = |p: usize| rows.iter().map(move |r| &r[p]);
    Ok(match *m {
        Merge::Count(p) | Merge::Sum(p) => {
            let mut acc: Option<ScalarValue> = None;
            for v in col(p).filter(|v| !v.is_null()) {
                acc = Some(match acc {
                    None => v.clone(),
                    Some(a) => a.add_checked(v).map_err(|_| overflow())?,
                });
            }
            acc.unwrap_or_else(|| typed_null(rows, p))
        }
        Merge::Min(p) | Merge::Max(p) => {
            let is_min = matches!(m, Merge::Min(_));
            let mut best: Option<&ScalarValue> = None;
            for v in col(p).filter(|v| !v.is_null()) {
                let better = best.is_none_or(|b| {
                    let ord = v.partial_cmp(b);
                    if is_min {
                        ord == Some(std::cmp::Ordering::Less)
                    } else {
                        ord == Some(std::cmp::Ordering::Greater)
                    }
                });
                if better {
                    best = Some(v);
                }
            }
            best.cloned().unwrap_or_else(|| typed_null(rows, p))
        }
        Merge::Avg { sum, count } => {
            let n =
                col(count).try_fold(0i64, |n, v| n.checked_add(as_i64(v)?).ok_or_else(overflow))?;
            let s: f64 = col(sum).filter_map(as_f64).sum();
            ScalarValue::Float64((n > 0).then(|| s / n as f64))
        }
        Merge::Variance {
            count,
            mean,
            var_pop,
            sample,
            sqrt,
        } => {
            let (n, _, m2) = moments(rows, count, mean, var_pop)?;
            let var = if sample {
                (n > 1.0).then(|| m2 / (n - 1.0))
            } else {
                (n > 0.0).then(|| m2 / n)
            };
            ScalarValue::Float64(if sqrt { var.map(f64::sqrt) } else { var })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(xs: &[f64]) -> Vec<ScalarValue> {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var_pop = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        vec![
            ScalarValue::Int64(Some(xs.len() as i64)),
            ScalarValue::Float64(Some(mean)),
            ScalarValue::Float64(Some(var_pop)),
        ]
    }

    fn direct(xs: &[f64], sample: bool) -> f64 {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / if sample { n - 1.0 } else { n }
    }

    #[test]
    fn chan_merge_equals_pooled_variance_even_with_a_large_offset() {
        let xs: Vec<f64> = (0..301)
            .map(|i| 1e6 + ((i * 37) % 101) as f64 * 0.01)
            .collect();
        let rows = vec![
            partial(&xs[..17]),
            partial(&xs[17..200]),
            partial(&xs[200..]),
        ];
        for (sample, sqrt) in [(true, false), (false, false), (true, true)] {
            let m = Merge::Variance {
                count: 0,
                mean: 1,
                var_pop: 2,
                sample,
                sqrt,
            };
            let ScalarValue::Float64(Some(got)) = finalize(&m, &rows).expect("merge") else {
                panic!("null")
            };
            let want = if sqrt {
                direct(&xs, sample).sqrt()
            } else {
                direct(&xs, sample)
            };
            assert!(((got - want) / want).abs() < 1e-9, "{got} vs {want}");
        }
    }

    #[test]
    fn sample_variance_of_one_value_is_null_and_empty_sites_are_skipped() {
        let empty = vec![
            ScalarValue::Int64(Some(0)),
            ScalarValue::Float64(None),
            ScalarValue::Float64(None),
        ];
        let rows = vec![partial(&[4.0]), empty];
        let samp = Merge::Variance {
            count: 0,
            mean: 1,
            var_pop: 2,
            sample: true,
            sqrt: false,
        };
        assert_eq!(
            finalize(&samp, &rows).expect("merge"),
            ScalarValue::Float64(None)
        );
        let pop = Merge::Variance {
            count: 0,
            mean: 1,
            var_pop: 2,
            sample: false,
            sqrt: false,
        };
        assert_eq!(
            finalize(&pop, &rows).expect("merge"),
            ScalarValue::Float64(Some(0.0))
        );
    }

    #[test]
    fn integer_sums_that_overflow_are_refused_not_wrapped() {
        let rows = vec![
            vec![ScalarValue::Int64(Some(i64::MAX))],
            vec![ScalarValue::Int64(Some(1))],
        ];
        let err = finalize(&Merge::Sum(0), &rows).expect_err("overflow");
        assert!(err.to_string().contains("overflows"), "{err}");
    }

    #[test]
    fn sums_skip_nulls_and_stay_typed_when_all_null() {
        let rows = vec![
            vec![ScalarValue::Int64(Some(5))],
            vec![ScalarValue::Int64(None)],
            vec![ScalarValue::Int64(Some(7))],
        ];
        assert_eq!(
            finalize(&Merge::Sum(0), &rows).expect("sum"),
            ScalarValue::Int64(Some(12))
        );
        let nulls = vec![vec![ScalarValue::Float64(None)]];
        assert_eq!(
            finalize(&Merge::Sum(0), &nulls).expect("sum"),
            ScalarValue::Float64(None)
        );
        assert_eq!(
            finalize(&Merge::Min(0), &rows).expect("min"),
            ScalarValue::Int64(Some(5))
        );
        assert_eq!(
            finalize(&Merge::Max(0), &rows).expect("max"),
            ScalarValue::Int64(Some(7))
        );
    }
}
