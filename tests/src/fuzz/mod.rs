//! A grammar-based generator of cohort SQL over the OMOP schema, for the
//! fuzzing suite: random group keys (columns, dates, constants), aggregates,
//! FILTER, CASE, `IN` subqueries and CTE cohorts, joins on `person_id`,
//! HAVING, set operations, window functions over released aggregates,
//! positional parameters, deep or wide expressions (some past the
//! statement limits), and binned statistics (survival curves, tests,
//! histograms, quantiles). Each query is either answered, equal to the pooled
//! oracle at thresholds 1, or refused with a clear message.
//!
//! Deterministic: the same seed gives the same queries on every machine.

mod binned;
mod generated;
mod shapes;

pub use generated::Generated;
pub use shapes::query;

/// A small, seedable generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One patient table as the generator uses it.
struct Table {
    name: &'static str,
    alias: &'static str,
    /// Group keys and filter columns: concept ids and small integers.
    keys: &'static [&'static str],
    /// Numeric columns with declared bounds (SUM and AVG may read them).
    values: &'static [&'static str],
    /// Literals the key columns take in the synthetic cohort.
    literals: &'static [i64],
    /// Its main date column, if it has one.
    date: Option<&'static str>,
}

const TABLES: &[Table] = &[
    Table {
        name: "person",
        alias: "p",
        keys: &[
            "gender_concept_id",
            "race_concept_id",
            "year_of_birth",
            "site",
        ],
        values: &["year_of_birth"],
        literals: &[8507, 8532, 8527, 8516, 1950, 1960, 1970],
        date: None,
    },
    Table {
        name: "condition_occurrence",
        alias: "co",
        keys: &["condition_concept_id", "site"],
        values: &[],
        literals: &[197508, 381270, 320128, 201826],
        date: Some("condition_start_date"),
    },
    Table {
        name: "drug_exposure",
        alias: "de",
        keys: &["drug_concept_id", "site"],
        values: &["days_supply", "quantity"],
        literals: &[1397599, 789578, 30, 90],
        date: Some("drug_exposure_start_date"),
    },
    Table {
        name: "measurement",
        alias: "m",
        keys: &["measurement_concept_id", "site"],
        values: &["value_as_number"],
        literals: &[3000963, 10, 100],
        date: Some("measurement_date"),
    },
    Table {
        name: "observation",
        alias: "o",
        keys: &["observation_concept_id", "site"],
        values: &["value_as_number"],
        literals: &[2_000_000_201, 20, 40],
        date: Some("observation_date"),
    },
];

const SITES: &[&str] = &["lu", "us", "kr"];

/// A predicate on `column` of `t` (qualified by `q`).
fn predicate(rng: &mut Rng, t: &Table, q: &str) -> String {
    let column = rng.pick(t.keys);
    if *column == "site" {
        return match rng.below(3) {
            0 => format!("{q}.site = '{}'", rng.pick(SITES)),
            1 => format!("{q}.site IN ('{}', '{}')", rng.pick(SITES), rng.pick(SITES)),
            _ => format!("{q}.site <> '{}'", rng.pick(SITES)),
        };
    }
    let a = *rng.pick(t.literals);
    let b = *rng.pick(t.literals);
    // Some comparisons take their value as a positional parameter.
    let value = if rng.chance(10) {
        generated::parameter(a)
    } else {
        a.to_string()
    };
    match rng.below(6) {
        0 => format!("{q}.{column} = {value}"),
        1 => format!("{q}.{column} <> {a}"),
        2 => format!("{q}.{column} > {value}"),
        3 => format!("{q}.{column} IN ({a}, {b})"),
        4 => format!("{q}.{column} BETWEEN {} AND {}", a.min(b), a.max(b)),
        _ => format!("NOT ({q}.{column} < {a})"),
    }
}

fn predicates(rng: &mut Rng, t: &Table, q: &str, max: usize) -> Vec<String> {
    (0..rng.below(max + 1))
        .map(|_| predicate(rng, t, q))
        .collect()
}

/// One aggregate over `t` (qualified by `q`).
fn aggregate(rng: &mut Rng, t: &Table, q: &str, n: usize) -> String {
    let value = if t.values.is_empty() {
        None
    } else {
        Some(*rng.pick(t.values))
    };
    if rng.chance(6) {
        // Shapes the engine must refuse, clearly.
        let key = rng.pick(t.keys);
        let refused = [
            format!("count(DISTINCT {q}.{key})"),
            format!("median({q}.person_id)"),
            format!("array_agg({q}.person_id)"),
            format!("string_agg(CAST({q}.person_id AS VARCHAR), ',')"),
        ];
        return format!("{} AS a{n}", rng.pick(&refused));
    }
    let expr = match (rng.below(8), value) {
        (0, _) => "count(*)".to_string(),
        (1, _) => format!("count(DISTINCT {q}.person_id)"),
        (2, Some(v)) => format!("sum({q}.{v})"),
        (3, Some(v)) => format!("avg({q}.{v})"),
        (4, Some(v)) => format!("stddev({q}.{v})"),
        (5, _) => format!("count(*) FILTER (WHERE {})", predicate(rng, t, q)),
        (6, _) => format!("sum(CASE WHEN {} THEN 1 ELSE 0 END)", predicate(rng, t, q)),
        (7, Some(v)) => format!("avg({q}.{v}) FILTER (WHERE {})", predicate(rng, t, q)),
        _ => "count(*)".to_string(),
    };
    format!("{expr} AS a{n}")
}

/// Whether a refusal's text is a clear one: no internal error, no
/// DataFusion bug-report text, no Rust type names.
pub fn is_clear_refusal(message: &str) -> bool {
    let lower = message.to_lowercase();
    !(lower.contains("internal")
        || lower.contains("bug report")
        || lower.contains("panicked")
        || lower.contains("schema error")
        || message.contains("::"))
}
