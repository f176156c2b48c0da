//! `EXPLAIN`: what each site will run, and what the coordinator does with it,
//! laid out to be read in a terminal: the site SQL a clause a line, the
//! merge under the analyst's column names.

use std::collections::HashMap;

use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::analysis::exprs::strip_alias;
use crate::error::Result;
use crate::release::aggregates::Merge;
use crate::split::FederatedPlan;

/// `(plan_type, plan)` rows, as DataFusion's own EXPLAIN returns them.
pub fn explain_rows(
    plan: &FederatedPlan,
    federation_min: u64,
    site_min_note: &str,
) -> Result<Vec<(String, String)>> {
    let mut rows = Vec::new();
    let coordinator = plan.placeholder_plan()?;
    let shown = output_names(&coordinator);
    for r in &plan.releases {
        rows.push((
            format!(
                "site_subplan[{}] (sent to each site hosting {})",
                r.index,
                r.tables.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            layout_sql(&r.site_sql),
        ));
        let mut merge = vec![format!("group by {} key(s)", r.key_count)];
        if r.time_axis.is_some() {
            merge.push(format!(
                "coarsen each site's bins under its own min_group_size ({site_min_note}): the curve ends at the last bin with that many at risk, and a bin with 1 to k-1 events, competing events or censorings merges with the next"
            ));
            merge.push(format!(
                "coarsen the merged bins the same way under {federation_min}; withhold a stratum that cannot pass"
            ));
        } else {
            merge.push(format!(
                "drop a site's group if ihdsi_patients < its own min_group_size ({site_min_note})"
            ));
            merge.push(format!(
                "drop a merged group if Σ ihdsi_patients < {federation_min}"
            ));
        }
        if !r.dominance.is_empty() {
            merge.push("withhold a merged group if a SUM cell fails the p% dominance rule".into());
        }
        let names: Vec<String> = r.schema.fields().iter().map(|f| f.name().clone()).collect();
        for (i, m) in r.merges.iter().enumerate() {
            let name = names.get(r.key_count + i).cloned().unwrap_or_default();
            let name = shown.get(&name).unwrap_or(&name);
            merge.push(format!("{name} = {}", describe(m)));
        }
        rows.push((format!("coordinator_merge[{}]", r.index), merge.join("\n")));
    }
    rows.push((
        "coordinator_plan".into(),
        coordinator.display_indent().to_string(),
    ));
    Ok(rows)
}

/// The analyst's name for each column of a released table that the
/// result passes through as it is: the top projection's names of bare
/// columns (`count(*) AS n` is `n`), looking through sorts and limits.
pub fn output_names(plan: &LogicalPlan) -> HashMap<String, String> {
    match plan {
        LogicalPlan::Projection(p) => p
            .expr
            .iter()
            .filter_map(|e| match strip_alias(e) {
                Expr::Column(c) => Some((c.name.clone(), e.schema_name().to_string())),
                _ => None,
            })
            .collect(),
        LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::SubqueryAlias(_) => plan
            .inputs()
            .first()
            .map(|i| output_names(i))
            .unwrap_or_default(),
        _ => HashMap::new(),
    }
}

/// `sql` a clause a line (`SELECT` items one a line, then `FROM`,
/// `WHERE`, `GROUP BY`, …), subqueries kept on their clause's line; the
/// text itself is unchanged but for the line breaks.
pub fn layout_sql(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return sql.to_string();
    };
    let clause = |t: &Token| match t {
        Token::Word(w) => matches!(
            w.keyword,
            Keyword::FROM
                | Keyword::WHERE
                | Keyword::GROUP
                | Keyword::HAVING
                | Keyword::ORDER
                | Keyword::LIMIT
                | Keyword::UNION
        ),
        _ => false,
    };
    let (mut out, mut depth) = (String::with_capacity(sql.len() + 32), 0usize);
    for token in &tokens {
        match token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && clause(token) {
            let trimmed = out.trim_end().len();
            out.truncate(trimmed);
            out.push('\n');
        }
        if depth == 0 && *token == Token::Comma {
            out.push_str(",\n ");
            continue;
        }
        out.push_str(&token.to_string());
    }
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_sql_is_laid_out_a_clause_a_line() {
        let sql = "SELECT p.gender_concept_id AS k0, count(1) AS p0, count(DISTINCT p.person_id) AS ihdsi_patients FROM person AS p WHERE p.person_id IN (SELECT death.person_id FROM death) GROUP BY p.gender_concept_id";
        assert_eq!(
            layout_sql(sql),
            "SELECT p.gender_concept_id AS k0,\n  count(1) AS p0,\n  count(DISTINCT p.person_id) AS ihdsi_patients\nFROM person AS p\nWHERE p.person_id IN (SELECT death.person_id FROM death)\nGROUP BY p.gender_concept_id"
        );
    }
}
