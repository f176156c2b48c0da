//! The fixed workload: fourteen queries drawn from real use of an OMOP
//! network. Each is plain SQL that DataFusion and DuckDB both accept as
//! written, so all three configurations run the same text, except the
//! survival curve and the histogram: the federation and centralized
//! DataFusion run the engine's `kaplan_meier` and `histogram`, DuckDB the
//! same computation in its own SQL (per-bin counts, numbers at risk and
//! the product-limit estimate by window functions).

/// One benchmark query.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    /// Short name used in tables and plots.
    pub name: &'static str,
    /// What a researcher asks with it.
    pub what: &'static str,
    pub sql: &'static str,
    /// DuckDB's spelling of the same computation, where the engine's own
    /// functions (survival curves, histograms) have no DuckDB name.
    pub duckdb: Option<&'static str>,
}

impl Query {
    /// The text DuckDB runs.
    pub fn duckdb_sql(&self) -> &'static str {
        self.duckdb.unwrap_or(self.sql)
    }
}

/// The trivial aggregate of the small-query latency test.
pub const TRIVIAL: Query = Query {
    name: "trivial_count",
    what: "persons in the network",
    sql: "SELECT count(*) AS persons FROM person",
    duckdb: None,
};

/// The workload, in the order it is reported.
pub const WORKLOAD: &[Query] = &[
    Query {
        name: "achilles_2_gender",
        what: "Achilles 2: persons by gender",
        sql: "SELECT gender_concept_id, count(DISTINCT person_id) AS persons FROM person GROUP BY gender_concept_id",
        duckdb: None,
    },
    Query {
        name: "achilles_10_yob_gender",
        what: "Achilles 10: persons by year of birth and gender",
        sql: "SELECT year_of_birth, gender_concept_id, count(DISTINCT person_id) AS persons FROM person GROUP BY year_of_birth, gender_concept_id",
        duckdb: None,
    },
    Query {
        name: "achilles_400_conditions",
        what: "Achilles 400: persons per condition",
        sql: "SELECT condition_concept_id, count(DISTINCT person_id) AS persons FROM condition_occurrence GROUP BY condition_concept_id",
        duckdb: None,
    },
    Query {
        name: "achilles_1800_measurements",
        what: "Achilles 1800: persons per measurement",
        sql: "SELECT measurement_concept_id, count(DISTINCT person_id) AS persons FROM measurement GROUP BY measurement_concept_id",
        duckdb: None,
    },
    Query {
        name: "achilles_113_periods",
        what: "Achilles 113: persons by number of observation periods (per-patient sub-aggregate)",
        sql: "SELECT num_periods, count(DISTINCT person_id) AS persons FROM (SELECT person_id, count(*) AS num_periods FROM observation_period GROUP BY person_id) t GROUP BY num_periods",
        duckdb: None,
    },
    Query {
        name: "achilles_101_age_first_obs",
        what: "Achilles 101: age at first observation (person joined to a per-patient minimum)",
        sql: "SELECT date_part('year', op.first_start) - p.year_of_birth AS age, count(*) AS persons FROM person p JOIN (SELECT person_id, min(observation_period_start_date) AS first_start FROM observation_period GROUP BY person_id) op ON op.person_id = p.person_id GROUP BY 1",
        duckdb: None,
    },
    Query {
        name: "measurement_stats_unit",
        what: "measurement statistics per concept and unit",
        sql: "SELECT measurement_concept_id, unit_concept_id, count(DISTINCT person_id) AS persons, count(value_as_number) AS n, avg(value_as_number) AS mean, stddev(value_as_number) AS sd FROM measurement GROUP BY measurement_concept_id, unit_concept_id",
        duckdb: None,
    },
    Query {
        name: "bladder_cohort_drugs",
        what: "bladder-cancer cohort CTE joined to drug exposures after diagnosis",
        sql: "WITH cohort AS (SELECT person_id, min(condition_start_date) AS index_date FROM condition_occurrence WHERE condition_concept_id = 197508 GROUP BY person_id) SELECT d.drug_concept_id, count(DISTINCT d.person_id) AS patients, count(*) AS exposures FROM cohort c JOIN drug_exposure d ON d.person_id = c.person_id WHERE d.drug_exposure_start_date >= c.index_date GROUP BY d.drug_concept_id",
        duckdb: None,
    },
    Query {
        name: "bladder_cohort_labs",
        what: "bladder-cancer cohort CTE joined to measurements: mean and variance per lab",
        sql: "WITH cohort AS (SELECT DISTINCT person_id FROM condition_occurrence WHERE condition_concept_id = 197508) SELECT m.measurement_concept_id, count(DISTINCT m.person_id) AS patients, count(*) AS n, avg(m.value_as_number) AS mean, var_samp(m.value_as_number) AS var_s FROM cohort c JOIN measurement m ON m.person_id = c.person_id GROUP BY m.measurement_concept_id",
        duckdb: None,
    },
    Query {
        name: "variants_by_diagnosis",
        what: "variant carriers per gene joined to diagnoses",
        sql: "SELECT co.condition_concept_id, v.target_gene1_symbol AS gene, count(DISTINCT v.person_id) AS patients FROM variant_occurrence v JOIN condition_occurrence co ON co.person_id = v.person_id WHERE co.condition_concept_id IN (197508, 381270) GROUP BY co.condition_concept_id, v.target_gene1_symbol",
        duckdb: None,
    },
    Query {
        name: "levodopa_fills_per_patient",
        what: "Parkinson's: levodopa fills per patient (per-patient sub-aggregate)",
        sql: "SELECT fills, count(*) AS patients FROM (SELECT person_id, count(*) AS fills FROM drug_exposure WHERE drug_concept_id = 789578 GROUP BY person_id) t GROUP BY fills",
        duckdb: None,
    },
    Query {
        name: "group_by_site",
        what: "persons and visits per site",
        sql: "SELECT v.site, count(DISTINCT v.person_id) AS persons, count(*) AS visits FROM visit_occurrence v GROUP BY v.site",
        duckdb: None,
    },
    Query {
        name: "km_by_sex",
        what: "Kaplan-Meier survival by sex on a yearly grid (per-patient follow-up and death)",
        sql: KM_FEDERATED,
        duckdb: Some(KM_DUCKDB),
    },
    Query {
        name: "histogram_yob",
        what: "histogram of year of birth per gender, on the catalog's 2-year bins",
        sql: "SELECT g, unnest(b) FROM (SELECT gender_concept_id AS g, unnest(histogram(year_of_birth, 2)) AS b FROM person GROUP BY gender_concept_id)",
        duckdb: Some(
            "SELECT gender_concept_id, ceil(CAST(year_of_birth AS DOUBLE) / 2.0) * 2.0 AS upper, count(*) AS patients FROM person GROUP BY 1, 2",
        ),
    },
];

/// One row per patient: sex, days observed, death.
macro_rules! km_cohort {
    () => {
        "SELECT p.person_id, p.gender_concept_id AS sex, o.last_day - o.first_day AS days, \
         CASE WHEN d.died IS NOT NULL THEN 1 ELSE 0 END AS died \
         FROM person p \
         JOIN (SELECT person_id, min(observation_period_start_date) AS first_day, max(observation_period_end_date) AS last_day \
               FROM observation_period GROUP BY person_id) o ON o.person_id = p.person_id \
         LEFT JOIN (SELECT person_id, min(death_date) AS died FROM death GROUP BY person_id) d ON d.person_id = p.person_id"
    };
}

const KM_FEDERATED: &str = concat!(
    "SELECT sex, unnest(p) FROM (SELECT sex, unnest(kaplan_meier(days, died, 365)) AS p FROM (",
    km_cohort!(),
    ") c GROUP BY sex)"
);

const KM_DUCKDB: &str = concat!(
    "WITH c AS (",
    km_cohort!(),
    "), bins AS (SELECT sex, ceil(CAST(days AS DOUBLE) / 365.0) * 365.0 AS t, sum(died) AS d, count(*) AS n FROM c GROUP BY sex, t), \
     risk AS (SELECT sex, t, d, n, sum(n) OVER (PARTITION BY sex ORDER BY t DESC) AS at_risk FROM bins) \
     SELECT sex, t, at_risk, d, n - d AS censored, \
     exp(sum(CASE WHEN d < at_risk THEN ln(1.0 - d / at_risk) ELSE -745.0 END) OVER (PARTITION BY sex ORDER BY t)) AS survival, \
     sum(CASE WHEN d < at_risk THEN d / (at_risk * (at_risk - d)) ELSE 0 END) OVER (PARTITION BY sex ORDER BY t) AS greenwood \
     FROM risk"
);
