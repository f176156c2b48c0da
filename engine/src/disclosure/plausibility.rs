//! What the coordinator checks of each site's partials before merging.
//!
//! The coordinator does not take a site's answer on trust: a buggy or
//! compromised site could send a malformed answer, or numbers no real data
//! can produce, to distort a federated result or to push a small group over
//! the federation's threshold. Each site's answer is checked on its own:
//!
//! * the columns are the planned partial schema;
//! * every group names at least one patient (sites never send empty groups:
//!   their own threshold is at least 1), and the patient count is not NULL;
//! * no group names more patients than the site declared it holds
//!   (`patients` of its `[[sites]]` entry, when the federation sets it);
//! * counts (and the counts behind averages and variances) are never
//!   negative, and population variances never negative;
//! * every cell count is present, not negative, and no larger than its
//!   group's patient count;
//! * the dominance summaries are finite, ordered and within their totals;
//! * a site sends each group at most once (checked by the merge, in the
//!   keyed pass it makes over the groups anyway).
//!
//! Refusals name the rule broken, never the values, and the site only in
//! the coordinator's log: partial numbers of one site are not something
//! the analyst may see, and a site whose data lies outside its declared
//! bounds could trip a rule, which would tell where such a value lives.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;

use crate::error::{EngineError, Result};
use crate::protocol::dominance::SummaryColumns;
use ihdsi_planner::Release;
use ihdsi_planner::release::aggregates::Merge;

/// Check one site's whole answer for `release`; `declared` is the number
/// of patients the site is known to hold, if the federation records it.
pub fn check_site_answer(
    release: &Release,
    site: &str,
    declared: Option<u64>,
    batches: &[RecordBatch],
) -> Result<()> {
    let expected = release.site_types();
    for batch in batches {
        check_schema(&expected, site, batch)?;
        check_values(release, site, batch)?;
        let patients = release.key_count + release.partial_count;
        if let Some(declared) = declared
            && max_value(batch, patients)?.is_some_and(|m| m > declared as f64)
        {
            return Err(EngineError::implausible(
                site,
                "a group with more patients than the site holds",
            ));
        }
    }
    Ok(())
}

fn check_schema(expected: &[DataType], site: &str, batch: &RecordBatch) -> Result<()> {
    let got: Vec<DataType> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    if got != expected {
        return Err(EngineError::SiteProtocol {
            site: site.into(),
            detail: format!("partial columns {got:?}, expected {expected:?}"),
        });
    }
    Ok(())
}

/// The partial columns that hold counts and variances, by position.
fn counts_and_variances(release: &Release) -> (Vec<usize>, Vec<usize>) {
    let (mut counts, mut variances) = (Vec::new(), Vec::new());
    for m in &release.merges {
        match *m {
            Merge::Count(count) | Merge::Avg { count, .. } => counts.push(count),
            Merge::Variance { count, var_pop, .. } => {
                counts.push(count);
                variances.push(var_pop);
            }
            Merge::Sum(_) | Merge::Min(_) | Merge::Max(_) => {}
        }
    }
    (counts, variances)
}

/// The smallest value of a column as f64 (NULLs ignored), or `None`.
fn min_value(batch: &RecordBatch, column: usize) -> Result<Option<f64>> {
    fold_values(batch, column, f64::min)
}

/// The largest value of a column as f64 (NULLs ignored), or `None`.
fn max_value(batch: &RecordBatch, column: usize) -> Result<Option<f64>> {
    fold_values(batch, column, f64::max)
}

fn fold_values(
    batch: &RecordBatch,
    column: usize,
    pick: fn(f64, f64) -> f64,
) -> Result<Option<f64>> {
    let values = cast(batch.column(column), &DataType::Float64)?;
    let values = values
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Float64Array>()
        .ok_or_else(|| EngineError::Internal("cast to Float64".into()))?;
    Ok(values.iter().flatten().reduce(pick))
}

fn check_values(release: &Release, site: &str, batch: &RecordBatch) -> Result<()> {
    let keys = release.key_count;
    let patients = keys + release.partial_count;
    if batch.column(patients).null_count() > 0 {
        return Err(EngineError::implausible(
            site,
            "a group without a patient count",
        ));
    }
    if min_value(batch, patients)?.is_some_and(|m| m < 1.0) {
        return Err(EngineError::implausible(
            site,
            "a group with fewer than one patient",
        ));
    }
    let (counts, variances) = counts_and_variances(release);
    for p in counts {
        if min_value(batch, keys + p)?.is_some_and(|m| m < 0.0) {
            return Err(EngineError::implausible(site, "a negative count"));
        }
    }
    for p in variances {
        if min_value(batch, keys + p)?.is_some_and(|m| m < 0.0) {
            return Err(EngineError::implausible(site, "a negative variance"));
        }
    }
    let (base, cells) = (release.base_width(), release.cells.sources.len());
    for c in base..base + cells {
        if batch.column(c).null_count() > 0 {
            return Err(EngineError::implausible(
                site,
                "a cell without a patient count",
            ));
        }
        if min_value(batch, c)?.is_some_and(|m| m < 0.0) {
            return Err(EngineError::implausible(
                site,
                "a cell with a negative patient count",
            ));
        }
        let counts = cast(batch.column(c), &DataType::Int64)?;
        let group = cast(batch.column(patients), &DataType::Int64)?;
        let above = datafusion::arrow::compute::kernels::cmp::gt(&counts, &group)?;
        if above.true_count() > 0 {
            return Err(EngineError::implausible(
                site,
                "a cell with more patients than its group",
            ));
        }
    }
    for n in 0..release.dominance.len() {
        let summaries = SummaryColumns::of(release, batch, n)?;
        if (0..batch.num_rows()).any(|row| !summaries.get(row).plausible()) {
            return Err(EngineError::implausible(
                site,
                "impossible largest contributions",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use datafusion::arrow::datatypes::{Field, Schema};
    use ihdsi_catalog::PrivacyPolicy;

    use super::*;
    use crate::fanout::SitePartials;

    use crate::testing::first_release as release;

    /// A batch of the release's site schema from rows of integers.
    fn answer(release: &Release, rows: &[&[i64]]) -> RecordBatch {
        let types = release.site_types();
        let fields: Vec<Field> = types
            .iter()
            .enumerate()
            .map(|(i, t)| Field::new(format!("c{i}"), t.clone(), true))
            .collect();
        let columns: Vec<ArrayRef> = types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let ints: ArrayRef =
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r[i])));
                cast(&ints, t).expect("cast")
            })
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
    }

    fn site(id: &str, batches: Vec<RecordBatch>) -> SitePartials {
        SitePartials {
            site: id.into(),
            batches,
            ..SitePartials::default()
        }
    }

    /// Everything the coordinator checks of answers: each site's answer on
    /// its own, then the merge (which catches a group sent twice).
    fn accept(r: &Release, answers: &[SitePartials]) -> Result<()> {
        for a in answers {
            check_site_answer(r, &a.site, Some(600), &a.batches)?;
        }
        crate::disclosure::threshold::release(r, answers, &PrivacyPolicy::default()).map(|_| ())
    }

    #[tokio::test]
    async fn sound_answers_pass_and_implausible_ones_are_refused_without_values() {
        // k0 = gender, p0 = sum, p1 = count (the AVG's parts), patients,
        // then the cells of p0 and p1 (here: all of the group's patients).
        let r =
            release("SELECT gender_concept_id, avg(year_of_birth) FROM person GROUP BY 1").await;
        let cells = r.cells.sources.len();
        assert_eq!(r.site_types().len(), 4 + cells, "{:?}", r.site_types());
        let full = |rows: &[&[i64]]| -> Vec<Vec<i64>> {
            rows.iter()
                .map(|r| {
                    let mut v = r.to_vec();
                    v.extend(std::iter::repeat_n(r[3].max(0), cells));
                    v
                })
                .collect()
        };
        let rows_of = |v: &[Vec<i64>]| -> RecordBatch {
            let refs: Vec<&[i64]> = v.iter().map(|x| x.as_slice()).collect();
            answer(&r, &refs)
        };
        let ok = rows_of(&full(&[
            &[8507, 987_654, 500, 500],
            &[8532, 991_000, 510, 510],
        ]));
        accept(&r, &[site("lu", vec![ok.clone()]), site("us", vec![ok])])
            .expect("plausible, and two sites may send the same groups");
        let cases: [(&[&[i64]], &str); 4] = [
            (&[&[8507, 987_654, 500, 0]], "fewer than one patient"),
            (
                &[&[8507, 987_654, 700, 700]],
                "more patients than the site holds",
            ),
            (&[&[8507, 987_654, -500, 500]], "negative count"),
            (
                &[&[8507, 987_654, 500, 500], &[8507, 987_654, 500, 500]],
                "sent twice",
            ),
        ];
        for (rows, rule) in cases {
            let err = accept(&r, &[site("lu", vec![rows_of(&full(rows))])])
                .expect_err(rule)
                .to_string();
            // The rule is told; the site only to operators (the log).
            assert!(err.contains(rule) && !err.contains("lu"), "{err}");
            assert!(
                !err.contains("987654") && !err.contains("500") && !err.contains("700"),
                "values leaked: {err}"
            );
        }
    }

    #[tokio::test]
    async fn a_global_aggregate_is_sent_once_and_variances_are_not_negative() {
        let r = release("SELECT stddev(year_of_birth) FROM person").await;
        let width = r.site_types().len();
        let row = |var: i64| -> Vec<i64> {
            // count, mean, var_pop, patients in the planner's order; only
            // the sign of var_pop matters here.
            let mut v = vec![40; width];
            if let Some(Merge::Variance { var_pop, .. }) = r.merges.first() {
                v[*var_pop] = var;
            }
            v
        };
        let good = row(3);
        accept(&r, &[site("us", vec![answer(&r, &[&good])])]).expect("plausible");
        let twice = answer(&r, &[&good]);
        let err = accept(&r, &[site("us", vec![twice.clone(), twice])]).expect_err("two rows");
        assert!(err.to_string().contains("sent twice"), "{err}");
        let bad = row(-3);
        let err = check_site_answer(&r, "us", None, &[answer(&r, &[&bad])]).expect_err("negative");
        assert!(err.to_string().contains("negative variance"), "{err}");
    }

    #[tokio::test]
    async fn dominance_summaries_are_checked_and_merged_over_sites() {
        let r = crate::testing::release_under(
            "SELECT gender_concept_id, avg(year_of_birth) FROM person GROUP BY 1",
            &PrivacyPolicy::threshold(1, false),
        )
        .await;
        // k0, p0 = sum, p1 = count, patients, the cells of p0 and p1, then
        // top1, top2, total and rows of p0's one data term.
        assert_eq!(
            r.dominance,
            vec![ihdsi_planner::release::dominance::DominanceEntry {
                partial: 0,
                spread: false
            }]
        );
        assert_eq!(r.site_types().len(), 10, "{:?}", r.site_types());
        let row = |v: &[i64]| -> Vec<i64> {
            vec![v[0], v[1], v[2], v[3], v[3], v[3], v[4], v[5], v[6], v[3]]
        };
        let answer = |r: &Release, rows: &[&[i64]]| -> RecordBatch {
            let full: Vec<Vec<i64>> = rows.iter().map(|v| row(v)).collect();
            let refs: Vec<&[i64]> = full.iter().map(|x| x.as_slice()).collect();
            answer(r, &refs)
        };
        let dominated: &[i64] = &[8507, 1000, 20, 20, 950, 10, 1000];
        let released = |answers: &[SitePartials]| -> usize {
            for a in answers {
                check_site_answer(&r, &a.site, None, &a.batches).expect("plausible");
            }
            let policy = PrivacyPolicy::threshold(1, false);
            let out = crate::disclosure::threshold::release(&r, answers, &policy)
                .expect("merge")
                .batch;
            // The cell, not the group, is withheld: count the released averages.
            out.num_rows() - out.column(1).null_count()
        };
        // One site: 1000 − 950 − 10 < 10% of 950, withheld.
        assert_eq!(released(&[site("lu", vec![answer(&r, &[dominated])])]), 0);
        // A second site's patients dilute the cell: the largest two are now
        // 950 and 100 of 1500, and the cell is released.
        let other: &[i64] = &[8507, 500, 30, 30, 100, 5, 500];
        let both = [
            site("lu", vec![answer(&r, &[dominated])]),
            site("us", vec![answer(&r, &[other])]),
        ];
        assert_eq!(released(&both), 1);
        for (bad, what) in [
            (&[8507, 1000, 20, 20, 10, 950, 1000], "top2 above top1"),
            (
                &[8507, 1000, 20, 20, 950, 100, 900],
                "total below the top two",
            ),
            (
                &[8507, 1000, 20, 20, 950, -10, 1000],
                "negative contribution",
            ),
        ] {
            let err = check_site_answer(&r, "lu", None, &[answer(&r, &[bad])]).expect_err(what);
            let msg = err.to_string();
            assert!(
                msg.contains("impossible largest contributions"),
                "{what}: {msg}"
            );
            assert!(
                !msg.contains("950") && !msg.contains("1000"),
                "values leaked: {msg}"
            );
        }
    }
}
