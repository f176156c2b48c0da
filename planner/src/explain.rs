//! `EXPLAIN`: what each site will run, and what the coordinator does with it.

use crate::aggregates::Merge;
use crate::error::Result;
use crate::split::FederatedPlan;

/// `(plan_type, plan)` rows, as DataFusion's own EXPLAIN returns them.
pub fn explain_rows(
    plan: &FederatedPlan,
    federation_min: u64,
    site_min_note: &str,
) -> Result<Vec<(String, String)>> {
    let mut rows = Vec::new();
    for r in &plan.releases {
        rows.push((
            format!(
                "site_subplan[{}] (sent to each site hosting {})",
                r.index,
                r.tables.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            r.site_sql.clone(),
        ));
        let mut merge = vec![format!(
            "group by {} key(s); drop a site's group if ihdsi_patients < its own min_group_size ({site_min_note}); drop a merged group if Σ ihdsi_patients < {federation_min}",
            r.key_count
        )];
        if !r.dominance.is_empty() {
            merge.push("withhold a merged group if a SUM cell fails the p% dominance rule".into());
        }
        let names: Vec<String> = r.schema.fields().iter().map(|f| f.name().clone()).collect();
        for (i, m) in r.merges.iter().enumerate() {
            let name = names.get(r.key_count + i).cloned().unwrap_or_default();
            merge.push(format!("{name} = {}", describe(m)));
        }
        rows.push((format!("coordinator_merge[{}]", r.index), merge.join("\n")));
    }
    rows.push((
        "coordinator_plan".into(),
        plan.placeholder_plan()?.display_indent().to_string(),
    ));
    Ok(rows)
}

fn describe(m: &Merge) -> String {
    match m {
        Merge::Count(p) | Merge::Sum(p) => format!("sum(p{p})"),
        Merge::Min(p) => format!("min(p{p})"),
        Merge::Max(p) => format!("max(p{p})"),
        Merge::Avg { sum, count } => format!("sum(p{sum}) / sum(p{count})"),
        Merge::Variance {
            count,
            mean,
            var_pop,
            sample,
            sqrt,
        } => format!(
            "{}{} of Chan-merged (n=p{count}, mean=p{mean}, var_pop=p{var_pop})",
            if *sqrt { "sqrt of " } else { "" },
            if *sample {
                "sample variance"
            } else {
                "population variance"
            }
        ),
    }
}
