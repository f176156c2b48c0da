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
use super::rng::{Rng, days_from_civil};
use crate::error::{CatalogError, Result};
use crate::schema;
use crate::vocabulary::*;

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
const PERSON: usize = 0;
const OBS_PERIOD: usize = 1;
const VISIT: usize = 2;
const CONDITION: usize = 3;
const DRUG: usize = 4;
const PROCEDURE: usize = 5;
const MEASUREMENT: usize = 6;
const OBSERVATION: usize = 7;
const DEATH: usize = 8;
const SPECIMEN: usize = 9;
const VARIANT: usize = 10;

struct Writer {
    tables: Vec<TableBuffer>,
    next_id: i64,
}

impl Writer {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }
    fn push(&mut self, table: usize, values: &[V<'_>]) -> Result<()> {
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
    std::fs::create_dir_all(dir).map_err(|source| CatalogError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let tables = TABLE_FILLS
        .iter()
        .map(|(name, fill)| {
            let def =
                schema::table(name).ok_or_else(|| CatalogError::UnknownTable((*name).into()))?;
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

struct Ctx {
    pid: i64,
    age: i32,
    male: bool,
    start: i32,
    end: i32,
    visits: Vec<(i64, i32)>,
}

impl Ctx {
    fn day(&self, rng: &mut Rng) -> i32 {
        rng.range(self.start as i64, self.end as i64) as i32
    }
    fn visit_near(&self, day: i32) -> Option<i64> {
        self.visits
            .iter()
            .min_by_key(|(_, d)| (d - day).abs())
            .map(|(v, _)| *v)
    }
}

fn person(w: &mut Writer, rng: &mut Rng, p: &SiteProfile, pid: i64) -> Result<()> {
    let bladder = rng.chance(p.bladder);
    let parkinson = !bladder && rng.chance(p.parkinson);
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
    let death_p = if bladder {
        0.22
    } else if parkinson {
        0.12
    } else if age > 75 {
        0.07
    } else {
        0.008
    };
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

fn condition(w: &mut Writer, c: &Ctx, concept: i32, day: i32) -> Result<()> {
    let id = w.id();
    let visit = c.visit_near(day).map_or(V::Null, V::I64);
    w.push(
        CONDITION,
        &[
            V::I64(id),
            V::I64(c.pid),
            V::I32(concept),
            V::D(day),
            V::I32(EHR),
            visit,
        ],
    )
}

fn drug(
    w: &mut Writer,
    c: &Ctx,
    concept: i32,
    day: i32,
    days_supply: i32,
    quantity: f64,
) -> Result<()> {
    let id = w.id();
    w.push(
        DRUG,
        &[
            V::I64(id),
            V::I64(c.pid),
            V::I32(concept),
            V::D(day),
            V::D(day + days_supply - 1),
            V::I32(EHR),
            V::F64(quantity),
            V::I32(days_supply),
        ],
    )
}

/// Repeated fills of a chronic drug after `from`.
fn chronic_drug(w: &mut Writer, rng: &mut Rng, c: &Ctx, concept: i32, from: i32) -> Result<()> {
    let mut day = from + rng.range(0, 30) as i32;
    for _ in 0..rng.range(1, 4) {
        if day > c.end {
            break;
        }
        let supply = *[30, 90].get(rng.range(0, 1) as usize).unwrap_or(&30);
        drug(w, c, concept, day, supply, supply as f64)?;
        day += supply + rng.range(0, 60) as i32;
    }
    Ok(())
}

fn background(w: &mut Writer, rng: &mut Rng, c: &Ctx) -> Result<Vec<i32>> {
    let a = c.age as f64;
    let prevalence = [
        (HYPERTENSION, (0.02 + a * 0.006).min(0.6)),
        (TYPE2_DIABETES, (0.01 + a * 0.002).min(0.25)),
        (HYPERLIPIDEMIA, (0.02 + a * 0.004).min(0.45)),
        (ASTHMA, 0.07),
        (DEPRESSION, 0.08),
        (OSTEOARTHRITIS, (a * 0.004).min(0.35)),
        (ATRIAL_FIBRILLATION, if c.age > 60 { 0.06 } else { 0.005 }),
        (COPD, if c.age > 45 { 0.05 } else { 0.002 }),
        (OBESITY, 0.15),
    ];
    let mut have = Vec::new();
    for (concept, p) in prevalence {
        if !rng.chance(p) {
            continue;
        }
        let day = c.day(rng);
        condition(w, c, concept, day)?;
        have.push(concept);
        let treatment = match concept {
            HYPERTENSION => Some(if rng.chance(0.6) {
                LISINOPRIL
            } else {
                AMLODIPINE
            }),
            TYPE2_DIABETES => rng.chance(0.85).then_some(METFORMIN),
            HYPERLIPIDEMIA => rng.chance(0.8).then_some(ATORVASTATIN),
            ATRIAL_FIBRILLATION => rng.chance(0.5).then_some(ASPIRIN),
            _ => None,
        };
        if let Some(d) = treatment {
            chronic_drug(w, rng, c, d, day)?;
        }
    }
    if rng.chance(0.08) {
        let day = c.day(rng);
        chronic_drug(w, rng, c, OMEPRAZOLE, day)?;
    }
    Ok(have)
}

fn measurement(
    w: &mut Writer,
    c: &Ctx,
    concept: i32,
    day: i32,
    value: f64,
    unit: i32,
    range: (f64, f64),
) -> Result<()> {
    let id = w.id();
    let value = (value * 10.0).round() / 10.0;
    w.push(
        MEASUREMENT,
        &[
            V::I64(id),
            V::I64(c.pid),
            V::I32(concept),
            V::D(day),
            V::I32(EHR),
            V::F64(value),
            V::I32(unit),
            V::F64(range.0),
            V::F64(range.1),
        ],
    )
}

fn measurements(w: &mut Writer, rng: &mut Rng, c: &Ctx, conditions: &[i32]) -> Result<()> {
    let diabetic = conditions.contains(&TYPE2_DIABETES);
    let hypertensive = conditions.contains(&HYPERTENSION);
    let obese = conditions.contains(&OBESITY);
    for _ in 0..rng.range(1, 3) {
        let day = c.day(rng);
        let hb = if c.male {
            rng.normal(15.2, 1.3)
        } else {
            rng.normal(13.5, 1.2)
        };
        measurement(
            w,
            c,
            HEMOGLOBIN,
            day,
            hb.max(5.0),
            GRAM_PER_DECILITER,
            if c.male { (13.5, 17.5) } else { (12.0, 15.5) },
        )?;
        let sbp = if hypertensive {
            rng.normal(146.0, 14.0)
        } else {
            rng.normal(121.0, 12.0)
        };
        measurement(
            w,
            c,
            SYSTOLIC_BP,
            day,
            sbp.clamp(80.0, 230.0),
            MM_HG,
            (90.0, 120.0),
        )?;
    }
    if c.age >= 18 {
        let day = c.day(rng);
        let bmi = if obese {
            rng.normal(34.0, 3.5)
        } else {
            rng.normal(25.5, 3.5)
        };
        measurement(
            w,
            c,
            BMI,
            day,
            bmi.clamp(15.0, 60.0),
            KG_PER_M2,
            (18.5, 25.0),
        )?;
        let glucose = if diabetic {
            rng.normal(150.0, 35.0)
        } else {
            rng.normal(94.0, 10.0)
        };
        measurement(
            w,
            c,
            GLUCOSE,
            day,
            glucose.clamp(50.0, 450.0),
            MILLIGRAM_PER_DECILITER,
            (70.0, 99.0),
        )?;
        let creatinine = rng.normal(if c.male { 1.0 } else { 0.8 }, 0.2)
            + (c.age as f64 - 50.0).max(0.0) * 0.004;
        measurement(
            w,
            c,
            CREATININE,
            day,
            creatinine.clamp(0.3, 8.0),
            MILLIGRAM_PER_DECILITER,
            (0.6, 1.2),
        )?;
    }
    if diabetic || rng.chance(0.15) {
        let a1c = if diabetic {
            rng.normal(7.6, 1.2)
        } else {
            rng.normal(5.4, 0.35)
        };
        let day = c.day(rng);
        measurement(w, c, HBA1C, day, a1c.clamp(4.0, 14.0), PERCENT, (4.0, 5.6))?;
    }
    Ok(())
}

fn procedure(w: &mut Writer, c: &Ctx, concept: i32, day: i32) -> Result<i64> {
    let id = w.id();
    w.push(
        PROCEDURE,
        &[
            V::I64(id),
            V::I64(c.pid),
            V::I32(concept),
            V::D(day),
            V::I32(EHR),
        ],
    )?;
    Ok(id)
}

fn specimen(w: &mut Writer, c: &Ctx, concept: i32, day: i32) -> Result<i64> {
    let id = w.id();
    w.push(
        SPECIMEN,
        &[
            V::I64(id),
            V::I64(c.pid),
            V::I32(concept),
            V::I32(EHR),
            V::D(day),
        ],
    )?;
    Ok(id)
}

/// `(gene symbol, HGNC id, protein change, somatic?)`.
type Variant = (&'static str, &'static str, &'static str, bool);

fn variant(
    w: &mut Writer,
    rng: &mut Rng,
    c: &Ctx,
    specimen: i64,
    procedure: Option<i64>,
    v: Variant,
) -> Result<()> {
    let id = w.id();
    let (vaf, genotype) = if v.3 {
        (rng.range(8, 65) as f64 / 100.0, "somatic")
    } else {
        (rng.normal(0.5, 0.04).clamp(0.35, 0.65), "heterozygous")
    };
    let vaf = (vaf * 1000.0).round() / 1000.0;
    let depth = rng.range(80, 900) as i32;
    w.push(
        VARIANT,
        &[
            V::I64(id),
            V::I64(c.pid),
            V::I64(specimen),
            V::S(v.1),
            V::S(v.0),
            V::S(v.2),
            V::I32(depth),
            V::F64(vaf),
            V::S("SNV"),
            V::S(genotype),
            procedure.map_or(V::Null, V::I64),
        ],
    )
}

fn bladder_course(w: &mut Writer, rng: &mut Rng, c: &Ctx) -> Result<()> {
    let dx = c.day(rng).min(c.end - 30).max(c.start);
    condition(w, c, BLADDER_CANCER, dx)?;
    let turbt_day = dx + rng.range(0, 30) as i32;
    let turbt = procedure(w, c, TURBT, turbt_day)?;
    let tissue = specimen(w, c, TUMOR_TISSUE, turbt_day)?;
    let invasive = rng.chance(0.3);
    if invasive {
        if rng.chance(0.7) {
            for cycle in 0..4 {
                let day = turbt_day + 21 + cycle * 21;
                drug(w, c, CISPLATIN, day, 1, 1.0)?;
                drug(w, c, GEMCITABINE, day, 8, 2.0)?;
            }
        }
        if rng.chance(0.75) {
            procedure(w, c, CYSTECTOMY, turbt_day + rng.range(90, 200) as i32)?;
        }
    } else if rng.chance(0.6) {
        for week in 0..6 {
            drug(w, c, BCG, turbt_day + 21 + week * 7, 1, 1.0)?;
        }
    }
    for k in 0..rng.range(2, 5) {
        let day = dx + (k as i32) * 60;
        measurement(
            w,
            c,
            HEMOGLOBIN,
            day,
            rng.normal(12.4, 1.6).max(6.0),
            GRAM_PER_DECILITER,
            (12.0, 17.5),
        )?;
        measurement(
            w,
            c,
            CREATININE,
            day,
            rng.normal(1.15, 0.3).clamp(0.4, 6.0),
            MILLIGRAM_PER_DECILITER,
            (0.6, 1.2),
        )?;
    }
    let (fgfr3, tp53, rb1) = if invasive {
        (0.15, 0.5, 0.2)
    } else {
        (0.6, 0.2, 0.05)
    };
    let panel: [(f64, Variant); 4] = [
        (
            fgfr3,
            (
                "FGFR3",
                "HGNC:3690",
                rng.pick(&["p.S249C", "p.Y375C", "p.R248C"]),
                true,
            ),
        ),
        (
            tp53,
            (
                "TP53",
                "HGNC:11998",
                rng.pick(&["p.R273H", "p.R248Q", "p.R175H"]),
                true,
            ),
        ),
        (rb1, ("RB1", "HGNC:9884", "p.R579*", true)),
        (0.25, ("KDM6A", "HGNC:12637", "p.Q555*", true)),
    ];
    for (p, v) in panel {
        if rng.chance(p) {
            variant(w, rng, c, tissue, Some(turbt), v)?;
        }
    }
    Ok(())
}

fn parkinson_course(w: &mut Writer, rng: &mut Rng, c: &Ctx, p: &SiteProfile) -> Result<()> {
    let dx = c.day(rng).min(c.end - 30).max(c.start);
    condition(w, c, PARKINSONS_DISEASE, dx)?;
    if rng.chance(0.85) {
        let day = dx + rng.range(0, 90) as i32;
        chronic_drug(w, rng, c, LEVODOPA, day)?;
        chronic_drug(w, rng, c, CARBIDOPA, day)?;
    }
    if rng.chance(0.4) {
        let agonist = if rng.chance(0.55) {
            PRAMIPEXOLE
        } else {
            ROPINIROLE
        };
        let day = dx + rng.range(0, 365) as i32;
        chronic_drug(w, rng, c, agonist, day)?;
    }
    let baseline = rng.normal(22.0, 7.0).max(3.0);
    for k in 0..rng.range(2, 5) {
        let day = dx + (k as i32) * 180;
        if day > c.end {
            break;
        }
        let years = (day - dx) as f64 / 365.25;
        let score = (baseline + 3.0 * years + rng.normal(0.0, 3.0))
            .clamp(0.0, 132.0)
            .round();
        let id = w.id();
        w.push(
            OBSERVATION,
            &[
                V::I64(id),
                V::I64(c.pid),
                V::I32(UPDRS_III),
                V::D(day),
                V::I32(EHR),
                V::F64(score),
            ],
        )?;
    }
    let blood = specimen(w, c, BLOOD_SPECIMEN, dx)?;
    let panel: [(f64, Variant); 3] = [
        (p.lrrk2, ("LRRK2", "HGNC:18618", "p.G2019S", false)),
        (
            0.08,
            (
                "GBA1",
                "HGNC:4177",
                rng.pick(&["p.N409S", "p.L483P"]),
                false,
            ),
        ),
        (0.01, ("SNCA", "HGNC:11138", "p.A53T", false)),
    ];
    for (prob, v) in panel {
        if rng.chance(prob) {
            variant(w, rng, c, blood, None, v)?;
        }
    }
    Ok(())
}
