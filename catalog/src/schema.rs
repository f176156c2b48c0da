//! OMOP CDM v5.4 tables, the genomic extension and the `concept` vocabulary,
//! as Arrow schemas.
//!
//! Column names and nullability follow the official PostgreSQL DDL of the CDM
//! (`OMOPCDM_postgresql_5.4_ddl.sql`): required columns are non-nullable.
//! Types: `person_id` and the other row identifiers are `Int64` (`bigint` is
//! the common production choice), concept ids and small integers `Int32`,
//! dates `Date32`, datetimes `Timestamp(µs)`, `NUMERIC` values `Float64`, and
//! `varchar` columns `Utf8`.
//!
//! Every patient table also has a virtual column [`SITE_COLUMN`], appended
//! last: the id of the site holding the row. Sites fill it in; it never exists
//! in their files.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The column that identifies a patient in every patient table: the privacy
/// unit whose distinct count decides whether a group may be released.
pub const PRIVACY_UNIT: &str = "person_id";

/// The catalog that holds the virtual schema, as SQL clients see it.
pub const CATALOG_NAME: &str = "ihdsi";

/// The schema that holds the virtual tables, as SQL clients see it.
pub const SCHEMA_NAME: &str = "omop";

/// The virtual column naming the site that holds a row.
pub const SITE_COLUMN: &str = "site";

/// Whether a table holds patient data or public reference data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// Patient-level rows; only aggregates over it may leave a site.
    Patient,
    /// Public vocabulary; readable anywhere, including at the coordinator.
    Vocabulary,
}

/// One table of the virtual schema.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// Table name as analysts write it.
    pub name: &'static str,
    /// Patient or vocabulary table.
    pub kind: TableKind,
    /// One-line description from the OMOP CDM documentation.
    pub comment: &'static str,
    /// Arrow schema, including the virtual `site` column for patient tables.
    /// Field metadata key `comment` carries the column description.
    pub schema: SchemaRef,
}

impl TableDef {
    /// The privacy unit column of a patient table.
    pub fn privacy_unit(&self) -> Option<&'static str> {
        (self.kind == TableKind::Patient).then_some(PRIVACY_UNIT)
    }

    /// The schema as stored in a site's Parquet file: without `site`.
    pub fn file_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .filter(|f| f.name() != SITE_COLUMN || self.kind != TableKind::Patient)
            .map(|f| f.as_ref().clone())
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// Column type shorthand used by the table definitions below.
#[derive(Clone, Copy)]
enum T {
    Id,
    Int,
    Num,
    Text,
    Date,
    Ts,
}

impl T {
    fn data_type(self) -> DataType {
        match self {
            T::Id => DataType::Int64,
            T::Int => DataType::Int32,
            T::Num => DataType::Float64,
            T::Text => DataType::Utf8,
            T::Date => DataType::Date32,
            T::Ts => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }
}

/// `(name, type, required)`; required columns are `NOT NULL` in the DDL.
type Col = (&'static str, T, bool);

const PERSON: &[Col] = &[
    ("person_id", T::Id, true),
    ("gender_concept_id", T::Int, true),
    ("year_of_birth", T::Int, true),
    ("month_of_birth", T::Int, false),
    ("day_of_birth", T::Int, false),
    ("birth_datetime", T::Ts, false),
    ("race_concept_id", T::Int, true),
    ("ethnicity_concept_id", T::Int, true),
    ("location_id", T::Id, false),
    ("provider_id", T::Id, false),
    ("care_site_id", T::Id, false),
    ("person_source_value", T::Text, false),
    ("gender_source_value", T::Text, false),
    ("gender_source_concept_id", T::Int, false),
    ("race_source_value", T::Text, false),
    ("race_source_concept_id", T::Int, false),
    ("ethnicity_source_value", T::Text, false),
    ("ethnicity_source_concept_id", T::Int, false),
];

const OBSERVATION_PERIOD: &[Col] = &[
    ("observation_period_id", T::Id, true),
    ("person_id", T::Id, true),
    ("observation_period_start_date", T::Date, true),
    ("observation_period_end_date", T::Date, true),
    ("period_type_concept_id", T::Int, true),
];

const VISIT_OCCURRENCE: &[Col] = &[
    ("visit_occurrence_id", T::Id, true),
    ("person_id", T::Id, true),
    ("visit_concept_id", T::Int, true),
    ("visit_start_date", T::Date, true),
    ("visit_start_datetime", T::Ts, false),
    ("visit_end_date", T::Date, true),
    ("visit_end_datetime", T::Ts, false),
    ("visit_type_concept_id", T::Int, true),
    ("provider_id", T::Id, false),
    ("care_site_id", T::Id, false),
    ("visit_source_value", T::Text, false),
    ("visit_source_concept_id", T::Int, false),
    ("admitted_from_concept_id", T::Int, false),
    ("admitted_from_source_value", T::Text, false),
    ("discharged_to_concept_id", T::Int, false),
    ("discharged_to_source_value", T::Text, false),
    ("preceding_visit_occurrence_id", T::Id, false),
];

const CONDITION_OCCURRENCE: &[Col] = &[
    ("condition_occurrence_id", T::Id, true),
    ("person_id", T::Id, true),
    ("condition_concept_id", T::Int, true),
    ("condition_start_date", T::Date, true),
    ("condition_start_datetime", T::Ts, false),
    ("condition_end_date", T::Date, false),
    ("condition_end_datetime", T::Ts, false),
    ("condition_type_concept_id", T::Int, true),
    ("condition_status_concept_id", T::Int, false),
    ("stop_reason", T::Text, false),
    ("provider_id", T::Id, false),
    ("visit_occurrence_id", T::Id, false),
    ("visit_detail_id", T::Id, false),
    ("condition_source_value", T::Text, false),
    ("condition_source_concept_id", T::Int, false),
    ("condition_status_source_value", T::Text, false),
];

const DRUG_EXPOSURE: &[Col] = &[
    ("drug_exposure_id", T::Id, true),
    ("person_id", T::Id, true),
    ("drug_concept_id", T::Int, true),
    ("drug_exposure_start_date", T::Date, true),
    ("drug_exposure_start_datetime", T::Ts, false),
    ("drug_exposure_end_date", T::Date, true),
    ("drug_exposure_end_datetime", T::Ts, false),
    ("verbatim_end_date", T::Date, false),
    ("drug_type_concept_id", T::Int, true),
    ("stop_reason", T::Text, false),
    ("refills", T::Int, false),
    ("quantity", T::Num, false),
    ("days_supply", T::Int, false),
    ("sig", T::Text, false),
    ("route_concept_id", T::Int, false),
    ("lot_number", T::Text, false),
    ("provider_id", T::Id, false),
    ("visit_occurrence_id", T::Id, false),
    ("visit_detail_id", T::Id, false),
    ("drug_source_value", T::Text, false),
    ("drug_source_concept_id", T::Int, false),
    ("route_source_value", T::Text, false),
    ("dose_unit_source_value", T::Text, false),
];

const PROCEDURE_OCCURRENCE: &[Col] = &[
    ("procedure_occurrence_id", T::Id, true),
    ("person_id", T::Id, true),
    ("procedure_concept_id", T::Int, true),
    ("procedure_date", T::Date, true),
    ("procedure_datetime", T::Ts, false),
    ("procedure_end_date", T::Date, false),
    ("procedure_end_datetime", T::Ts, false),
    ("procedure_type_concept_id", T::Int, true),
    ("modifier_concept_id", T::Int, false),
    ("quantity", T::Int, false),
    ("provider_id", T::Id, false),
    ("visit_occurrence_id", T::Id, false),
    ("visit_detail_id", T::Id, false),
    ("procedure_source_value", T::Text, false),
    ("procedure_source_concept_id", T::Int, false),
    ("modifier_source_value", T::Text, false),
];

const MEASUREMENT: &[Col] = &[
    ("measurement_id", T::Id, true),
    ("person_id", T::Id, true),
    ("measurement_concept_id", T::Int, true),
    ("measurement_date", T::Date, true),
    ("measurement_datetime", T::Ts, false),
    ("measurement_time", T::Text, false),
    ("measurement_type_concept_id", T::Int, true),
    ("operator_concept_id", T::Int, false),
    ("value_as_number", T::Num, false),
    ("value_as_concept_id", T::Int, false),
    ("unit_concept_id", T::Int, false),
    ("range_low", T::Num, false),
    ("range_high", T::Num, false),
    ("provider_id", T::Id, false),
    ("visit_occurrence_id", T::Id, false),
    ("visit_detail_id", T::Id, false),
    ("measurement_source_value", T::Text, false),
    ("measurement_source_concept_id", T::Int, false),
    ("unit_source_value", T::Text, false),
    ("unit_source_concept_id", T::Int, false),
    ("value_source_value", T::Text, false),
    ("measurement_event_id", T::Id, false),
    ("meas_event_field_concept_id", T::Int, false),
];

const OBSERVATION: &[Col] = &[
    ("observation_id", T::Id, true),
    ("person_id", T::Id, true),
    ("observation_concept_id", T::Int, true),
    ("observation_date", T::Date, true),
    ("observation_datetime", T::Ts, false),
    ("observation_type_concept_id", T::Int, true),
    ("value_as_number", T::Num, false),
    ("value_as_string", T::Text, false),
    ("value_as_concept_id", T::Int, false),
    ("qualifier_concept_id", T::Int, false),
    ("unit_concept_id", T::Int, false),
    ("provider_id", T::Id, false),
    ("visit_occurrence_id", T::Id, false),
    ("visit_detail_id", T::Id, false),
    ("observation_source_value", T::Text, false),
    ("observation_source_concept_id", T::Int, false),
    ("unit_source_value", T::Text, false),
    ("qualifier_source_value", T::Text, false),
    ("value_source_value", T::Text, false),
    ("observation_event_id", T::Id, false),
    ("obs_event_field_concept_id", T::Int, false),
];

const DEATH: &[Col] = &[
    ("person_id", T::Id, true),
    ("death_date", T::Date, true),
    ("death_datetime", T::Ts, false),
    ("death_type_concept_id", T::Int, false),
    ("cause_concept_id", T::Int, false),
    ("cause_source_value", T::Text, false),
    ("cause_source_concept_id", T::Int, false),
];

const SPECIMEN: &[Col] = &[
    ("specimen_id", T::Id, true),
    ("person_id", T::Id, true),
    ("specimen_concept_id", T::Int, true),
    ("specimen_type_concept_id", T::Int, true),
    ("specimen_date", T::Date, true),
    ("specimen_datetime", T::Ts, false),
    ("quantity", T::Num, false),
    ("unit_concept_id", T::Int, false),
    ("anatomic_site_concept_id", T::Int, false),
    ("disease_status_concept_id", T::Int, false),
    ("specimen_source_id", T::Text, false),
    ("specimen_source_value", T::Text, false),
    ("unit_source_value", T::Text, false),
    ("anatomic_site_source_value", T::Text, false),
    ("disease_status_source_value", T::Text, false),
];

/// G-CDM `variant_occurrence` (Ajou/ABMI specification), with `person_id`
/// and the gene symbols added so that variants can be counted per patient
/// and per gene without the `target_gene` table.
const VARIANT_OCCURRENCE: &[Col] = &[
    ("variant_occurrence_id", T::Id, true),
    ("person_id", T::Id, true),
    ("procedure_occurrence_id", T::Id, false),
    ("specimen_id", T::Id, false),
    ("reference_specimen_id", T::Id, false),
    ("target_gene1_id", T::Text, false),
    ("target_gene1_symbol", T::Text, false),
    ("target_gene2_id", T::Text, false),
    ("target_gene2_symbol", T::Text, false),
    ("reference_sequence", T::Text, false),
    ("rs_id", T::Text, false),
    ("reference_allele", T::Text, false),
    ("alternate_allele", T::Text, false),
    ("hgvs_c", T::Text, false),
    ("hgvs_p", T::Text, false),
    ("variant_exon_number", T::Int, false),
    ("variant_read_depth", T::Int, false),
    ("variant_allele_frequency", T::Num, false),
    ("copy_number", T::Num, false),
    ("cnv_locus", T::Text, false),
    ("fusion_breakpoint", T::Text, false),
    ("fusion_supporting_reads", T::Int, false),
    ("sequence_alteration", T::Text, false),
    ("variant_feature", T::Text, false),
    ("genotype", T::Text, false),
];

const CONCEPT: &[Col] = &[
    ("concept_id", T::Int, true),
    ("concept_name", T::Text, true),
    ("domain_id", T::Text, true),
    ("vocabulary_id", T::Text, true),
    ("concept_class_id", T::Text, true),
    ("standard_concept", T::Text, false),
    ("concept_code", T::Text, true),
    ("valid_start_date", T::Date, true),
    ("valid_end_date", T::Date, true),
    ("invalid_reason", T::Text, false),
];

/// `(table, kind, description, columns)` for every table of the schema.
const TABLES: &[(&str, TableKind, &str, &[Col])] = &[
    (
        "person",
        TableKind::Patient,
        "One row per patient: demographics.",
        PERSON,
    ),
    (
        "observation_period",
        TableKind::Patient,
        "Spans of time during which clinical events are expected to be recorded.",
        OBSERVATION_PERIOD,
    ),
    (
        "visit_occurrence",
        TableKind::Patient,
        "Encounters of a patient with the healthcare system.",
        VISIT_OCCURRENCE,
    ),
    (
        "condition_occurrence",
        TableKind::Patient,
        "Diagnoses, signs and symptoms recorded for a patient.",
        CONDITION_OCCURRENCE,
    ),
    (
        "drug_exposure",
        TableKind::Patient,
        "Exposures of a patient to a drug (prescribed, dispensed or administered).",
        DRUG_EXPOSURE,
    ),
    (
        "procedure_occurrence",
        TableKind::Patient,
        "Procedures performed on a patient.",
        PROCEDURE_OCCURRENCE,
    ),
    (
        "measurement",
        TableKind::Patient,
        "Structured values from laboratory tests and vital signs.",
        MEASUREMENT,
    ),
    (
        "observation",
        TableKind::Patient,
        "Clinical facts not captured elsewhere, such as scores and history.",
        OBSERVATION,
    ),
    (
        "death",
        TableKind::Patient,
        "The date and cause of a patient's death.",
        DEATH,
    ),
    (
        "specimen",
        TableKind::Patient,
        "Biological samples taken from a patient.",
        SPECIMEN,
    ),
    (
        "variant_occurrence",
        TableKind::Patient,
        "Genomic variants found in a patient's specimen (OMOP Genomic CDM).",
        VARIANT_OCCURRENCE,
    ),
    (
        "concept",
        TableKind::Vocabulary,
        "The OMOP standardized vocabulary: public, no patient data.",
        CONCEPT,
    ),
];

fn column_comment(table: &str, column: &str) -> String {
    match column {
        "person_id" if table == "person" => {
            "Unique identifier of the patient (the privacy unit).".into()
        }
        "person_id" => {
            "The patient this row belongs to (foreign key to person; the privacy unit).".into()
        }
        SITE_COLUMN => "Virtual column: id of the site that holds this row.".into(),
        "year_of_birth" => "Year of birth of the patient.".into(),
        "value_as_number" => "The result as a number, in the unit of unit_concept_id.".into(),
        c if c.ends_with("_type_concept_id") => {
            "Provenance of the record (OMOP Type Concept).".into()
        }
        c if c.ends_with("_source_value") => "The verbatim value from the source system.".into(),
        c if c.ends_with("_source_concept_id") => {
            "Concept id of the source code (non-standard).".into()
        }
        c if c.ends_with("_concept_id") => format!(
            "Standard OMOP concept id for {}.",
            c.trim_end_matches("_concept_id").replace('_', " ")
        ),
        c if c.ends_with("_date") => {
            format!("{} (date).", c.trim_end_matches("_date").replace('_', " "))
        }
        c if c.ends_with("_datetime") => format!(
            "{} (date and time).",
            c.trim_end_matches("_datetime").replace('_', " ")
        ),
        c if c.ends_with("_id") => format!(
            "Identifier: {}.",
            c.trim_end_matches("_id").replace('_', " ")
        ),
        c => c.replace('_', " "),
    }
}

fn build(name: &'static str, kind: TableKind, comment: &'static str, cols: &[Col]) -> TableDef {
    let mut fields: Vec<Field> = cols
        .iter()
        .map(|(c, t, required)| {
            Field::new(*c, t.data_type(), !required).with_metadata(
                [("comment".to_string(), column_comment(name, c))]
                    .into_iter()
                    .collect(),
            )
        })
        .collect();
    if kind == TableKind::Patient {
        fields.push(
            Field::new(SITE_COLUMN, DataType::Utf8, false).with_metadata(
                [("comment".to_string(), column_comment(name, SITE_COLUMN))]
                    .into_iter()
                    .collect(),
            ),
        );
    }
    TableDef {
        name,
        kind,
        comment,
        schema: Arc::new(Schema::new(fields)),
    }
}

/// All tables of the virtual schema, in a stable order.
pub fn tables() -> &'static [TableDef] {
    static DEFS: OnceLock<Vec<TableDef>> = OnceLock::new();
    DEFS.get_or_init(|| {
        TABLES
            .iter()
            .map(|(n, k, c, cols)| build(n, *k, c, cols))
            .collect()
    })
}

/// The patient tables only.
pub fn patient_tables() -> impl Iterator<Item = &'static TableDef> {
    tables().iter().filter(|t| t.kind == TableKind::Patient)
}

/// Look a table up by name (case-insensitive, as SQL identifiers are folded).
pub fn table(name: &str) -> Option<&'static TableDef> {
    tables().iter().find(|t| t.name.eq_ignore_ascii_case(name))
}

/// Whether `name` is a patient table of the virtual schema.
pub fn is_patient_table(name: &str) -> bool {
    table(name).is_some_and(|t| t.kind == TableKind::Patient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_patient_table_has_unit_and_site() {
        for t in patient_tables() {
            let unit = t.schema.field_with_name(PRIVACY_UNIT).expect("person_id");
            assert!(!unit.is_nullable(), "{}", t.name);
            assert_eq!(
                t.schema.fields().last().map(|f| f.name().as_str()),
                Some(SITE_COLUMN)
            );
            assert!(t.file_schema().field_with_name(SITE_COLUMN).is_err());
        }
        assert_eq!(patient_tables().count(), 11);
        assert!(table("concept").is_some_and(|t| t.privacy_unit().is_none()));
    }

    #[test]
    fn omop_column_counts_match_the_ddl() {
        let counts = [
            ("person", 18),
            ("visit_occurrence", 17),
            ("condition_occurrence", 16),
            ("drug_exposure", 23),
            ("measurement", 23),
            ("observation", 21),
            ("death", 7),
            ("specimen", 15),
        ];
        for (name, n) in counts {
            assert_eq!(
                table(name).map(|t| t.file_schema().fields().len()),
                Some(n),
                "{name}"
            );
        }
    }
}
