//! The shapes of generated queries: a grouped aggregate over one patient
//! table (the common case, with joins, cohorts, dates and parameters), a
//! union of two releases, a window over a released aggregate, statements
//! deep or wide enough to reach the statement limits, binned statistics
//! ([`super::binned`]), and row-level output that must be refused.

use super::generated::{Generated, finish};
use super::{Rng, TABLES, Table, aggregate, predicate, predicates};

/// One generated query.
pub fn query(rng: &mut Rng) -> Generated {
    match rng.below(100) {
        0..=2 => row_level(rng),
        3..=9 => union(rng),
        10..=16 => window(rng),
        17..=21 => deep_or_wide(rng),
        22..=29 => super::binned::binned(rng),
        _ => {
            let (text, keys) = grouped(rng);
            finish(text, keys)
        }
    }
}

/// Row-level output, which is always refused.
fn row_level(rng: &mut Rng) -> Generated {
    let t = rng.pick(TABLES);
    let q = t.alias;
    let sql = format!(
        "SELECT {q}.person_id, {q}.{} FROM {} {q} WHERE {}",
        rng.pick(t.keys),
        t.name,
        predicate(rng, t, q)
    );
    finish(sql, 0)
}

/// A group key of `t` (qualified by `q`): a column, or a date part.
fn key(rng: &mut Rng, t: &Table, q: &str) -> String {
    match (t.date, rng.below(10)) {
        (Some(d), 0) => format!("date_part('year', {q}.{d})"),
        (Some(d), 1) => format!("date_trunc('month', {q}.{d})"),
        _ => format!("{q}.{}", rng.pick(t.keys)),
    }
}

/// The cohort a query may be restricted to: persons with a condition, as
/// an `IN` subquery, a union, intersection or difference of two such sets,
/// a CTE joined or tested, or an `EXISTS` correlated on the patient.
enum Cohort {
    None,
    In(String),
    Cte(String),
    Exists { negated: bool, condition: i64 },
}

fn cohort(rng: &mut Rng) -> Cohort {
    let condition = rng.pick(&[197508, 381270, 320128]);
    let drug = rng.pick(&[1397599, 789578]);
    let persons = format!(
        "SELECT person_id FROM condition_occurrence WHERE condition_concept_id = {condition}"
    );
    match rng.below(14) {
        0 | 1 => Cohort::In(persons),
        2 => Cohort::In(format!(
            "{persons} UNION SELECT person_id FROM drug_exposure WHERE drug_concept_id = {drug}"
        )),
        3 => Cohort::Cte(persons),
        4 => Cohort::In(format!(
            "{persons} INTERSECT SELECT person_id FROM drug_exposure WHERE drug_concept_id = {drug}"
        )),
        5 => Cohort::In(format!("{persons} EXCEPT SELECT person_id FROM death")),
        6 | 7 => Cohort::Exists {
            negated: rng.chance(50),
            condition: *condition,
        },
        _ => Cohort::None,
    }
}

/// A grouped aggregate over one table, and its number of keys.
fn grouped(rng: &mut Rng) -> (String, usize) {
    let t = rng.pick(TABLES);
    let q = t.alias;
    let mut from = format!("{} {q}", t.name);
    let mut wheres = predicates(rng, t, q, 2);
    let mut key_sources: Vec<(&Table, &str)> = vec![(t, q)];
    if t.name != "person" && rng.chance(30) {
        from.push_str(&format!(" JOIN person p ON p.person_id = {q}.person_id"));
        key_sources.push((&TABLES[0], "p"));
        wheres.extend(predicates(rng, &TABLES[0], "p", 1));
    }
    if let Some(d) = t.date.filter(|_| rng.chance(10)) {
        wheres.push(format!("{q}.{d} >= DATE '2015-01-01'"));
    }
    let mut with = String::new();
    match cohort(rng) {
        Cohort::None => {}
        Cohort::In(persons) => wheres.push(format!("{q}.person_id IN ({persons})")),
        Cohort::Exists { negated, condition } => wheres.push(format!(
            "{}EXISTS (SELECT 1 FROM condition_occurrence x WHERE x.person_id = {q}.person_id AND x.condition_concept_id = {condition})",
            if negated { "NOT " } else { "" }
        )),
        Cohort::Cte(persons) => {
            with = format!("WITH cohort AS ({persons}) ");
            if rng.chance(50) {
                from.push_str(&format!(" JOIN cohort c ON c.person_id = {q}.person_id"));
            } else {
                wheres.push(format!("{q}.person_id IN (SELECT person_id FROM cohort)"));
            }
        }
    }
    let keys: Vec<String> = (0..rng.below(3))
        .map(|_| {
            let (kt, kq) = *rng.pick(&key_sources);
            key(rng, kt, kq)
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let aggregates: Vec<String> = (0..1 + rng.below(3))
        .map(|n| aggregate(rng, t, q, n))
        .collect();
    let mut select: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} AS k{i}"))
        .collect();
    select.extend(aggregates);
    let mut sql = format!("{with}SELECT {} FROM {from}", select.join(", "));
    if !wheres.is_empty() {
        sql.push_str(&format!(" WHERE {}", wheres.join(" AND ")));
    }
    if !keys.is_empty() {
        let grouping = match rng.below(10) {
            0 => format!("ROLLUP({})", keys.join(", ")),
            1 => format!("CUBE({})", keys.join(", ")),
            _ => keys.join(", "),
        };
        sql.push_str(&format!(" GROUP BY {grouping}"));
        if rng.chance(20) {
            sql.push_str(&format!(" HAVING count(*) > {}", rng.below(50)));
        }
    }
    (sql, keys.len())
}

/// A single-key, single-aggregate release of `t`, with a filter.
fn simple_release(rng: &mut Rng, t: &Table, with_key: bool) -> String {
    let q = t.alias;
    let wheres = predicates(rng, t, q, 1);
    let filter = if wheres.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", wheres.join(" AND "))
    };
    if with_key {
        let k = rng.pick(t.keys);
        format!(
            "SELECT {q}.{k} AS k0, count(*) AS a0 FROM {} {q}{filter} GROUP BY {q}.{k}",
            t.name
        )
    } else {
        format!("SELECT count(*) AS a0 FROM {} {q}{filter}", t.name)
    }
}

/// Two releases in one query: `UNION ALL` of labelled totals, or `UNION`
/// (distinct) of two groupings of one table.
fn union(rng: &mut Rng) -> Generated {
    if rng.chance(50) {
        let (a, b) = (rng.pick(TABLES), rng.pick(TABLES));
        let sql = format!(
            "SELECT 'a' AS src, a0 FROM ({}) x UNION ALL SELECT 'b' AS src, a0 FROM ({}) y",
            simple_release(rng, a, false),
            simple_release(rng, b, false)
        );
        return finish(sql, 1);
    }
    let t = rng.pick(TABLES);
    let q = t.alias;
    let k = rng.pick(t.keys);
    let total = format!(
        "SELECT {q}.{k} AS k0, count(*) AS a0 FROM {} {q} GROUP BY {q}.{k}",
        t.name
    );
    let filtered = format!(
        "SELECT {q}.{k} AS k0, count(*) AS a0 FROM {} {q} WHERE {} GROUP BY {q}.{k}",
        t.name,
        predicate(rng, t, q)
    );
    finish(format!("{total} UNION {filtered}"), 2)
}

/// A window function over a released aggregate: ranks and shares of the
/// total, computed at the coordinator over released groups only.
fn window(rng: &mut Rng) -> Generated {
    let t = rng.pick(TABLES);
    let inner = simple_release(rng, t, true);
    let over = match rng.below(4) {
        0 => "rank() OVER (ORDER BY a0 DESC, k0) AS w",
        1 => "a0 * 100.0 / sum(a0) OVER () AS w",
        2 => "sum(a0) OVER (ORDER BY k0 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS w",
        _ => "row_number() OVER (ORDER BY k0) AS w",
    };
    finish(format!("SELECT k0, a0, {over} FROM ({inner}) s"), 1)
}

/// Long chains and deep nesting: within the statement limits (answered)
/// or past them (refused by name, the coordinator still serving).
fn deep_or_wide(rng: &mut Rng) -> Generated {
    let terms = *rng.pick(&[8usize, 40, 120, 250, 300, 600]);
    let sql = match rng.below(4) {
        0 => {
            let chain: Vec<String> = (0..terms)
                .map(|i| format!("p.year_of_birth > {}", 1800 + i % 150))
                .collect();
            format!(
                "SELECT count(*) AS a0 FROM person p WHERE {}",
                chain.join(" AND ")
            )
        }
        1 => {
            let chain: Vec<String> = (0..terms)
                .map(|i| format!("p.gender_concept_id = {}", 8000 + i))
                .collect();
            format!(
                "SELECT count(*) AS a0 FROM person p WHERE {} OR p.year_of_birth > 1900",
                chain.join(" OR ")
            )
        }
        2 => {
            let sum = vec!["p.year_of_birth"; terms.min(120)].join(" + ");
            format!("SELECT sum({sum}) AS a0 FROM person p")
        }
        _ => {
            let depth = terms.min(60) / 2;
            format!(
                "SELECT count(*) AS a0 FROM person p WHERE {}p.year_of_birth > 1950{}",
                "(".repeat(depth),
                ")".repeat(depth)
            )
        }
    };
    finish(sql, 0)
}
