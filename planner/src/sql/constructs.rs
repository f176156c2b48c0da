//! SQL the engine does not honour, refused by name before planning.
//!
//! The SQL parser accepts the dialects of many engines, and DataFusion's
//! planner silently drops some of what it parses: `TABLESAMPLE` returned
//! the full count, `PREWHERE` dropped its filter, `FOR UPDATE` and
//! `SETTINGS` were ignored. A construct that is not honoured must be
//! refused, never dropped: the analyst would read a number that does not
//! mean what the statement says. Each refusal names the construct and
//! what to write instead.
//!
//! The list comes from a sweep of the parser's query, SELECT and table
//! clauses (sqlparser 0.62): every clause DataFusion 55 plans without
//! honouring is here, and the ones it refuses itself with an unclear
//! message (`DISTRIBUTE BY`, `LIMIT … BY`, `WITH RECURSIVE`) too.
//! The tests below pin each one.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Query, Select, SetExpr, SetOperator, SetQuantifier, TableFactor, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{PlanError, Result};

/// Refuse `sql` if it uses a construct the engine does not honour. A
/// statement that does not parse is left to the planner, which says why.
pub fn check(sql: &str) -> Result<()> {
    let Ok(statements) = Parser::parse_sql(&GenericDialect {}, sql) else {
        return Ok(());
    };
    match statements.visit(&mut Unhonoured) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn refuse(what: &str, instead: &str) -> ControlFlow<PlanError> {
    ControlFlow::Break(PlanError::unsupported(
        crate::rules::Rule::HonouredAsWritten,
        what,
        format!("The engine would not honour it, so it is refused rather than ignored. {instead}"),
    ))
}

/// `INTERSECT ALL` or `EXCEPT ALL` anywhere in a set expression.
fn multiset_operation(body: &SetExpr) -> Option<&'static str> {
    let SetExpr::SetOperation {
        op,
        set_quantifier,
        left,
        right,
    } = body
    else {
        return None;
    };
    let all = matches!(set_quantifier, SetQuantifier::All);
    match op {
        SetOperator::Intersect if all => Some("INTERSECT"),
        SetOperator::Except | SetOperator::Minus if all => Some("EXCEPT"),
        _ => multiset_operation(left).or_else(|| multiset_operation(right)),
    }
}

struct Unhonoured;

impl Visitor for Unhonoured {
    type Break = PlanError;

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<PlanError> {
        if let Some(op) = multiset_operation(&q.body) {
            return refuse(
                &format!("{op} ALL"),
                &format!(
                    "It counts duplicate rows across sites, which no site can see; {op} of patient sets (SELECT person_id … {op} SELECT person_id …) is answered"
                ),
            );
        }
        if q.with.as_ref().is_some_and(|w| w.recursive) {
            return refuse(
                "WITH RECURSIVE",
                "A recursive CTE cannot be split across sites; write the levels out, or compute them per patient",
            );
        }
        if !q.locks.is_empty() {
            return refuse(
                "FOR UPDATE / FOR SHARE",
                "The federation is read-only; remove the lock clause",
            );
        }
        if q.for_clause.is_some() {
            return refuse(
                "FOR XML / FOR JSON / FOR BROWSE",
                "Results are Arrow tables; choose the client's output format instead",
            );
        }
        if q.settings.is_some() {
            return refuse(
                "SETTINGS",
                "Engine settings are not taken from statements; remove the clause",
            );
        }
        if q.format_clause.is_some() {
            return refuse(
                "FORMAT",
                "Results are Arrow tables; choose the client's output format instead",
            );
        }
        if !q.pipe_operators.is_empty() {
            return refuse(
                "pipe syntax (|>)",
                "Write the query as SELECT … FROM … WHERE … GROUP BY …",
            );
        }
        let limit_by = match &q.limit_clause {
            Some(datafusion::sql::sqlparser::ast::LimitClause::LimitOffset {
                limit_by, ..
            }) => !limit_by.is_empty(),
            _ => false,
        };
        if limit_by {
            return refuse(
                "LIMIT … BY",
                "Use a window function (row_number() OVER (PARTITION BY …)) over the released groups",
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<PlanError> {
        let clauses: [(bool, &str, &str); 9] = [
            (
                s.prewhere.is_some(),
                "PREWHERE",
                "Write the condition in WHERE",
            ),
            (
                !s.lateral_views.is_empty(),
                "LATERAL VIEW",
                "Use unnest() in the FROM clause",
            ),
            (
                !s.connect_by.is_empty(),
                "CONNECT BY",
                "Hierarchical queries cannot be split across sites",
            ),
            (
                !s.distribute_by.is_empty(),
                "DISTRIBUTE BY",
                "Remove it: the sites and the coordinator decide how work is spread",
            ),
            (
                !s.cluster_by.is_empty(),
                "CLUSTER BY",
                "Use GROUP BY or ORDER BY",
            ),
            (!s.sort_by.is_empty(), "SORT BY", "Use ORDER BY"),
            (
                s.value_table_mode.is_some(),
                "SELECT AS STRUCT / AS VALUE",
                "Select the columns themselves",
            ),
            (s.top.is_some(), "TOP n", "Use LIMIT n"),
            (
                !s.optimizer_hints.is_empty(),
                "optimizer hints",
                "Remove them: plans are the engine's own",
            ),
        ];
        match clauses.iter().find(|(present, _, _)| *present) {
            Some((_, what, instead)) => refuse(what, instead),
            None => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<PlanError> {
        let sampled = match t {
            TableFactor::Table { sample, .. } | TableFactor::Derived { sample, .. } => {
                sample.is_some()
            }
            _ => false,
        };
        if sampled {
            return refuse(
                "TABLESAMPLE",
                "Sampling is not honoured, and would draw another cohort at every run; narrow the cohort with WHERE instead",
            );
        }
        if let TableFactor::Table {
            with_hints,
            version,
            partitions,
            index_hints,
            json_path,
            ..
        } = t
        {
            let clauses: [(bool, &str, &str); 5] = [
                (
                    !with_hints.is_empty(),
                    "table hints WITH (…)",
                    "Remove them",
                ),
                (
                    version.is_some(),
                    "time travel (FOR SYSTEM_TIME, AT, BEFORE)",
                    "The sites hold their current data only",
                ),
                (
                    !partitions.is_empty(),
                    "PARTITION (…)",
                    "Filter with WHERE instead",
                ),
                (!index_hints.is_empty(), "index hints", "Remove them"),
                (
                    json_path.is_some(),
                    "a JSON path on a table",
                    "Select the columns themselves",
                ),
            ];
            if let Some((_, what, instead)) = clauses.iter().find(|(present, _, _)| *present) {
                return refuse(what, instead);
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every construct of the sweep that DataFusion planned without
    /// honouring, or refused unclearly, is refused by name.
    #[test]
    fn unhonoured_constructs_are_refused_by_name() {
        let cases = [
            (
                "SELECT count(*) FROM person TABLESAMPLE (10 PERCENT)",
                "TABLESAMPLE",
            ),
            (
                "SELECT count(*) FROM person TABLESAMPLE SYSTEM (10)",
                "TABLESAMPLE",
            ),
            (
                "SELECT count(*) FROM (SELECT * FROM person) t TABLESAMPLE (5 ROWS)",
                "TABLESAMPLE",
            ),
            ("SELECT count(*) FROM person WITH (NOLOCK)", "table hints"),
            ("SELECT count(*) FROM person PARTITION (p1)", "PARTITION"),
            ("SELECT count(*) FROM person FOR UPDATE", "FOR UPDATE"),
            (
                "SELECT count(*) FROM person SETTINGS max_threads = 1",
                "SETTINGS",
            ),
            (
                "SELECT count(*) FROM person PREWHERE year_of_birth > 1950",
                "PREWHERE",
            ),
            ("SELECT count(*) FROM person FORMAT JSON", "FORMAT"),
            ("SELECT count(*) FROM person FOR XML AUTO", "FOR XML"),
            (
                "SELECT count(*) FROM person DISTRIBUTE BY gender_concept_id",
                "DISTRIBUTE BY",
            ),
            (
                "SELECT count(*) FROM person CLUSTER BY gender_concept_id",
                "CLUSTER BY",
            ),
            (
                "SELECT count(*) FROM person SORT BY gender_concept_id",
                "SORT BY",
            ),
            ("SELECT TOP 1 count(*) FROM person", "TOP n"),
            (
                "SELECT gender_concept_id, count(*) FROM person GROUP BY 1 LIMIT 1 BY gender_concept_id",
                "LIMIT … BY",
            ),
            (
                "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT count(*) FROM person, r",
                "WITH RECURSIVE",
            ),
            (
                "SELECT count(*) FROM person WHERE person_id IN (SELECT person_id FROM death TABLESAMPLE (1 PERCENT))",
                "TABLESAMPLE",
            ),
        ];
        for (sql, what) in cases {
            let err = check(sql).expect_err(sql).to_string();
            assert!(err.contains(what), "{sql}: {err}");
            assert!(err.contains("refused rather than ignored"), "{sql}: {err}");
        }
    }

    #[test]
    fn ordinary_statements_pass() {
        for sql in [
            "SELECT count(*) FROM person",
            "SELECT ALL gender_concept_id, count(*) FROM person GROUP BY 1 ORDER BY 1 LIMIT 5 OFFSET 1",
            "WITH c AS (SELECT person_id FROM death) SELECT count(*) FROM person WHERE person_id IN (SELECT person_id FROM c)",
            "SELECT count(*) FROM person FINAL",
            "SELECT count(*) FROM (SELECT person_id FROM death INTERSECT SELECT person_id FROM person) t",
            "SELECT site, n, rank() OVER w FROM (SELECT site, count(*) AS n FROM person GROUP BY site) t WINDOW w AS (ORDER BY n)",
            "not sql at all",
        ] {
            check(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
}
