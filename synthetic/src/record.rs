//! What every part of a patient's record is written through: the site's
//! table buffers (in `TABLE_FILLS` order), the person being generated, and
//! the row ids they share.

use super::buffer::{TableBuffer, V};
use super::rng::Rng;
use crate::error::Result;

pub(super) const TABLE_FILLS: &[(&str, &[&str])] = &[
    (
        "person",
        &[
            "person_id",
            "gender_concept_id",
            "year_of_birth",
            "month_of_birth",
            "day_of_birth",
            "race_concept_id",
            "ethnicity_concept_id",
            "person_source_value",
        ],
    ),
    (
        "observation_period",
        &[
            "observation_period_id",
            "person_id",
            "observation_period_start_date",
            "observation_period_end_date",
            "period_type_concept_id",
        ],
    ),
    (
        "visit_occurrence",
        &[
            "visit_occurrence_id",
            "person_id",
            "visit_concept_id",
            "visit_start_date",
            "visit_end_date",
            "visit_type_concept_id",
        ],
    ),
    (
        "condition_occurrence",
        &[
            "condition_occurrence_id",
            "person_id",
            "condition_concept_id",
            "condition_start_date",
            "condition_type_concept_id",
            "visit_occurrence_id",
        ],
    ),
    (
        "drug_exposure",
        &[
            "drug_exposure_id",
            "person_id",
            "drug_concept_id",
            "drug_exposure_start_date",
            "drug_exposure_end_date",
            "drug_type_concept_id",
            "quantity",
            "days_supply",
        ],
    ),
    (
        "procedure_occurrence",
        &[
            "procedure_occurrence_id",
            "person_id",
            "procedure_concept_id",
            "procedure_date",
            "procedure_type_concept_id",
        ],
    ),
    (
        "measurement",
        &[
            "measurement_id",
            "person_id",
            "measurement_concept_id",
            "measurement_date",
            "measurement_type_concept_id",
            "value_as_number",
            "unit_concept_id",
            "range_low",
            "range_high",
        ],
    ),
    (
        "observation",
        &[
            "observation_id",
            "person_id",
            "observation_concept_id",
            "observation_date",
            "observation_type_concept_id",
            "value_as_number",
        ],
    ),
    (
        "death",
        &[
            "person_id",
            "death_date",
            "death_type_concept_id",
            "cause_concept_id",
        ],
    ),
    (
        "specimen",
        &[
            "specimen_id",
            "person_id",
            "specimen_concept_id",
            "specimen_type_concept_id",
            "specimen_date",
        ],
    ),
    (
        "variant_occurrence",
        &[
            "variant_occurrence_id",
            "person_id",
            "specimen_id",
            "target_gene1_id",
            "target_gene1_symbol",
            "hgvs_p",
            "variant_read_depth",
            "variant_allele_frequency",
            "sequence_alteration",
            "genotype",
            "procedure_occurrence_id",
        ],
    ),
];

/// Indexes into the writer's buffers, in `TABLE_FILLS` order.
pub(super) const PERSON: usize = 0;
pub(super) const OBS_PERIOD: usize = 1;
pub(super) const VISIT: usize = 2;
pub(super) const CONDITION: usize = 3;
pub(super) const DRUG: usize = 4;
pub(super) const PROCEDURE: usize = 5;
pub(super) const MEASUREMENT: usize = 6;
pub(super) const OBSERVATION: usize = 7;
pub(super) const DEATH: usize = 8;
pub(super) const SPECIMEN: usize = 9;
pub(super) const VARIANT: usize = 10;

/// The site's table buffers, and the next row id.
pub(super) struct Writer {
    pub(super) tables: Vec<TableBuffer>,
    pub(super) next_id: i64,
}

impl Writer {
    pub(super) fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }
    pub(super) fn push(&mut self, table: usize, values: &[V<'_>]) -> Result<()> {
        self.tables[table].push(values)
    }
}

/// The person being generated, as the clinical modules need them.
pub(super) struct Ctx {
    pub(super) pid: i64,
    pub(super) age: i32,
    pub(super) male: bool,
    pub(super) start: i32,
    pub(super) end: i32,
    /// The person's visits so far: id and day.
    pub(super) visits: Vec<(i64, i32)>,
}

impl Ctx {
    pub(super) fn day(&self, rng: &mut Rng) -> i32 {
        rng.range(self.start as i64, self.end as i64) as i32
    }
    pub(super) fn visit_near(&self, day: i32) -> Option<i64> {
        self.visits
            .iter()
            .min_by_key(|(_, d)| (d - day).abs())
            .map(|(v, _)| *v)
    }
}
