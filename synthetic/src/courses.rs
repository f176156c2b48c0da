//! Disease courses: bladder cancer and Parkinson's disease, with their
//! procedures, treatments, specimens, scores and genomic variants.

use super::buffer::V;
use super::clinical::{chronic_drug, condition, drug, measurement};
use super::profile::SiteProfile;
use super::record::{Ctx, OBSERVATION, PROCEDURE, SPECIMEN, VARIANT, Writer};
use super::rng::Rng;
use crate::error::Result;
use ihdsi_catalog::vocabulary::*;

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

/// A bladder tumour as diagnosed: the day, whether it invades the muscle,
/// and whether it carries an FGFR3 variant. It is drawn before the
/// person's death, which depends on it: survival differs by stage and by
/// FGFR3 status, as the cohort's first questions ask.
#[derive(Debug, Clone, Copy)]
pub(super) struct BladderTumour {
    pub(super) diagnosed: i32,
    pub(super) invasive: bool,
    pub(super) fgfr3: bool,
}

impl BladderTumour {
    /// A tumour diagnosed between `start` and a month before `end`. FGFR3
    /// variants are frequent in non-invasive tumours (about 60 %) and rare
    /// in muscle-invasive ones (about 15 %).
    pub(super) fn draw(rng: &mut Rng, start: i32, end: i32) -> Self {
        let diagnosed = rng.range(start as i64, (end - 30).max(start + 1) as i64) as i32;
        let invasive = rng.chance(0.3);
        let fgfr3 = rng.chance(if invasive { 0.15 } else { 0.6 });
        Self {
            diagnosed,
            invasive,
            fgfr3,
        }
    }

    /// The day of death from the tumour, if before `end`: exponential
    /// survival from diagnosis with a yearly hazard of 0.25 when the tumour
    /// invades the muscle and 0.05 when it does not, halved with an FGFR3
    /// variant (five-year survival about 29 % and 78 %, 53 % and 88 %).
    pub(super) fn death(&self, rng: &mut Rng, end: i32) -> Option<i32> {
        let yearly = if self.invasive { 0.25 } else { 0.05 } * if self.fgfr3 { 0.5 } else { 1.0 };
        let years = -(1.0 - rng.f64()).ln() / yearly;
        let day = self.diagnosed + 1 + (years * 365.25) as i32;
        (day < end).then_some(day)
    }
}

pub(super) fn bladder_course(
    w: &mut Writer,
    rng: &mut Rng,
    c: &Ctx,
    tumour: BladderTumour,
) -> Result<()> {
    let dx = tumour.diagnosed.min(c.end).max(c.start);
    condition(w, c, BLADDER_CANCER, dx)?;
    let turbt_day = (dx + rng.range(0, 30) as i32).min(c.end);
    let turbt = procedure(w, c, TURBT, turbt_day)?;
    let tissue = specimen(w, c, TUMOR_TISSUE, turbt_day)?;
    let invasive = tumour.invasive;
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
    let fgfr3 = if tumour.fgfr3 { 1.0 } else { 0.0 };
    let (tp53, rb1) = if invasive { (0.5, 0.2) } else { (0.2, 0.05) };
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

pub(super) fn parkinson_course(
    w: &mut Writer,
    rng: &mut Rng,
    c: &Ctx,
    p: &SiteProfile,
) -> Result<()> {
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
