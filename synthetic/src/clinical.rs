//! Background care for everyone: age-dependent chronic conditions with
//! their usual drugs, and routine laboratory and vital-sign measurements.

use super::buffer::V;
use super::record::{CONDITION, Ctx, DRUG, MEASUREMENT, Writer};
use super::rng::Rng;
use crate::error::Result;
use ihdsi_catalog::vocabulary::*;

pub(super) fn condition(w: &mut Writer, c: &Ctx, concept: i32, day: i32) -> Result<()> {
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

pub(super) fn drug(
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
pub(super) fn chronic_drug(
    w: &mut Writer,
    rng: &mut Rng,
    c: &Ctx,
    concept: i32,
    from: i32,
) -> Result<()> {
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

pub(super) fn background(w: &mut Writer, rng: &mut Rng, c: &Ctx) -> Result<Vec<i32>> {
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

pub(super) fn measurement(
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

/// A person's labs: routine haemoglobin and blood pressure, adult BMI,
/// glucose and creatinine, and HbA1c, shifted by their conditions.
pub(super) fn measurements(
    w: &mut Writer,
    rng: &mut Rng,
    c: &Ctx,
    conditions: &[i32],
) -> Result<()> {
    let diabetic = conditions.contains(&TYPE2_DIABETES);
    for _ in 0..rng.range(1, 3) {
        routine_labs(w, rng, c, conditions.contains(&HYPERTENSION))?;
    }
    if c.age >= 18 {
        adult_labs(w, rng, c, conditions.contains(&OBESITY), diabetic)?;
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

/// One visit's haemoglobin and systolic blood pressure.
fn routine_labs(w: &mut Writer, rng: &mut Rng, c: &Ctx, hypertensive: bool) -> Result<()> {
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
    Ok(())
}

/// An adult's BMI, glucose and creatinine, on one day.
fn adult_labs(w: &mut Writer, rng: &mut Rng, c: &Ctx, obese: bool, diabetic: bool) -> Result<()> {
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
    let creatinine =
        rng.normal(if c.male { 1.0 } else { 0.8 }, 0.2) + (c.age as f64 - 50.0).max(0.0) * 0.004;
    measurement(
        w,
        c,
        CREATININE,
        day,
        creatinine.clamp(0.3, 8.0),
        MILLIGRAM_PER_DECILITER,
        (0.6, 1.2),
    )?;
    Ok(())
}
