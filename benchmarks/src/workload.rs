//! The fixed workload: twelve queries drawn from real use of an OMOP
//! network. Each is plain SQL that DataFusion and DuckDB both accept as
//! written, so all three configurations run the same text.

/// One benchmark query.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    /// Short name used in tables and plots.
    pub name: &'static str,
    /// What a researcher asks with it.
    pub what: &'static str,
    pub sql: &'static str,
}

/// The trivial aggregate of the small-query latency test.
pub const TRIVIAL: Query = Query {
    name: "trivial_count",
    what: "persons in the network",
    sql: "SELECT count(*) AS persons FROM person",
};

/// The workload, in the order it is reported.
pub const WORKLOAD: &[Query] = &[
    Query {
        name: "achilles_2_gender",
        what: "Achilles 2: persons by gender",
        sql: "SELECT gender_concept_id, count(DISTINCT person_id) AS persons FROM person GROUP BY gender_concept_id",
    },
    Query {
        name: "achilles_10_yob_gender",
        what: "Achilles 10: persons by year of birth and gender",
        sql: "SELECT year_of_birth, gender_concept_id, count(DISTINCT person_id) AS persons FROM person GROUP BY year_of_birth, gender_concept_id",
    },
    Query {
        name: "achilles_400_conditions",
        what: "Achilles 400: persons per condition",
        sql: "SELECT condition_concept_id, count(DISTINCT person_id) AS persons FROM condition_occurrence GROUP BY condition_concept_id",
    },
    Query {
        name: "achilles_1800_measurements",
        what: "Achilles 1800: persons per measurement",
        sql: "SELECT measurement_concept_id, count(DISTINCT person_id) AS persons FROM measurement GROUP BY measurement_concept_id",
    },
    Query {
        name: "achilles_113_periods",
        what: "Achilles 113: persons by number of observation periods (per-patient sub-aggregate)",
        sql: "SELECT num_periods, count(DISTINCT person_id) AS persons FROM (SELECT person_id, count(*) AS num_periods FROM observation_period GROUP BY person_id) t GROUP BY num_periods",
    },
    Query {
        name: "achilles_101_age_first_obs",
        what: "Achilles 101: age at first observation (person joined to a per-patient minimum)",
        sql: "SELECT date_part('year', op.first_start) - p.year_of_birth AS age, count(*) AS persons FROM person p JOIN (SELECT person_id, min(observation_period_start_date) AS first_start FROM observation_period GROUP BY person_id) op ON op.person_id = p.person_id GROUP BY 1",
    },
    Query {
        name: "measurement_stats_unit",
        what: "measurement statistics per concept and unit",
        sql: "SELECT measurement_concept_id, unit_concept_id, count(DISTINCT person_id) AS persons, count(value_as_number) AS n, avg(value_as_number) AS mean, stddev(value_as_number) AS sd FROM measurement GROUP BY measurement_concept_id, unit_concept_id",
    },
    Query {
        name: "bladder_cohort_drugs",
        what: "bladder-cancer cohort CTE joined to drug exposures after diagnosis",
        sql: "WITH cohort AS (SELECT person_id, min(condition_start_date) AS index_date FROM condition_occurrence WHERE condition_concept_id = 197508 GROUP BY person_id) SELECT d.drug_concept_id, count(DISTINCT d.person_id) AS patients, count(*) AS exposures FROM cohort c JOIN drug_exposure d ON d.person_id = c.person_id WHERE d.drug_exposure_start_date >= c.index_date GROUP BY d.drug_concept_id",
    },
    Query {
        name: "bladder_cohort_labs",
        what: "bladder-cancer cohort CTE joined to measurements: mean and variance per lab",
        sql: "WITH cohort AS (SELECT DISTINCT person_id FROM condition_occurrence WHERE condition_concept_id = 197508) SELECT m.measurement_concept_id, count(DISTINCT m.person_id) AS patients, count(*) AS n, avg(m.value_as_number) AS mean, var_samp(m.value_as_number) AS var_s FROM cohort c JOIN measurement m ON m.person_id = c.person_id GROUP BY m.measurement_concept_id",
    },
    Query {
        name: "variants_by_diagnosis",
        what: "variant carriers per gene joined to diagnoses",
        sql: "SELECT co.condition_concept_id, v.target_gene1_symbol AS gene, count(DISTINCT v.person_id) AS patients FROM variant_occurrence v JOIN condition_occurrence co ON co.person_id = v.person_id WHERE co.condition_concept_id IN (197508, 381270) GROUP BY co.condition_concept_id, v.target_gene1_symbol",
    },
    Query {
        name: "levodopa_fills_per_patient",
        what: "Parkinson's: levodopa fills per patient (per-patient sub-aggregate)",
        sql: "SELECT fills, count(*) AS patients FROM (SELECT person_id, count(*) AS fills FROM drug_exposure WHERE drug_concept_id = 789578 GROUP BY person_id) t GROUP BY fills",
    },
    Query {
        name: "group_by_site",
        what: "persons and visits per site",
        sql: "SELECT v.site, count(DISTINCT v.person_id) AS persons, count(*) AS visits FROM visit_occurrence v GROUP BY v.site",
    },
];
