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
use super::courses::{BladderTumour, bladder_course, parkinson_course};
use super::profile::SiteProfile;
use super::record::{Ctx, DEATH, OBS_PERIOD, PERSON, TABLE_FILLS, VISIT, Writer};
use super::rng::{Rng, days_from_civil};
use crate::error::{Result, SyntheticError};
use ihdsi_catalog::schema;
use ihdsi_catalog::vocabulary::*;

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

/// The chance that a person without bladder cancer dies within the study,
/// by diagnosis and age (a bladder tumour has its own hazard:
/// `BladderTumour::death`).
fn death_chance(parkinson: bool, age: i32) -> f64 {
    if parkinson {
        0.12
    } else if age > 75 {
        0.07
    } else {
        0.008
    }
}

const STUDY_END: (i32, u32, u32) = (2025, 6, 30);

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
    // A bladder patient dies of the tumour at its own hazard; others at
    // a chance by diagnosis and age, any day of their follow-up.
    let tumour = bladder.then(|| BladderTumour::draw(rng, start, study_end));
    let death = match tumour {
        Some(t) => t.death(rng, study_end),
        None => rng
            .chance(death_chance(parkinson, age))
            .then(|| ctx.day(rng).max(start + 200).min(study_end)),
    };
    if let Some(d) = death {
        ctx.end = d;
    }
    observation_periods(w, rng, &ctx)?;
    visits(w, rng, &mut ctx, if bladder || parkinson { 10 } else { 5 })?;
    let conditions = background(w, rng, &ctx)?;
    measurements(w, rng, &ctx, &conditions)?;
    if let Some(t) = tumour {
        bladder_course(w, rng, &ctx, t)?;
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
