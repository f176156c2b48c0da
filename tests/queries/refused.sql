-- Queries that must be refused, with (part of) the error text the analyst
-- sees. Each is followed by a query that must still succeed: the
-- coordinator keeps serving.

-- name: malformed_sql
-- error: SQL syntax error
SELEC count(*) FROM person;

-- name: unknown_table
-- error: unknown table 'patients'. Tables: person, observation_period
SELECT count(*) FROM patients;

-- name: unknown_column
-- error: No field named age
SELECT age, count(*) FROM person GROUP BY age;

-- name: row_level_select_star
-- error: refused: row-level output. The query returns rows of person
SELECT * FROM person;

-- name: row_level_projection_with_filter
-- error: refused: row-level output
SELECT person_id, year_of_birth FROM person WHERE year_of_birth < 1940;

-- name: row_level_group_by_person
-- error: releases one row per patient
SELECT person_id, count(*) FROM condition_occurrence GROUP BY person_id;

-- name: row_level_join_release_with_raw_rows
-- error: refused: row-level output
SELECT p.person_id, t.n FROM person p CROSS JOIN (SELECT count(*) AS n FROM death) t;

-- name: median_not_mergeable
-- error: unsupported: the aggregate median
SELECT measurement_concept_id, median(value_as_number) FROM measurement GROUP BY 1;

-- name: percentile_not_mergeable
-- error: unsupported: the aggregate approx_percentile_cont
SELECT approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY value_as_number) FROM measurement;

-- name: array_agg_releases_values
-- error: returns individual patients' values
SELECT gender_concept_id, array_agg(year_of_birth) FROM person GROUP BY 1;

-- name: count_distinct_non_patient_column
-- error: unsupported: COUNT(DISTINCT
SELECT count(DISTINCT condition_concept_id) FROM condition_occurrence;

-- name: sum_distinct
-- error: Only COUNT(DISTINCT person_id) can be merged
SELECT sum(DISTINCT year_of_birth) FROM person;

-- name: cross_patient_scalar_subquery
-- error: a scalar subquery over patient data below the aggregation
SELECT count(*) FROM person WHERE year_of_birth < (SELECT avg(year_of_birth) FROM person);

-- name: cross_patient_aggregate_in_subquery
-- error: an aggregate that is not grouped by person_id below the aggregation
SELECT n, count(*) FROM (SELECT gender_concept_id, count(*) AS n FROM person GROUP BY gender_concept_id) t GROUP BY n;

-- name: limit_below_boundary
-- error: LIMIT below the aggregation
SELECT count(*) FROM (SELECT person_id FROM person LIMIT 10) t;

-- name: window_over_all_patients
-- error: a window function not partitioned by person_id
SELECT r, count(*) FROM (SELECT person_id, rank() OVER (ORDER BY year_of_birth) AS r FROM person) t GROUP BY r;

-- name: join_not_on_person_id
-- error: a join between patient tables that is not on person_id
SELECT count(*) FROM person a JOIN person b ON a.year_of_birth = b.year_of_birth;

-- name: exists_over_patients
-- error: EXISTS over patient data
SELECT count(*) FROM person p WHERE EXISTS (SELECT 1 FROM death d WHERE d.person_id = p.person_id);

-- name: min_max_disabled_by_policy
-- policy: no-min-max
-- error: MIN and MAX release one patient's exact value
SELECT max(year_of_birth) FROM person;

-- name: ddl_refused
-- error: only read-only SELECT queries are accepted
CREATE TABLE t AS SELECT 1;

-- name: grouping_sets
-- error: GROUPING SETS, ROLLUP and CUBE
SELECT site, gender_concept_id, count(*) FROM person GROUP BY ROLLUP (site, gender_concept_id);

-- name: intersect_of_person_sets_not_yet_supported
-- error: INTERSECT and EXCEPT of patient sets are not supported yet
SELECT count(*) AS persons FROM (SELECT DISTINCT person_id FROM condition_occurrence INTERSECT SELECT DISTINCT person_id FROM drug_exposure) t;

-- The patient identifier may be counted, grouped per patient, joined and
-- linked; any other use singles patients out (attacks A06, A09, A10).

-- name: identifier_compared_with_a_value
-- error: person_id is used in a filter
SELECT count(*) FROM person WHERE person_id = 12345;

-- name: identifier_excluded_for_differencing
-- error: person_id is used in a filter
SELECT count(*) FROM person WHERE person_id <> 12345;

-- name: identifier_arithmetic_in_a_filter
-- error: person_id is used in a filter
SELECT count(*) FROM person WHERE person_id % 2 = 0;

-- name: identifier_arithmetic_as_group_key
-- error: person_id is used in a grouping expression
SELECT person_id % 10 AS d, count(*) FROM person GROUP BY 1;

-- name: identifier_summed
-- error: person_id is used in an aggregate other than count
SELECT sum(person_id) AS s FROM person;

-- name: identifier_averaged_through_a_join
-- error: person_id is used in an aggregate other than count
SELECT avg(co.person_id) FROM person p JOIN condition_occurrence co ON co.person_id = p.person_id;

-- name: identifier_in_a_computed_column_below_the_boundary
-- error: person_id is used in a computed column
SELECT bucket, count(*) FROM (SELECT person_id, person_id / 1000 AS bucket FROM person) t GROUP BY bucket;

-- name: identifier_in_a_join_condition_with_an_offset
-- error: person_id is used in a join condition
SELECT count(*) FROM person p JOIN observation o ON o.person_id = p.person_id + 1;

-- name: identifier_as_a_window_argument
-- error: person_id is used in a window function
SELECT n, count(*) FROM (SELECT person_id, lag(person_id) OVER (PARTITION BY person_id ORDER BY year_of_birth) AS n FROM person) t GROUP BY n;

-- name: function_not_on_the_allow_list
-- error: the function to_hex over patient data
SELECT to_hex(year_of_birth) AS h, count(*) FROM person GROUP BY 1;

-- name: function_not_on_the_allow_list_below_the_boundary
-- error: the function random over patient data
SELECT count(*) FROM person WHERE random() < 0.5;

-- A15, the error-message oracle: an expression that fails for some rows
-- only would make the query's failure tell that such a patient exists.
-- name: a15_division_by_an_expression
-- error: a division by an expression over patient data
SELECT count(*) AS n FROM person WHERE 1 / (year_of_birth - 1950) > 0;

-- name: a15_modulo_by_an_expression
-- error: a division by an expression over patient data
SELECT count(*) AS n FROM person WHERE year_of_birth % (month_of_birth - 3) = 0;

-- name: a15_cast_from_text
-- error: CAST from Utf8 to Int32 over patient data
SELECT count(*) AS n FROM person WHERE CAST(CASE WHEN year_of_birth = 1950 THEN 'x' ELSE '1' END AS INT) = 1;

-- name: a15_cast_float_to_integer
-- error: CAST from Float64 to Int64 over patient data
SELECT count(*) AS n FROM measurement WHERE CAST(value_as_number * 1e300 AS BIGINT) > 0;

-- name: a15_cast_float_to_integer_in_a_sum
-- error: inside a sum, average or variance
SELECT sum(CAST(value_as_number * 1e300 AS BIGINT)) AS s FROM measurement;

-- name: a15_parsing_a_date_out_of_text
-- error: comparing a shifted or computed year_of_birth with a literal
SELECT count(*) AS n FROM person WHERE to_date(CAST(year_of_birth AS VARCHAR)) > DATE '2000-01-01';

-- name: a29_filter_on_a_source_value
-- error: person_source_value is a free-text or source-value column
SELECT count(*) AS n FROM person WHERE person_source_value LIKE '%Smith%';

-- name: a29_group_by_a_source_value
-- error: condition_source_value is a free-text or source-value column
SELECT condition_source_value, count(DISTINCT person_id) AS n FROM condition_occurrence GROUP BY condition_source_value;

-- name: a29_renamed_source_value_filtered_above
-- error: person_source_value is a free-text or source-value column
SELECT count(*) AS n FROM (SELECT person_id, person_source_value AS tag FROM person) t WHERE tag = 'x';

-- name: a29_exact_birth_date
-- error: comparing birth_datetime with a literal by =: an exact date or time can single a patient out
SELECT count(*) AS n FROM person WHERE birth_datetime = '1931-04-02 10:32:00';

-- name: a29_narrow_date_range
-- error: comparing condition_start_date with a literal by >=
SELECT count(DISTINCT person_id) AS n FROM condition_occurrence WHERE condition_start_date BETWEEN '2015-03-14' AND '2015-03-14';

-- name: a29_date_in_list
-- error: testing death_date IN a list of literals
SELECT count(*) AS n FROM death WHERE death_date IN ('2019-02-01', '2019-03-01');

-- name: a29_group_by_raw_timestamp
-- error: grouping the released result by visit_start_date
SELECT visit_start_date, count(DISTINCT person_id) AS n FROM visit_occurrence GROUP BY visit_start_date;

-- name: a29_group_by_day
-- error: grouping the released result by condition_start_date
SELECT date_trunc('day', condition_start_date) AS d, count(*) AS n FROM condition_occurrence GROUP BY 1;

-- name: a29_date_as_a_number
-- error: turning birth_datetime into a number or text
SELECT count(*) AS n FROM (SELECT person_id, date_part('epoch', birth_datetime) AS t FROM person) p WHERE t > 0;

-- name: a29_day_of_birth
-- error: grouping the released result by day_of_birth
SELECT day_of_birth, count(*) AS n FROM person GROUP BY day_of_birth;

-- Issue 17: dates that stay generalised. The same column on both sides
-- of a comparison is not "relative", whatever spells it.

-- name: i17_exact_day_through_greatest_and_least
-- error: comparing condition_start_date with an expression that mixes a literal date into the data
SELECT count(*) AS n FROM condition_occurrence WHERE condition_start_date = greatest(condition_start_date, DATE '2015-03-14') AND condition_start_date = least(condition_start_date, DATE '2015-03-14');

-- name: i17_exact_day_through_coalesce
-- error: comparing condition_start_date with an expression that mixes a literal date into the data
SELECT count(*) AS n FROM condition_occurrence WHERE condition_start_date >= coalesce(condition_start_date, DATE '2015-03-14');

-- name: i17_same_column_through_arithmetic
-- error: comparing condition_start_date with itself through an expression
SELECT count(*) AS n FROM condition_occurrence WHERE condition_start_date < condition_start_date + INTERVAL '1 day';

-- name: i17_same_column_through_case
-- error: condition_start_date
SELECT count(*) AS n FROM condition_occurrence WHERE condition_start_date = CASE WHEN condition_concept_id > 0 THEN condition_start_date END;

-- name: i17_generalising_a_shifted_date
-- error: generalising birth_datetime, which is shifted, computed or mixed with a literal
SELECT date_trunc('month', birth_datetime + INTERVAL '13 days') AS m, count(*) AS n FROM person GROUP BY 1;

-- name: i17_date_part_of_a_shifted_date
-- error: generalising condition_start_date, which is shifted, computed or mixed with a literal
SELECT date_part('month', condition_start_date - INTERVAL '17 days') AS m, count(*) AS n FROM condition_occurrence GROUP BY 1;

-- name: i17_day_of_birth_through_from_unixtime
-- error: day_of_birth
SELECT date_part('month', from_unixtime(day_of_birth * 86400)) AS m, count(*) AS n FROM person GROUP BY 1;

-- name: i17_weekday
-- error: condition_start_date
SELECT date_part('dow', condition_start_date) AS w, count(*) AS n FROM condition_occurrence GROUP BY 1;

-- name: i17_date_bin
-- error: condition_start_date
SELECT count(*) AS n FROM condition_occurrence WHERE date_bin(INTERVAL '1 day', condition_start_date) > TIMESTAMP '2015-03-01 00:00:00';

-- name: i17_shifted_date_against_a_month
-- error: comparing a shifted or computed condition_start_date with a literal
SELECT count(*) AS n FROM condition_occurrence WHERE condition_start_date + INTERVAL '13 days' >= DATE '2015-02-01';

-- Issue 17: functions that can fail below the release boundary are
-- refused unless their failing arguments are constants.

-- name: i17_split_part_position_from_data
-- error: split_part over patient data with these arguments
SELECT count(*) AS n FROM condition_occurrence WHERE split_part('a,b', ',', CASE WHEN condition_concept_id = 1 THEN 0 ELSE 1 END) = 'a';

-- name: i17_substr_length_from_data
-- error: substr over patient data with these arguments
SELECT count(*) AS n FROM condition_occurrence WHERE substr('abc', 1, CASE WHEN condition_concept_id = 1 THEN -1 ELSE 1 END) = 'a';

-- name: i17_lpad_length_from_data
-- error: lpad over patient data with these arguments
SELECT count(*) AS n FROM condition_occurrence WHERE lpad('a', condition_concept_id) = 'a';

-- name: i17_integer_division_by_data
-- error: a division by an expression over patient data
SELECT count(*) AS n FROM condition_occurrence WHERE 10 / (condition_concept_id - 1) <> 0;

-- name: i17_implicit_text_to_number_cast
-- error: over patient data
SELECT count(*) AS n FROM condition_occurrence WHERE CASE WHEN condition_concept_id = 1 THEN 'x' ELSE '1' END = 1;

-- name: i17_regexp_pattern_from_data
-- error: regexp_like over patient data with these arguments
SELECT count(*) AS n FROM condition_occurrence WHERE regexp_like('a', CASE WHEN condition_concept_id = 1 THEN '(' ELSE 'a' END);

-- name: i17_regexp_literal_that_does_not_compile
-- error: regexp_like over patient data with these arguments
SELECT count(*) AS n FROM condition_occurrence WHERE regexp_like(condition_source_concept_id::text, '(');

-- Issue 17: sums of values that are not declared quantities.

-- name: i17_sum_of_a_code
-- error: refused by privacy policy
SELECT sum(condition_concept_id) AS s FROM condition_occurrence;
