//! Which sites a release can have rows at, from its text alone: a release
//! whose every input row must satisfy `site = 'lu'` (or `site IN (…)`) on
//! the virtual site column is sent to those sites only, so a site it
//! excludes is neither contacted nor needed (a down one does not fail it).
//!
//! Sound, not complete: a restriction is derived only where it holds for
//! every row reaching the release's aggregation, that is through filters,
//! projections, aliases, inner and semi joins (both sides), the preserved
//! side of outer joins, unions (of every branch) and grouped aggregations
//! below the boundary. Anything else leaves the release unrestricted. The decision
//! reads the query's text, never data, so it discloses nothing; an excluded
//! site would have released no row of the release anyway (its patients
//! are its own, and each of its rows fails the predicate).

use std::collections::BTreeSet;

use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan, Operator};
use ihdsi_catalog::schema;

/// The sites a release over `plan` (its site subplan, topped by the
/// release's own aggregation) can have rows at; `None` when any site can.
/// A site left out would have had no input row: its answer, even the one
/// row of a global aggregation, rests on no patient and is withheld.
pub fn site_restriction(plan: &LogicalPlan) -> Option<BTreeSet<String>> {
    match plan {
        LogicalPlan::Aggregate(a) => rows_at(&a.input),
        // The partials' names, above the release's aggregation.
        LogicalPlan::Projection(p) => site_restriction(&p.input),
        other => rows_at(other),
    }
}

/// The sites where `plan` can have rows; `None` when any site can.
fn rows_at(plan: &LogicalPlan) -> Option<BTreeSet<String>> {
    match plan {
        LogicalPlan::Filter(f) => {
            let own = split_conjunction(&f.predicate)
                .into_iter()
                .filter_map(|c| conjunct_sites(c, &f.input))
                .reduce(|a, b| &a & &b);
            both(own, rows_at(&f.input))
        }
        LogicalPlan::Projection(p) => rows_at(&p.input),
        LogicalPlan::SubqueryAlias(a) => rows_at(&a.input),
        // A grouped aggregation has rows only where its input has; a global
        // one has its row at every site, even over no input row.
        LogicalPlan::Aggregate(a) if !a.group_expr.is_empty() => rows_at(&a.input),
        LogicalPlan::Sort(s) => rows_at(&s.input),
        LogicalPlan::Join(j) => match j.join_type {
            JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi => {
                both(rows_at(&j.left), rows_at(&j.right))
            }
            // A mark join keeps every row of its preserved side.
            JoinType::Left | JoinType::LeftAnti | JoinType::LeftMark => rows_at(&j.left),
            JoinType::Right | JoinType::RightAnti | JoinType::RightMark => rows_at(&j.right),
            JoinType::Full => None,
        },
        LogicalPlan::TableScan(scan) if schema::is_patient_table(scan.table_name.table()) => scan
            .filters
            .iter()
            .flat_map(split_conjunction)
            .filter_map(scan_filter_sites)
            .reduce(|a, b| &a & &b),
        LogicalPlan::Union(u) => u
            .inputs
            .iter()
            .map(|i| rows_at(i))
            .try_fold(BTreeSet::new(), |acc, r| r.map(|r| &acc | &r)),
        _ => None,
    }
}

/// Intersect two restrictions (`None` is every site).
fn both(a: Option<BTreeSet<String>>, b: Option<BTreeSet<String>>) -> Option<BTreeSet<String>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(&a & &b),
        (a, b) => a.or(b),
    }
}

/// The sites `conjunct` allows, when it is `site = 'x'` or `site IN ('x', …)`
/// on the virtual site column of `input`.
fn conjunct_sites(conjunct: &Expr, input: &LogicalPlan) -> Option<BTreeSet<String>> {
    let (column, values): (&Column, Vec<&Expr>) = match conjunct {
        Expr::BinaryExpr(b) if b.op == Operator::Eq => match (b.left.as_ref(), b.right.as_ref()) {
            (Expr::Column(c), v) | (v, Expr::Column(c)) => (c, vec![v]),
            _ => return None,
        },
        Expr::InList(l) if !l.negated => match l.expr.as_ref() {
            Expr::Column(c) => (c, l.list.iter().collect()),
            _ => return None,
        },
        _ => return None,
    };
    if !is_site_column(input, column) {
        return None;
    }
    values.into_iter().map(text_literal).collect()
}

/// A filter pushed into a patient table's scan: `site = 'x'` or
/// `site IN (…)` on the scan's own columns.
fn scan_filter_sites(conjunct: &Expr) -> Option<BTreeSet<String>> {
    let is_site = |e: &Expr| matches!(e, Expr::Column(c) if c.name == schema::SITE_COLUMN);
    match conjunct {
        Expr::BinaryExpr(b) if b.op == Operator::Eq => {
            if is_site(&b.left) {
                text_literal(&b.right).map(|s| BTreeSet::from([s]))
            } else if is_site(&b.right) {
                text_literal(&b.left).map(|s| BTreeSet::from([s]))
            } else {
                None
            }
        }
        Expr::InList(l) if !l.negated && is_site(&l.expr) => {
            l.list.iter().map(text_literal).collect()
        }
        _ => None,
    }
}

fn text_literal(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        Expr::Cast(c) => text_literal(&c.expr),
        _ => None,
    }
}

/// Whether `column` of `plan`'s output is a patient table's virtual site
/// column, passed through unchanged.
fn is_site_column(plan: &LogicalPlan, column: &Column) -> bool {
    let Ok(index) = plan.schema().index_of_column(column) else {
        return false;
    };
    is_site_output(plan, index)
}

fn is_site_output(plan: &LogicalPlan, index: usize) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => {
            schema::is_patient_table(scan.table_name.table())
                && scan.projected_schema.field(index).name() == schema::SITE_COLUMN
        }
        LogicalPlan::Projection(p) => match p.expr.get(index).map(strip) {
            Some(Expr::Column(c)) => is_site_column(&p.input, c),
            _ => false,
        },
        LogicalPlan::SubqueryAlias(a) => is_site_output(&a.input, index),
        LogicalPlan::Filter(f) => is_site_output(&f.input, index),
        LogicalPlan::Sort(s) => is_site_output(&s.input, index),
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                    is_site_output(&j.left, index)
                }
                JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
                    is_site_output(&j.right, index)
                }
                _ if index < left => is_site_output(&j.left, index),
                _ => is_site_output(&j.right, index - left),
            }
        }
        _ => false,
    }
}

fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip(&a.expr),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{plan_query, register_virtual_schema};
    use datafusion::prelude::SessionContext;
    use ihdsi_catalog::PrivacyPolicy;

    async fn restriction(sql: &str) -> Vec<Option<BTreeSet<String>>> {
        let ctx = SessionContext::new();
        register_virtual_schema(&ctx).expect("schema");
        let plan = plan_query(&ctx.state(), sql, &PrivacyPolicy::threshold(10, false))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        plan.releases
            .iter()
            .map(|r| site_restriction(&r.site_plan))
            .collect()
    }

    fn sites(ids: &[&str]) -> Option<BTreeSet<String>> {
        Some(ids.iter().map(|s| s.to_string()).collect())
    }

    #[tokio::test]
    async fn a_site_predicate_every_row_meets_restricts_the_release() {
        for (sql, want) in [
            (
                "SELECT count(*) FROM person WHERE site = 'lu'",
                sites(&["lu"]),
            ),
            (
                "SELECT count(*) FROM person WHERE 'lu' = site AND year_of_birth > 1950",
                sites(&["lu"]),
            ),
            (
                "SELECT count(*) FROM person WHERE site IN ('lu', 'kr')",
                sites(&["kr", "lu"]),
            ),
            (
                "SELECT count(*) FROM person WHERE site IN ('lu', 'kr') AND site = 'kr'",
                sites(&["kr"]),
            ),
            (
                "SELECT count(*) FROM person p JOIN death d ON d.person_id = p.person_id WHERE p.site = 'us'",
                sites(&["us"]),
            ),
            (
                "SELECT count(*) FROM (SELECT person_id FROM person WHERE site = 'lu') t",
                sites(&["lu"]),
            ),
            (
                "SELECT n, count(*) FROM (SELECT person_id, count(*) AS n FROM drug_exposure WHERE site = 'kr' GROUP BY person_id) t GROUP BY n",
                sites(&["kr"]),
            ),
        ] {
            assert_eq!(restriction(sql).await, vec![want], "{sql}");
        }
    }

    #[tokio::test]
    async fn anything_that_lets_a_row_through_elsewhere_does_not() {
        for sql in [
            "SELECT count(*) FROM person",
            "SELECT count(*) FROM person WHERE site = 'lu' OR year_of_birth > 1950",
            "SELECT count(*) FROM person WHERE site <> 'lu'",
            "SELECT count(*) FROM person WHERE site NOT IN ('lu')",
            "SELECT count(*) FROM person p LEFT JOIN (SELECT person_id FROM death WHERE site = 'lu') d ON d.person_id = p.person_id",
            "SELECT count(*) FROM (SELECT person_id, CAST(year_of_birth AS VARCHAR) AS site FROM person) t WHERE site = 'lu'",
            "SELECT count(*) FROM (SELECT person_id FROM person WHERE site = 'lu' UNION ALL SELECT person_id FROM death) t",
        ] {
            assert_eq!(restriction(sql).await, vec![None], "{sql}");
        }
    }

    #[test]
    fn a_global_aggregation_below_the_boundary_restricts_nothing() {
        use datafusion::functions_aggregate::count::count;
        use datafusion::logical_expr::{col, lit};
        let scan = datafusion::logical_expr::table_scan(
            Some("person"),
            &schema::table("person").expect("person").schema,
            None,
        )
        .expect("scan")
        .filter(col("site").eq(lit("lu")))
        .expect("filter");
        let grouped = scan
            .clone()
            .aggregate(vec![col("person_id")], vec![count(lit(1))])
            .expect("grouped")
            .build()
            .expect("plan");
        assert_eq!(rows_at(&grouped), sites(&["lu"]));
        let global: LogicalPlan = scan
            .aggregate(
                Vec::<datafusion::logical_expr::Expr>::new(),
                vec![count(lit(1))],
            )
            .expect("global")
            .build()
            .expect("plan");
        assert_eq!(rows_at(&global), None);
        // As the release's own aggregation it is the release, whose pruned
        // sites would have answered with a row on no patient.
        assert_eq!(site_restriction(&global), sites(&["lu"]));
    }
}
