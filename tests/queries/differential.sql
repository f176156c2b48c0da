-- Differential suite: every query runs federated over three sites (real
-- Flight servers on loopback) and on one DataFusion session over the union
-- of the sites' files. With both thresholds at 1 the answers must be equal
-- (floats within 1e-9 relative). Blocks start with "-- name:".

-- name: achilles_1_persons
SELECT count(DISTINCT person_id) AS persons FROM person;

-- name: achilles_2_persons_by_gender
SELECT gender_concept_id, count(DISTINCT person_id) AS persons FROM person GROUP BY gender_concept_id;

-- name: achilles_3_persons_by_year_of_birth
SELECT year_of_birth, count(DISTINCT person_id) AS persons FROM person GROUP BY year_of_birth ORDER BY year_of_birth;

-- name: achilles_4_persons_by_race
SELECT race_concept_id, count(*) AS persons FROM person GROUP BY race_concept_id;

-- name: achilles_5_persons_by_ethnicity
SELECT ethnicity_concept_id, count(*) AS persons FROM person GROUP BY 1;

-- name: achilles_10_year_of_birth_by_gender
SELECT year_of_birth, gender_concept_id, count(DISTINCT person_id) AS persons FROM person GROUP BY year_of_birth, gender_concept_id;

-- name: achilles_12_race_by_ethnicity
SELECT race_concept_id, ethnicity_concept_id, count(*) AS n FROM person GROUP BY race_concept_id, ethnicity_concept_id;

-- name: achilles_101_age_at_first_observation
SELECT date_part('year', op.first_start) - p.year_of_birth AS age, count(*) AS persons
FROM person p
JOIN (SELECT person_id, min(observation_period_start_date) AS first_start FROM observation_period GROUP BY person_id) op
  ON op.person_id = p.person_id
GROUP BY 1;

-- name: achilles_113_number_of_observation_periods
SELECT num_periods, count(DISTINCT person_id) AS persons
FROM (SELECT person_id, count(*) AS num_periods FROM observation_period GROUP BY person_id) t
GROUP BY num_periods;

-- name: achilles_200_visit_concepts_in_observation
SELECT v.visit_concept_id, count(DISTINCT v.person_id) AS persons
FROM visit_occurrence v
JOIN observation_period op ON op.person_id = v.person_id
WHERE v.visit_start_date >= op.observation_period_start_date AND v.visit_start_date <= op.observation_period_end_date
GROUP BY v.visit_concept_id;

-- name: achilles_400_condition_persons
SELECT condition_concept_id, count(DISTINCT person_id) AS persons FROM condition_occurrence GROUP BY condition_concept_id;

-- name: achilles_401_condition_records
SELECT co.condition_concept_id, count(co.person_id) AS records
FROM condition_occurrence co
JOIN observation_period op ON op.person_id = co.person_id
WHERE co.condition_start_date BETWEEN op.observation_period_start_date AND op.observation_period_end_date
GROUP BY co.condition_concept_id;

-- name: achilles_500_death_by_cause
SELECT cause_concept_id, count(DISTINCT person_id) AS persons FROM death GROUP BY cause_concept_id;

-- name: achilles_502_death_by_month
SELECT date_part('year', death_date) * 100 + date_part('month', death_date) AS stratum, count(DISTINCT person_id) AS persons
FROM death GROUP BY 1;

-- name: achilles_600_procedure_persons
SELECT procedure_concept_id, count(DISTINCT person_id) AS persons FROM procedure_occurrence GROUP BY procedure_concept_id;

-- name: achilles_700_drug_persons
SELECT drug_concept_id, count(DISTINCT person_id) AS persons FROM drug_exposure GROUP BY drug_concept_id;

-- name: achilles_800_observation_persons
SELECT observation_concept_id, count(DISTINCT person_id) AS persons FROM observation GROUP BY observation_concept_id;

-- name: achilles_1800_measurement_persons
SELECT measurement_concept_id, count(DISTINCT person_id) AS persons FROM measurement GROUP BY measurement_concept_id;

-- name: achilles_1815_measurement_distribution
SELECT measurement_concept_id, unit_concept_id, count(value_as_number) AS n, min(value_as_number) AS min_value,
       max(value_as_number) AS max_value, avg(value_as_number) AS avg_value, stddev(value_as_number) AS stdev_value
FROM measurement GROUP BY measurement_concept_id, unit_concept_id;

-- name: achilles_2000_dx_and_rx
SELECT count(DISTINCT person_id) AS persons FROM condition_occurrence
WHERE person_id IN (SELECT person_id FROM drug_exposure);

-- name: persons_without_death_not_in
SELECT gender_concept_id, count(*) AS persons FROM person
WHERE person_id NOT IN (SELECT person_id FROM death)
GROUP BY gender_concept_id;

-- name: group_by_site
SELECT site, count(DISTINCT person_id) AS persons, count(*) AS n FROM person GROUP BY site;

-- name: site_by_gender_with_concept_names
SELECT p.site, c.concept_name, count(DISTINCT p.person_id) AS persons
FROM person p JOIN concept c ON c.concept_id = p.gender_concept_id
GROUP BY p.site, c.concept_name;

-- name: age_bands_case
SELECT CASE WHEN 2025 - year_of_birth < 18 THEN '0-17'
            WHEN 2025 - year_of_birth < 45 THEN '18-44'
            WHEN 2025 - year_of_birth < 65 THEN '45-64'
            ELSE '65+' END AS age_band,
       gender_concept_id, count(*) AS persons
FROM person GROUP BY 1, 2;

-- name: age_bands_at_bladder_diagnosis
SELECT CASE WHEN date_part('year', co.condition_start_date) - p.year_of_birth < 60 THEN '<60'
            WHEN date_part('year', co.condition_start_date) - p.year_of_birth < 75 THEN '60-74'
            ELSE '75+' END AS age_at_diagnosis,
       count(DISTINCT p.person_id) AS patients
FROM person p JOIN condition_occurrence co ON co.person_id = p.person_id
WHERE co.condition_concept_id = 197508
GROUP BY 1;

-- name: bladder_cohort_cte_treatments
WITH cohort AS (
  SELECT person_id, min(condition_start_date) AS index_date
  FROM condition_occurrence WHERE condition_concept_id = 197508 GROUP BY person_id
)
SELECT d.drug_concept_id, count(DISTINCT d.person_id) AS patients, count(*) AS exposures
FROM cohort c JOIN drug_exposure d ON d.person_id = c.person_id
WHERE d.drug_exposure_start_date >= c.index_date
GROUP BY d.drug_concept_id;

-- name: bladder_cohort_labs_stats
WITH cohort AS (
  SELECT DISTINCT person_id FROM condition_occurrence WHERE condition_concept_id = 197508
)
SELECT m.measurement_concept_id, count(*) AS n, avg(m.value_as_number) AS mean,
       var_samp(m.value_as_number) AS var_s, var_pop(m.value_as_number) AS var_p,
       stddev_pop(m.value_as_number) AS sd_p
FROM cohort c JOIN measurement m ON m.person_id = c.person_id
GROUP BY m.measurement_concept_id;

-- name: cystectomy_after_turbt_days
SELECT count(DISTINCT t.person_id) AS patients
FROM procedure_occurrence t JOIN procedure_occurrence c ON c.person_id = t.person_id
WHERE t.procedure_concept_id = 2000000101 AND c.procedure_concept_id = 2000000102 AND c.procedure_date > t.procedure_date;

-- name: variants_per_gene_in_bladder_cancer
SELECT v.target_gene1_symbol AS gene, count(DISTINCT v.person_id) AS patients, avg(v.variant_allele_frequency) AS mean_vaf
FROM variant_occurrence v
WHERE v.person_id IN (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = 197508)
GROUP BY v.target_gene1_symbol;

-- name: variants_joined_to_diagnoses
SELECT co.condition_concept_id, v.target_gene1_symbol, count(DISTINCT v.person_id) AS patients
FROM variant_occurrence v JOIN condition_occurrence co ON co.person_id = v.person_id
WHERE co.condition_concept_id IN (197508, 381270)
GROUP BY co.condition_concept_id, v.target_gene1_symbol;

-- name: parkinson_updrs_by_site
SELECT site, count(DISTINCT person_id) AS patients, avg(value_as_number) AS mean_score, stddev(value_as_number) AS sd
FROM observation WHERE observation_concept_id = 2000000201 GROUP BY site;

-- name: parkinson_levodopa_per_patient_fills
SELECT fills, count(*) AS patients FROM (
  SELECT person_id, count(*) AS fills FROM drug_exposure WHERE drug_concept_id = 789578 GROUP BY person_id
) t GROUP BY fills;

-- name: per_patient_max_score_banded
SELECT CASE WHEN max_score < 20 THEN 'mild' WHEN max_score < 35 THEN 'moderate' ELSE 'severe' END AS severity,
       count(*) AS patients
FROM (SELECT person_id, max(value_as_number) AS max_score FROM observation WHERE observation_concept_id = 2000000201 GROUP BY person_id) s
GROUP BY 1;

-- name: sum_of_days_supply_by_drug
SELECT drug_concept_id, sum(days_supply) AS total_days, sum(quantity) AS total_quantity FROM drug_exposure GROUP BY drug_concept_id;

-- name: visits_per_year_date_trunc
SELECT date_trunc('year', visit_start_date) AS year, visit_concept_id, count(*) AS visits
FROM visit_occurrence GROUP BY 1, 2;

-- name: extract_month_of_condition
SELECT extract(month FROM condition_start_date) AS month, count(*) AS n FROM condition_occurrence GROUP BY 1;

-- name: months_of_one_year_with_month_aligned_range
SELECT date_trunc('month', condition_start_date) AS month, count(DISTINCT person_id) AS persons
FROM condition_occurrence
WHERE condition_start_date >= '2015-01-01' AND condition_start_date < DATE '2016-01-01'
GROUP BY 1;

-- name: days_from_index_within_a_window
SELECT date_part('year', c.index_date) AS index_year, count(DISTINCT d.person_id) AS persons
FROM (SELECT person_id, min(condition_start_date) AS index_date FROM condition_occurrence GROUP BY person_id) c
JOIN drug_exposure d ON d.person_id = c.person_id
WHERE d.drug_exposure_start_date >= c.index_date AND d.drug_exposure_start_date <= c.index_date + INTERVAL '90 days'
GROUP BY 1;

-- name: having_above_aggregate
SELECT condition_concept_id, count(DISTINCT person_id) AS persons FROM condition_occurrence
GROUP BY condition_concept_id HAVING count(DISTINCT person_id) > 50;

-- name: order_by_limit_above_aggregate
SELECT drug_concept_id, count(*) AS exposures FROM drug_exposure GROUP BY drug_concept_id ORDER BY exposures DESC, drug_concept_id LIMIT 5;

-- name: window_over_released_rows
SELECT gender_concept_id, n, n * 100.0 / sum(n) OVER () AS pct
FROM (SELECT gender_concept_id, count(*) AS n FROM person GROUP BY gender_concept_id) t;

-- name: join_of_two_releases
SELECT a.site, a.persons, b.deaths
FROM (SELECT site, count(DISTINCT person_id) AS persons FROM person GROUP BY site) a
JOIN (SELECT site, count(DISTINCT person_id) AS deaths FROM death GROUP BY site) b ON a.site = b.site;

-- name: union_of_releases
SELECT 'conditions' AS domain, count(DISTINCT person_id) AS persons FROM condition_occurrence
UNION ALL
SELECT 'drugs' AS domain, count(DISTINCT person_id) AS persons FROM drug_exposure;

-- name: count_column_with_nulls
SELECT measurement_concept_id, count(value_as_number) AS with_value, count(*) AS all_rows FROM measurement GROUP BY 1;

-- name: hypertension_and_metformin_in
SELECT p.gender_concept_id, count(*) AS persons FROM person p
WHERE p.person_id IN (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = 320128)
  AND p.person_id IN (SELECT person_id FROM drug_exposure WHERE drug_concept_id = 1503297)
GROUP BY p.gender_concept_id;

-- name: window_partitioned_by_person_below_boundary
SELECT visit_rank, count(*) AS visits FROM (
  SELECT person_id, row_number() OVER (PARTITION BY person_id ORDER BY visit_start_date, visit_occurrence_id) AS visit_rank
  FROM visit_occurrence
) v WHERE visit_rank <= 3 GROUP BY visit_rank;

-- name: left_join_death_flag
SELECT p.gender_concept_id, count(d.person_id) AS deaths, count(*) AS persons
FROM person p LEFT JOIN death d ON d.person_id = p.person_id GROUP BY p.gender_concept_id;

-- name: bmi_stats_by_gender_filtered
SELECT p.gender_concept_id, avg(m.value_as_number) AS mean_bmi, var_samp(m.value_as_number) AS var_bmi, count(*) AS n
FROM measurement m JOIN person p ON p.person_id = m.person_id
WHERE m.measurement_concept_id = 3038553 AND m.value_as_number BETWEEN 15 AND 60
GROUP BY p.gender_concept_id;

-- name: projection_drops_person_id
SELECT gender_concept_id, count(*) AS n FROM (SELECT gender_concept_id FROM person WHERE year_of_birth < 1960) t GROUP BY gender_concept_id;

-- name: filter_aggregate_clause
SELECT site, count(*) FILTER (WHERE gender_concept_id = 8507) AS men, count(*) AS everyone FROM person GROUP BY site;

-- name: min_max_dates_per_site
SELECT site, min(observation_period_start_date) AS first_start, max(observation_period_end_date) AS last_end FROM observation_period GROUP BY site;

-- name: public_vocabulary_only
SELECT domain_id, count(*) AS concepts FROM concept GROUP BY domain_id;

-- name: total_division_with_nullif
SELECT gender_concept_id, count(*) AS n FROM person WHERE 1000 / NULLIF(year_of_birth - 1950, 0) > 0 GROUP BY gender_concept_id;

-- name: try_cast_and_widening_cast
SELECT TRY_CAST(year_of_birth AS SMALLINT) / 10 AS decade, avg(CAST(year_of_birth AS DOUBLE)) AS mean_year, count(*) AS n FROM person GROUP BY 1;
