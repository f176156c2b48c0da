//! Property tests of what the coordinator releases, over random site
//! answers: released groups are never under the threshold, neither the
//! threshold merge nor the dp release ever adds a group or a patient, and
//! the p% rule decides on merged site summaries as on pooled data.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Int32Array, Int64Array, RecordBatch};
use proptest::prelude::*;

use crate::disclosure::dominance::{Dominance, PercentRule};
use crate::disclosure::noise::NoisePlan;
use crate::disclosure::threshold::release as threshold_release;
use crate::dp::sampler::OsUniform;
use crate::fanout::SitePartials;
use crate::testing::first_release;
use ihdsi_catalog::{PrivacyMode, PrivacyPolicy};
use ihdsi_planner::Release;

const QUERY: &str =
    "SELECT gender_concept_id, count(*), count(DISTINCT person_id) FROM person GROUP BY 1";

/// One site's answer: `(key, rows, patients)` per group, keys distinct.
fn site(release: &Release, name: usize, groups: &BTreeMap<i32, (i64, i64)>) -> SitePartials {
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
        release
            .site_plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let keys = Int32Array::from_iter_values(groups.keys().copied());
    let rows = Int64Array::from_iter_values(groups.values().map(|g| g.0));
    let patients = Int64Array::from_iter_values(groups.values().map(|g| g.1));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(keys),
            Arc::new(rows),
            Arc::new(patients.clone()),
            Arc::new(patients),
        ],
    )
    .expect("batch");
    SitePartials {
        site: format!("s{name}"),
        batches: vec![batch],
        ..SitePartials::default()
    }
}

/// Up to four sites, each with up to 12 groups of 1–40 patients.
fn answers() -> impl Strategy<Value = Vec<BTreeMap<i32, (i64, i64)>>> {
    prop::collection::vec(
        prop::collection::btree_map(
            0..20i32,
            (1..40i64).prop_flat_map(|p| (p..p * 3 + 1, Just(p))),
            0..12,
        ),
        1..4,
    )
}

fn exact(sites: &[BTreeMap<i32, (i64, i64)>]) -> BTreeMap<i32, i64> {
    let mut total = BTreeMap::new();
    for s in sites {
        for (k, (_, p)) in s {
            *total.entry(*k).or_insert(0) += p;
        }
    }
    total
}

fn released_keys(batch: &RecordBatch) -> Vec<i32> {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<Int32Array>()
        .expect("keys")
        .values()
        .to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn released_groups_are_never_under_the_threshold(sites in answers(), k in 1u64..30) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let release = rt.block_on(first_release(QUERY));
        let parts: Vec<SitePartials> =
            sites.iter().enumerate().map(|(i, g)| site(&release, i, g)).collect();
        let truth = exact(&sites);
        let policy = PrivacyPolicy::threshold(k, false);
        let out = threshold_release(&release, &parts, &policy).expect("merge");
        let keys = released_keys(&out.batch);
        prop_assert!(keys.len() <= truth.len(), "the merge added groups");
        for key in &keys {
            prop_assert!(truth[key] >= k as i64, "group {key} has {} < {k}", truth[key]);
        }
        prop_assert_eq!(keys.len() as u64 + out.suppressed, truth.len() as u64);

        let dp = PrivacyPolicy { mode: PrivacyMode::Dp, ..policy };
        let plan = NoisePlan::for_release(&release, &dp).expect("noise plan");
        let out = plan.release(&release, &parts, &mut OsUniform::default()).expect("release");
        let keys = released_keys(&out.batch);
        prop_assert!(keys.len() <= truth.len(), "noise added groups");
        for key in &keys {
            prop_assert!(truth[key] >= k as i64, "dp released group {key} under k");
        }
        let counts = out.batch.column(2).as_any().downcast_ref::<Int64Array>().expect("counts");
        prop_assert!(counts.values().iter().all(|n| *n >= 0), "a negative count");
    }

    /// The coordinator's merge of site summaries decides the p% rule as if
    /// it had seen every patient's contribution (sites hold disjoint
    /// patients), whatever the split.
    #[test]
    fn merged_dominance_decides_as_the_pooled_contributions(
        values in proptest::collection::vec(-1e6f64..1e6, 0..40),
        cuts in proptest::collection::vec(0usize..40, 2),
        p in 1.0f64..50.0,
    ) {
        let mut cuts = cuts;
        cuts.iter_mut().for_each(|c| *c = (*c).min(values.len()));
        cuts.sort_unstable();
        let parts = [&values[..cuts[0]], &values[cuts[0]..cuts[1]], &values[cuts[1]..]];
        let summary = |xs: &[f64]| {
            let mut d = Dominance::default();
            xs.iter().for_each(|&x| d.add(x));
            d
        };
        let pooled = summary(&values);
        let mut merged = Dominance::default();
        parts.iter().for_each(|xs| merged.merge(summary(xs)));
        prop_assert_eq!(merged.top1, pooled.top1);
        prop_assert_eq!(merged.top2, pooled.top2);
        prop_assert!((merged.total - pooled.total).abs() <= 1e-6 * pooled.total.max(1.0));
        prop_assert!(merged.plausible());
        // Away from the rule's edge, where float addition order can tip it.
        let margin = merged.total - merged.top1 - merged.top2 - p / 100.0 * merged.top1;
        if margin.abs() > 1e-3 {
            prop_assert_eq!(merged.dominated(p), pooled.dominated(p));
        }
    }
}
