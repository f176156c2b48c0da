//! Binned statistics (`docs/statistics.md`) in generated queries: survival
//! curves, summaries, log-rank tests, cumulative incidence, histograms and
//! quantiles over one-row-per-patient follow-up cohorts, with random
//! strata, filters, grids (some finer than the federation allows, some as
//! parameters), event spellings and times (some that are not a date
//! difference), and cohorts of many rows per patient that must be refused.
//!
//! At thresholds 1 nothing is coarsened, so an answer must equal the same
//! function computed on the pooled rows by the oracle session, which
//! registers the functions on rows; SQL's `median` and `percentile_cont`
//! are compared with `quantile` on the catalog's grid of the column.

use super::generated::{Generated, finish, parameter};
use super::{Rng, SITES};

/// The declared grid of `person.year_of_birth` in the catalog (years).
const YEAR_OF_BIRTH_WIDTH: i64 = 2;

/// One generated binned statistic.
pub(super) fn binned(rng: &mut Rng) -> Generated {
    let cohort = follow_up(rng);
    let key = stratum(rng);
    match rng.below(7) {
        0 | 1 => curve(rng, "kaplan_meier", "died", &cohort, key),
        2 => curve(rng, "cumulative_incidence", "cause", &cohort, key),
        3 => summary(rng, &cohort, key),
        4 => logrank(rng, &cohort),
        5 => histogram(rng, &cohort, key),
        _ => quantile(rng, &cohort, key),
    }
}

/// A stratum column of the cohort (`c.sex`, `c.site`), or none.
fn stratum(rng: &mut Rng) -> Option<&'static str> {
    match rng.below(4) {
        0 => Some("c.sex"),
        1 => Some("c.site"),
        _ => None,
    }
}

/// A follow-up cohort: per patient sex, site, year of birth, a time, a
/// death flag and a cause (2 death, 1 born before a year, 0 censored).
/// Usually one row per patient; sometimes the raw observation periods,
/// which a statistic must refuse.
fn follow_up(rng: &mut Rng) -> String {
    let time = match rng.below(8) {
        0..=2 => "o.last_day - o.first_day",
        3 | 4 => "coalesce(d.died, o.last_day) - o.first_day",
        5 => "least(d.died, o.last_day) - o.first_day",
        6 => "o.last_day - o.first_day + 1",
        _ => "p.year_of_birth",
    };
    // Many rows per patient: every observation period beside the patient's
    // span, which a statistic must refuse.
    let periods = if rng.chance(8) {
        "observation_period op ON op.person_id = p.person_id JOIN "
    } else {
        ""
    };
    let born = *rng.pick(&[1950i64, 1960, 1970]);
    let born = if rng.chance(15) {
        parameter(born)
    } else {
        born.to_string()
    };
    let filter = match rng.below(6) {
        0 => format!(" WHERE p.site <> '{}'", rng.pick(SITES)),
        1 => format!(" WHERE p.year_of_birth > {}", parameter(1940)),
        2 => " WHERE p.person_id IN (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = 201826)".to_string(),
        _ => String::new(),
    };
    format!(
        "SELECT p.person_id, p.gender_concept_id AS sex, p.site AS site, p.year_of_birth AS yob, \
         {time} AS days, CASE WHEN d.died IS NOT NULL THEN 1 ELSE 0 END AS died, \
         CASE WHEN d.died IS NOT NULL THEN 2 WHEN p.year_of_birth < {born} THEN 1 ELSE 0 END AS cause \
         FROM person p JOIN {periods}(SELECT person_id, min(observation_period_start_date) AS first_day, \
         max(observation_period_end_date) AS last_day FROM observation_period GROUP BY person_id) o \
         ON o.person_id = p.person_id \
         LEFT JOIN (SELECT person_id, min(death_date) AS died FROM death GROUP BY person_id) d \
         ON d.person_id = p.person_id{filter}"
    )
}

/// A grid in days: usually allowed, sometimes too fine, empty or negative,
/// sometimes a parameter (which a grid may not be).
fn days(rng: &mut Rng) -> String {
    let w = *rng.pick(&[30i64, 31, 90, 182, 365, 365, 730, 7, 1, 0, -30]);
    if rng.chance(5) {
        parameter(w)
    } else {
        w.to_string()
    }
}

/// The event argument: the flag as an integer or a boolean, or a cause
/// column with more than two values.
fn event(rng: &mut Rng, column: &str) -> String {
    match rng.below(6) {
        0 => format!("c.{column} = 1"),
        1 => format!("c.{column} > 0"),
        2 if column == "died" => "c.cause".to_string(),
        _ => format!("c.{column}"),
    }
}

/// `call` per stratum of `cohort`, its struct (or, for a `list`, each of
/// its elements) unnested to columns after the stratum key `k0`.
fn per_stratum(call: &str, list: bool, cohort: &str, key: Option<&str>) -> Generated {
    let (outer, select, group) = match key {
        Some(k) => ("k0, ", format!("{k} AS k0, "), format!(" GROUP BY {k}")),
        None => ("", String::new(), String::new()),
    };
    let call = if list {
        format!("unnest({call})")
    } else {
        call.to_string()
    };
    finish(
        format!(
            "SELECT {outer}unnest(s) FROM (SELECT {select}{call} AS s FROM ({cohort}) c{group})"
        ),
        usize::from(key.is_some()),
    )
}

/// A curve (a list per stratum).
fn curve(
    rng: &mut Rng,
    function: &str,
    column: &str,
    cohort: &str,
    key: Option<&str>,
) -> Generated {
    let call = format!("{function}(c.days, {}, {})", event(rng, column), days(rng));
    per_stratum(&call, true, cohort, key)
}

/// Median survival with its interval and the restricted mean.
fn summary(rng: &mut Rng, cohort: &str, key: Option<&str>) -> Generated {
    let horizon = *rng.pick(&[365, 1825, 3650, 0]);
    let call = format!(
        "survival_summary(c.days, {}, {}, {horizon})",
        event(rng, "died"),
        days(rng)
    );
    per_stratum(&call, false, cohort, key)
}

/// A log-rank test across sexes or sites, sometimes stratified.
fn logrank(rng: &mut Rng, cohort: &str) -> Generated {
    let (arm, stratum) = match rng.below(4) {
        0 => ("c.sex", ", c.site"),
        1 => ("c.site", ""),
        2 => ("c.site", ", c.sex"),
        _ => ("c.sex", ""),
    };
    let call = format!(
        "logrank_test(c.days, {}, {}, {arm}{stratum})",
        event(rng, "died"),
        days(rng)
    );
    per_stratum(&call, false, cohort, None)
}

/// A histogram of year of birth (or of follow-up) per stratum.
fn histogram(rng: &mut Rng, cohort: &str, key: Option<&str>) -> Generated {
    let call = if rng.chance(70) {
        format!("histogram(c.yob, {})", rng.pick(&[1, 2, 3, 5, 10, 0]))
    } else {
        format!("histogram(c.days, {})", days(rng))
    };
    per_stratum(&call, true, cohort, key)
}

/// A quantile of year of birth: `quantile` on a chosen grid (the same
/// call on both sides), or SQL's spellings on the catalog's grid (the
/// oracle's `quantile` there).
fn quantile(rng: &mut Rng, cohort: &str, key: Option<&str>) -> Generated {
    let p = *rng.pick(&[0.1, 0.25, 0.5, 0.75, 0.9]);
    let on_catalog_grid = |p: f64| format!("quantile(c.yob, {p}, {YEAR_OF_BIRTH_WIDTH})");
    let (call, oracle) = match rng.below(4) {
        0 => {
            let q = format!("quantile(c.yob, {p}, {})", rng.pick(&[2, 4, 5, 10, 1]));
            (q.clone(), q)
        }
        1 => ("median(c.yob)".to_string(), on_catalog_grid(0.5)),
        2 => (
            format!("percentile_cont({p}) WITHIN GROUP (ORDER BY c.yob)"),
            on_catalog_grid(p),
        ),
        _ => (
            format!("approx_percentile_cont(c.yob, {p})"),
            on_catalog_grid(p),
        ),
    };
    let keys = usize::from(key.is_some());
    let text = |q: &str| match key {
        Some(k) => format!("SELECT {k} AS k0, {q} AS a0 FROM ({cohort}) c GROUP BY {k}"),
        None => format!("SELECT {q} AS a0 FROM ({cohort}) c"),
    };
    let mut generated = finish(text(&call), keys);
    generated.oracle_sql = finish(text(&oracle), keys).oracle_sql;
    generated
}
