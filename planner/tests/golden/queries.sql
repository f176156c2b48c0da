-- name: count_by_gender
SELECT gender_concept_id, count(*) AS n FROM person GROUP BY gender_concept_id;

-- name: avg_and_stddev
SELECT measurement_concept_id, avg(value_as_number) AS mean, stddev(value_as_number) AS sd FROM measurement GROUP BY 1;

-- name: carried_person_id
SELECT gender_concept_id, count(*) AS n FROM (SELECT gender_concept_id FROM person WHERE year_of_birth < 1960) t GROUP BY gender_concept_id;

-- name: per_patient_subaggregate
SELECT num_periods, count(*) AS persons FROM (SELECT person_id, count(*) AS num_periods FROM observation_period GROUP BY person_id) t GROUP BY num_periods;

-- name: cohort_cte_join
WITH cohort AS (SELECT person_id, min(condition_start_date) AS index_date FROM condition_occurrence WHERE condition_concept_id = 197508 GROUP BY person_id)
SELECT d.drug_concept_id, count(DISTINCT d.person_id) AS patients FROM cohort c JOIN drug_exposure d ON d.person_id = c.person_id WHERE d.drug_exposure_start_date >= c.index_date GROUP BY d.drug_concept_id;

-- name: in_subquery_cohort
SELECT v.target_gene1_symbol, count(DISTINCT v.person_id) AS patients FROM variant_occurrence v WHERE v.person_id IN (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = 197508) GROUP BY 1;

-- name: two_releases
SELECT a.site, a.n, b.n FROM (SELECT site, count(*) AS n FROM person GROUP BY site) a JOIN (SELECT site, count(*) AS n FROM death GROUP BY site) b ON a.site = b.site;
