-- Threshold suite: sites at min_group_size 1, the federation at 10. Each
-- federated answer must equal its oracle: the same SQL on the centralized
-- session with the boundary's distinct-patient threshold written out as
-- HAVING count(DISTINCT person_id) >= 10. The federated result must also
-- report exactly the number of groups the HAVING removed (-- suppressed:).

-- name: persons_by_year_of_birth
-- oracle: SELECT year_of_birth, count(*) AS persons FROM person GROUP BY year_of_birth HAVING count(DISTINCT person_id) >= 10
SELECT year_of_birth, count(*) AS persons FROM person GROUP BY year_of_birth;

-- name: conditions_by_site
-- oracle: SELECT site, condition_concept_id, count(DISTINCT person_id) AS persons FROM condition_occurrence GROUP BY site, condition_concept_id HAVING count(DISTINCT person_id) >= 10
SELECT site, condition_concept_id, count(DISTINCT person_id) AS persons FROM condition_occurrence GROUP BY site, condition_concept_id;

-- name: variants_by_gene_and_site
-- oracle: SELECT site, target_gene1_symbol, count(*) AS variants FROM variant_occurrence GROUP BY site, target_gene1_symbol HAVING count(DISTINCT person_id) >= 10
SELECT site, target_gene1_symbol, count(*) AS variants FROM variant_occurrence GROUP BY site, target_gene1_symbol;

-- name: drugs_by_site_stats
-- oracle: SELECT site, drug_concept_id, avg(days_supply) AS mean_supply, stddev(days_supply) AS sd FROM drug_exposure GROUP BY site, drug_concept_id HAVING count(DISTINCT person_id) >= 10
SELECT site, drug_concept_id, avg(days_supply) AS mean_supply, stddev(days_supply) AS sd FROM drug_exposure GROUP BY site, drug_concept_id;

-- name: deaths_by_year_and_cause
-- oracle: SELECT date_part('year', death_date) AS y, cause_concept_id, count(*) AS n FROM death GROUP BY 1, 2 HAVING count(DISTINCT person_id) >= 10
SELECT date_part('year', death_date) AS y, cause_concept_id, count(*) AS n FROM death GROUP BY 1, 2;

-- name: order_limit_after_threshold
-- oracle: SELECT year_of_birth, count(*) AS n FROM person GROUP BY year_of_birth HAVING count(DISTINCT person_id) >= 10 ORDER BY n ASC, year_of_birth LIMIT 5
SELECT year_of_birth, count(*) AS n FROM person GROUP BY year_of_birth ORDER BY n ASC, year_of_birth LIMIT 5;

-- name: per_patient_subaggregate_thresholded
-- oracle: SELECT fills, count(*) AS patients FROM (SELECT person_id, count(*) AS fills FROM drug_exposure GROUP BY person_id) t GROUP BY fills HAVING count(DISTINCT person_id) >= 10
SELECT fills, count(*) AS patients FROM (SELECT person_id, count(*) AS fills FROM drug_exposure GROUP BY person_id) t GROUP BY fills;

-- name: updrs_score_values
-- oracle: SELECT value_as_number, count(*) AS n FROM observation WHERE observation_concept_id = 2000000201 GROUP BY value_as_number HAVING count(DISTINCT person_id) >= 10
SELECT value_as_number, count(*) AS n FROM observation WHERE observation_concept_id = 2000000201 GROUP BY value_as_number;

-- name: global_aggregate_small_cohort
-- oracle: SELECT count(*) AS n FROM variant_occurrence WHERE target_gene1_symbol = 'SNCA' HAVING count(DISTINCT person_id) >= 10
SELECT count(*) AS n FROM variant_occurrence WHERE target_gene1_symbol = 'SNCA';

-- name: measurement_units_by_race
-- oracle: SELECT p.race_concept_id, m.unit_concept_id, count(*) AS n FROM measurement m JOIN person p ON p.person_id = m.person_id GROUP BY p.race_concept_id, m.unit_concept_id HAVING count(DISTINCT m.person_id) >= 10
SELECT p.race_concept_id, m.unit_concept_id, count(*) AS n FROM measurement m JOIN person p ON p.person_id = m.person_id GROUP BY p.race_concept_id, m.unit_concept_id;
