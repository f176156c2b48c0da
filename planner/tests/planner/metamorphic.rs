//! Metamorphic: every query the admission rules refuse stays refused when
//! the tables it reads are wrapped in what renames or hides a column.
//!
//! The refused queries are those of `tests/queries/refused.slt` and the
//! pinned intake and admission files. Each patient table a query reads
//! (`FROM t` or `JOIN t`, aliased or not) is replaced, one wrapping at a
//! time, by
//!
//! * a subquery that renames every column (`year_of_birth AS
//!   year_of_birth_r`, the query using the new names),
//! * a `UNION ALL` whose empty first branch (NULLs) names them anew,
//! * the nullable side of a `LEFT JOIN` from `person`, renamed,
//! * a CTE that renames them;
//!
//! and, apart, the query's first integer compared with a column becomes a
//! bound parameter. A rule keyed on a column's name, or that loses a
//! column on the nullable side of a join, lets one of these through.

use std::sync::LazyLock;

use datafusion::common::ScalarValue;
use ihdsi_catalog::{PRIVACY_UNIT, PrivacyPolicy, QueryLimits, SITE_COLUMN, schema};
use ihdsi_planner::analysis::exprs::sql_type;
use ihdsi_planner::{Rule, check_limits, plan_query, plan_query_with_params};
use regex::{Captures, Regex};

use crate::site_sql::session;

const KEYWORDS: &[&str] = &[
    "where",
    "join",
    "left",
    "right",
    "inner",
    "full",
    "cross",
    "on",
    "group",
    "order",
    "union",
    "intersect",
    "except",
    "limit",
    "having",
    "using",
    "natural",
    "outer",
    "window",
];

static TABLE_REF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(FROM|JOIN)\s+([a-z_]+)\b(\s+(?:AS\s+)?([a-z_][a-z0-9_]*))?").expect("regex")
});

static COMPARED_INTEGER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(=|<>|<=|>=|<|>)\s*(\d+)\b").expect("regex"));

/// The refused queries of the slt files: each `query error` record's SQL.
fn refused_queries() -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests");
    let mut queries = Vec::new();
    for file in [
        "queries/refused.slt",
        "pinned/1_intake.slt",
        "pinned/2_admission.slt",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).expect("slt file");
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.starts_with("query error") || line.starts_with("statement error") {
                let sql: Vec<&str> = lines
                    .by_ref()
                    .take_while(|l| !l.trim().is_empty())
                    .collect();
                queries.push(sql.join("\n"));
            }
        }
    }
    queries
}

/// `sql` with every patient table it reads replaced by the FROM item
/// `item(table, n)` (the n-th table in the query: a parenthesised subquery
/// or a CTE's name), under the alias it was read by.
fn wrap_tables(sql: &str, item: &mut dyn FnMut(&str, usize) -> String) -> String {
    let mut n = 0;
    TABLE_REF
        .replace_all(sql, |c: &Captures<'_>| {
            let (keyword, table) = (&c[1], &c[2]);
            if !schema::is_patient_table(table) {
                return c[0].to_string();
            }
            n += 1;
            let from = item(table, n);
            match c.get(4).map(|a| a.as_str()) {
                Some(a) if !KEYWORDS.contains(&a.to_ascii_lowercase().as_str()) => {
                    format!("{keyword} {from} AS {a}")
                }
                _ => format!(
                    "{keyword} {from} AS {table}{}",
                    c.get(3).map_or("", |m| m.as_str())
                ),
            }
        })
        .into_owned()
}

/// The columns of `table` as analysts see it: its file's, and `site`.
fn columns(table: &str) -> Vec<String> {
    let t = schema::table(table).expect("table");
    let mut names: Vec<String> = t
        .file_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    names.push(SITE_COLUMN.to_string());
    names
}

/// `sql` with every column of the patient tables it reads renamed
/// (`year_of_birth` → `year_of_birth_r`), so that a rule keyed on names
/// no longer sees the name where the column is used.
fn renamed_references(sql: &str) -> String {
    let mut names: Vec<String> = TABLE_REF
        .captures_iter(sql)
        .filter(|c| schema::is_patient_table(&c[2]))
        .flat_map(|c| columns(&c[2]))
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return sql.to_string();
    }
    let pattern = Regex::new(&format!(r"(?i)\b({})\b", names.join("|"))).expect("regex");
    pattern.replace_all(sql, "${1}_r").into_owned()
}

/// `c AS c_r, ...` over the columns of `table`, read from `from.`.
fn renaming(table: &str, from: &str) -> String {
    columns(table)
        .iter()
        .map(|c| format!("{from}{c} AS {c}_r"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CAST(NULL AS type) AS c_r, ...` over the columns of `table`: a branch
/// that names the columns without reading their values.
fn nulls(table: &str) -> String {
    let t = schema::table(table).expect("table");
    t.file_schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            // No NULL literal has a microsecond timestamp's type: a date
            // or time column names itself, and so does the identifier,
            // which every release needs.
            t if t.is_temporal() || f.name() == PRIVACY_UNIT => format!("{0} AS {0}_r", f.name()),
            t => format!("CAST(NULL AS {}) AS {}_r", sql_type(t), f.name()),
        })
        .chain([format!("CAST(NULL AS VARCHAR) AS {SITE_COLUMN}_r")])
        .collect::<Vec<_>>()
        .join(", ")
}

/// The wrappings, each as its name and the rewritten query: the columns
/// are renamed where the query uses them, and each table is wrapped in
/// what renames them.
fn wrappings(sql: &str) -> Vec<(&'static str, String)> {
    let body = renamed_references(sql);
    let union = wrap_tables(&body, &mut |t, _| {
        format!(
            "(SELECT {} FROM {t} WHERE 1 = 0 UNION ALL SELECT {} FROM {t})",
            nulls(t),
            columns(t).join(", ")
        )
    });
    let renamed = wrap_tables(&body, &mut |t, _| {
        format!("(SELECT {} FROM {t})", renaming(t, ""))
    });
    let left_join = wrap_tables(&body, &mut |t, n| {
        format!(
            "(SELECT {} FROM person v{n} LEFT JOIN {t} w{n} ON v{n}.person_id = w{n}.person_id)",
            renaming(t, &format!("w{n}."))
        )
    });
    let mut ctes = Vec::new();
    let with_ctes = wrap_tables(&body, &mut |t, n| {
        ctes.push(format!("cte_{n} AS (SELECT {} FROM {t})", renaming(t, "")));
        format!("cte_{n}")
    });
    let cte = match with_ctes.to_ascii_lowercase().starts_with("with ") {
        true => format!("WITH {}, {}", ctes.join(", "), &with_ctes[5..]),
        false if ctes.is_empty() => with_ctes,
        false => format!("WITH {} {with_ctes}", ctes.join(", ")),
    };
    vec![
        (
            "a UNION ALL whose empty first branch names the columns",
            union,
        ),
        ("a renaming subquery", renamed),
        ("the nullable side of a LEFT JOIN to person", left_join),
        ("a renaming CTE", cte),
    ]
}

#[tokio::test]
async fn refused_queries_stay_refused_under_renaming_wrappings() {
    let state = session();
    let policy = PrivacyPolicy::threshold(10, false);
    let refused =
        |r: &Result<_, ihdsi_planner::PlanError>| matches!(r, Err(e) if e.rule().is_some());
    let (mut checked, mut inapplicable, mut escaped) = (0, 0, Vec::new());
    let limits = QueryLimits::default();
    for sql in refused_queries() {
        if check_limits(&sql, &limits).is_err() {
            continue; // refused before planning, as the server does
        }
        match plan_query(&state, &sql, &policy).await {
            // Refused on the plan: what the wrappings must not change.
            Err(e) if e.rule().is_some_and(|r| r != Rule::HonouredAsWritten) => {}
            // Syntax, schema, or constructs refused from the text.
            _ => continue,
        }
        let mut variants = wrappings(&sql);
        variants.retain(|(_, v)| *v != sql);
        for (how, variant) in variants {
            let got = plan_query(&state, &variant, &policy).await.map(|_| ());
            match got {
                Ok(()) => escaped.push(format!("{how}: {variant}")),
                r if refused(&r) => checked += 1,
                _ => inapplicable += 1,
            }
        }
        if let Some(c) = COMPARED_INTEGER.captures(&sql) {
            let value: i64 = c[2].parse().expect("integer");
            let variant = COMPARED_INTEGER.replace(&sql, "$1 ?").into_owned();
            let params = Some(vec![ScalarValue::Int64(Some(value))]);
            let planned = plan_query_with_params(&state, &variant, params, &policy).await;
            match planned.map(|_| ()) {
                Ok(()) => escaped.push(format!("a bound parameter: {variant}")),
                r if refused(&r) => checked += 1,
                _ => inapplicable += 1,
            }
        }
    }
    assert!(
        escaped.is_empty(),
        "admitted after wrapping:\n{}",
        escaped.join("\n")
    );
    assert!(
        checked >= 200 && inapplicable * 10 <= checked,
        "{checked} wrapped refusals checked, {inapplicable} wrappings did not plan: the test tests too little"
    );
}
