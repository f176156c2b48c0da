//! The life of one synthetic patient, written as OMOP rows.
//!
//! Everyone gets demographics, an observation period (10% get two), visits,
//! age-dependent background conditions with their usual drugs, and routine
//! measurements. Cohort members additionally get the clinical course of
//! bladder cancer (diagnosis, TURBT, cystectomy for muscle-invasive disease,
//! cisplatin + gemcitabine or BCG, tumour specimen, FGFR3/TP53/RB1/KDM6A
//! variants, excess mortality) or Parkinson's disease (diagnosis, levodopa
//! with carbidopa, dopamine agonists, MDS-UPDRS III scores that worsen over
//! time, LRRK2/GBA/SNCA variants).

use std::path::Path;

use super::buffer::{TableBuffer, V};
use super::clinical::{background, measurements};
use super::courses::{bladder_course, parkinson_course};
use super::rng::{Rng, days_from_civil};
use crate::error::{Result, SyntheticError};
use ihdsi_catalog::schema;
use ihdsi_catalog::vocabulary::*;

/// Size and case mix of one site.
#[derive(Debug, Clone)]
pub struct SiteProfile {
    /// Relative share of all persons.
    pub weight: f64,
    /// Prevalence of bladder cancer.
    pub bladder: f64,
    /// Prevalence of Parkinson's disease.
    pub parkinson: f64,
    /// Race concept distribution.
    pub races: Vec<(i32, f64)>,
    /// Share of Hispanic or Latino ethnicity.
    pub hispanic: f64,
    /// Carrier frequency of LRRK2 G2019S among Parkinson's patients.
    pub lrrk2: f64,
}

impl SiteProfile {
    /// The profile of a known site id, or a generic one.
    pub fn for_site(id: &str) -> Self {
        match id {
            "lu" => Self {
                weight: 0.2,
                bladder: 0.04,
                parkinson: 0.008,
                races: vec![
                    (WHITE, 0.90),
                    (BLACK, 0.03),
                    (ASIAN, 0.04),
                    (NO_MATCHING_CONCEPT, 0.03),
                ],
                hispanic: 0.02,
                lrrk2: 0.03,
            },
            "us" => Self {
                weight: 0.5,
                bladder: 0.012,
                parkinson: 0.01,
                races: vec![
                    (WHITE, 0.61),
                    (BLACK, 0.13),
                    (ASIAN, 0.06),
                    (AMERICAN_INDIAN, 0.01),
                    (PACIFIC_ISLANDER, 0.003),
                    (NO_MATCHING_CONCEPT, 0.187),
                ],
                hispanic: 0.18,
                lrrk2: 0.04,
            },
            "kr" => Self {
                weight: 0.3,
                bladder: 0.006,
                parkinson: 0.04,
                races: vec![(ASIAN, 0.975), (WHITE, 0.01), (NO_MATCHING_CONCEPT, 0.015)],
                hispanic: 0.0,
                lrrk2: 0.01,
            },
            _ => Self {
                weight: 0.3,
                bladder: 0.01,
                parkinson: 0.01,
                races: vec![
                    (WHITE, 0.7),
                    (BLACK, 0.1),
                    (ASIAN, 0.1),
                    (NO_MATCHING_CONCEPT, 0.1),
                ],
                hispanic: 0.1,
                lrrk2: 0.03,
            },
        }
    }
}

const TABLE_FILLS: &[(&str, &[&str])] = &[
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

pub(super) struct Writer {
    tables: Vec<TableBuffer>,
    next_id: i64,
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

/// Generate one site into `dir`; returns the total rows written.
pub(crate) fn generate_site(
    dir: &Path,
    profile: &SiteProfile,
    id_base: i64,
    persons: u64,
    seed: u64,
) -> Result<u64> {
    std::fs::create_dir_all(dir).map_err(|source| SyntheticError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let tables = TABLE_FILLS
        .iter()
        .map(|(name, fill)| {
            let def =
                schema::table(name).ok_or_else(|| SyntheticError::UnknownTable((*name).into()))?;
            TableBuffer::create(
                def.name,
                def.file_schema(),
                fill,
                &dir.join(format!("{name}.parquet")),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let mut w = Writer {
        tables,
        next_id: id_base * 1000,
    };
    let mut rng = Rng::new(seed);
    for i in 0..persons {
        person(&mut w, &mut rng, profile, id_base + i as i64)?;
    }
    let mut rows = 0;
    for t in w.tables {
        rows += t.finish()?;
    }
    Ok(rows)
}

const STUDY_END: (i32, u32, u32) = (2025, 6, 30);

pub(super) struct Ctx {
    pub(super) pid: i64,
    pub(super) age: i32,
    pub(super) male: bool,
    pub(super) start: i32,
    pub(super) end: i32,
    visits: Vec<(i64, i32)>,
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

/// Draw a person's age, sex, race and ethnicity (in this order: the
/// cohort depends on it) and write their `person` row; returns age, sex
/// and year of birth.
fn demographics(
    w: &mut Writer,
    rng: &mut Rng,
    p: &SiteProfile,
    pid: i64,
    (bladder, parkinson): (bool, bool),
) -> Result<(i32, bool, i32)> {
    let age = if bladder {
        rng.normal(70.0, 9.0).clamp(35.0, 95.0)
    } else if parkinson {
        rng.normal(68.0, 9.0).clamp(35.0, 95.0)
    } else {
        (rng.f64().powf(0.85) * 92.0).clamp(0.0, 100.0)
    } as i32;
    let male_share = if bladder {
        0.76
    } else if parkinson {
        0.6
    } else {
        0.49
    };
    let male = rng.chance(male_share);
    let yob = STUDY_END.0 - age;
    let race = rng.weighted(&p.races);
    let ethnicity = if rng.chance(p.hispanic) {
        HISPANIC
    } else {
        NOT_HISPANIC
    };
    let source = format!("P{pid}");
    w.push(
        PERSON,
        &[
            V::I64(pid),
            V::I32(if male { MALE } else { FEMALE }),
            V::I32(yob),
            V::I32(rng.range(1, 12) as i32),
            V::I32(rng.range(1, 28) as i32),
            V::I32(race),
            V::I32(ethnicity),
            V::S(&source),
        ],
    )?;
    Ok((age, male, yob))
}

/// The chance that a person dies within the study, by diagnosis and age.
fn death_chance(bladder: bool, parkinson: bool, age: i32) -> f64 {
    if bladder {
        0.22
    } else if parkinson {
        0.12
    } else if age > 75 {
        0.07
    } else {
        0.008
    }
}

/// One person's whole record: demographics, observation time, visits,
/// background conditions and labs, their disease course and death.
fn person(w: &mut Writer, rng: &mut Rng, p: &SiteProfile, pid: i64) -> Result<()> {
    let bladder = rng.chance(p.bladder);
    let parkinson = !bladder && rng.chance(p.parkinson);
    let (age, male, yob) = demographics(w, rng, p, pid, (bladder, parkinson))?;
    let study_end = days_from_civil(STUDY_END.0, STUDY_END.1, STUDY_END.2);
    let birth = days_from_civil(yob, 1, 1);
    let start = rng
        .range(
            days_from_civil(2012, 1, 1) as i64,
            days_from_civil(2021, 12, 31) as i64,
        )
        .max(birth as i64) as i32;
    let mut ctx = Ctx {
        pid,
        age,
        male,
        start,
        end: study_end,
        visits: Vec::new(),
    };
    let death_p = death_chance(bladder, parkinson, age);
    let death = rng
        .chance(death_p)
        .then(|| ctx.day(rng).max(start + 200).min(study_end));
    if let Some(d) = death {
        ctx.end = d;
    }
    observation_periods(w, rng, &ctx)?;
    visits(w, rng, &mut ctx, if bladder || parkinson { 10 } else { 5 })?;
    let conditions = background(w, rng, &ctx)?;
    measurements(w, rng, &ctx, &conditions)?;
    if bladder {
        bladder_course(w, rng, &ctx)?;
    }
    if parkinson {
        parkinson_course(w, rng, &ctx, p)?;
    }
    if let Some(d) = death {
        let cause = if bladder {
            BLADDER_CANCER
        } else if parkinson {
            PARKINSONS_DISEASE
        } else {
            rng.pick(&[HYPERTENSION, COPD, ATRIAL_FIBRILLATION])
        };
        w.push(DEATH, &[V::I64(pid), V::D(d), V::I32(EHR), V::I32(cause)])?;
    }
    Ok(())
}

fn observation_periods(w: &mut Writer, rng: &mut Rng, c: &Ctx) -> Result<()> {
    if c.end - c.start > 800 && rng.chance(0.1) {
        let gap_start = rng.range(c.start as i64 + 200, c.end as i64 - 400) as i32;
        for (s, e) in [(c.start, gap_start), (gap_start + 180, c.end)] {
            let id = w.id();
            w.push(
                OBS_PERIOD,
                &[
                    V::I64(id),
                    V::I64(c.pid),
                    V::D(s),
                    V::D(e.max(s)),
                    V::I32(EHR),
                ],
            )?;
        }
        return Ok(());
    }
    let id = w.id();
    w.push(
        OBS_PERIOD,
        &[
            V::I64(id),
            V::I64(c.pid),
            V::D(c.start),
            V::D(c.end),
            V::I32(EHR),
        ],
    )
}

fn visits(w: &mut Writer, rng: &mut Rng, c: &mut Ctx, mean: i64) -> Result<()> {
    let n = 1 + rng.range(0, mean + (c.age / 20) as i64);
    for _ in 0..n {
        let kind = rng.weighted(&[
            (OUTPATIENT_VISIT, 0.8),
            (ER_VISIT, 0.12),
            (INPATIENT_VISIT, 0.08),
        ]);
        let day = c.day(rng);
        let len = if kind == INPATIENT_VISIT {
            rng.range(1, 12) as i32
        } else {
            0
        };
        let id = w.id();
        w.push(
            VISIT,
            &[
                V::I64(id),
                V::I64(c.pid),
                V::I32(kind),
                V::D(day),
                V::D((day + len).min(c.end.max(day))),
                V::I32(EHR),
            ],
        )?;
        c.visits.push((id, day));
    }
    Ok(())
}
