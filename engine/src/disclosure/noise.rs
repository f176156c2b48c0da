//! The differentially private release of one boundary: calibrate, select
//! groups on a noisy patient count, add noise to every partial total.
//!
//! **Sensitivity.** Sites bound contributions (`planner::bounding`): a
//! patient is in at most G groups and, per group, adds at most C rows, one
//! patient, and a per-patient sum clamped to C × the column's declared
//! range. Over all groups, the L2 sensitivity of partial column j is
//! `√G · Δⱼ` with Δ = C (rows), 1 (patients) or `⌈C·|bound|/step⌉ + 1` grid
//! steps (sums: the true total is rounded to the grid first, which moves it
//! by at most one step).
//!
//! **Noise.** The release's ρ is split evenly over its partial columns and
//! the hidden patient count; each gets discrete Gaussian noise with
//! `σ² = G·Δ²/(2ρⱼ)` (Bun & Steinke 2016: the Gaussian mechanism is Δ²/(2σ²)-zCDP;
//! Canonne, Kamath & Steinke 2020 show the same for the discrete one), drawn
//! by the exact integer sampler, on the integer grid of the column. The
//! released aggregates are post-processing of the noisy totals: a count
//! is its noisy total (floored at 0), an average a noisy sum over a noisy
//! count.
//!
//! **People at several sites** (A21). Sites do not link patients, so a
//! person treated at S sites counts S times. With
//! `privacy.max_sites_per_patient = S`, every sensitivity and the
//! minimum group size are multiplied by S.
//!
//! **Group selection.** A group is released only if its *exact* patient count
//! reaches `min_group_size` k **and** its noisy patient count reaches
//! `τ = k + ⌈σₚ·√(2·ln(G/δ))⌉`. A group whose exact count sits at the edge
//! (k on one dataset, k − 1 on its neighbour) is then released with
//! probability at most δ/G (the discrete Gaussian is sub-Gaussian:
//! P(Z ≥ t) ≤ exp(−t²/2σ²), Canonne, Kamath & Steinke 2020), so
//! the exact gate costs at most δ per release in total. A group that does
//! not pass is absent, exactly like a group nobody is in.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;

use crate::disclosure::finish::CountFinish;
use crate::dp::sampler::{Uniform, discrete_gaussian};
use crate::error::{EngineError, Result};
use crate::fanout::SitePartials;
use crate::merge::{Group, Released, as_f64, as_i64, build_output, merge_groups, overflow};
use ihdsi_catalog::PrivacyPolicy;
use ihdsi_planner::Release;
use ihdsi_planner::release::aggregates::PartialKind;

/// Finest denominator of σ² as a rational (σ² is rounded *up* to it).
/// Large σ² use a coarser one, so that the sampler's exact integer
/// arithmetic (products of σ², the denominator and samples) stays far
/// inside 128 bits.
const SIGMA2_DEN: u128 = 1_000_000;

/// The noise of one partial column (or of the patient count).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnNoise {
    /// σ² in grid steps, as `sigma2_num / sigma2_den`.
    sigma2_num: u128,
    sigma2_den: u128,
    /// The grid: noise is an integer number of steps.
    pub step: f64,
    /// Standard deviation in the column's own unit.
    pub sd: f64,
}

impl ColumnNoise {
    fn new(sensitivity: f64, groups: f64, rho: f64, step: f64) -> Result<Self> {
        let sigma2 = groups * sensitivity * sensitivity / (2.0 * rho);
        if !(1e-3..1e16).contains(&sigma2) {
            return Err(EngineError::Internal(format!(
                "noise scale out of range (σ² = {sigma2})"
            )));
        }
        // 10^6 for σ² < 1, down to 1 for σ² ≥ 10^6.
        let mut den = SIGMA2_DEN;
        while den > 1 && sigma2 * den as f64 > 1e6 * SIGMA2_DEN as f64 {
            den /= 10;
        }
        let num = (sigma2 * den as f64).ceil();
        Ok(Self {
            sigma2_num: num as u128,
            sigma2_den: den,
            step,
            sd: sigma2.sqrt() * step,
        })
    }

    fn sample<U: Uniform>(&self, u: &mut U) -> Result<i128> {
        discrete_gaussian(u, self.sigma2_num, self.sigma2_den)
            .map_err(|e| EngineError::Internal(format!("noise sampler: {e}")))
    }
}

/// How one release is privatised.
#[derive(Debug, Clone, PartialEq)]
pub struct NoisePlan {
    /// Per partial column `p*`.
    pub columns: Vec<ColumnNoise>,
    /// The hidden distinct-patient count used for selection.
    pub patients: ColumnNoise,
    /// Exact minimum group size k.
    pub min_group_size: i64,
    /// Noisy threshold τ.
    pub threshold: i64,
}

impl NoisePlan {
    /// Calibrate the noise of `release` under the federation's `policy`.
    pub fn for_release(release: &Release, policy: &PrivacyPolicy) -> Result<Self> {
        let bounding = policy
            .effective_bounding()
            .ok_or_else(|| EngineError::Internal("dp mode without bounding".into()))?;
        // A person at S sites is S patients, each bounded: S times the
        // contribution (A21), and S times the minimum group size.
        let sites = policy.max_sites_per_patient.max(1);
        let c = bounding.max_rows_per_patient as f64 * sites as f64;
        let g = if release.key_count == 0 {
            1.0
        } else {
            bounding.max_groups_per_patient as f64
        };
        let rho = policy.dp.rho_per_release / (release.partials.len() + 1) as f64;
        let columns = release
            .partials
            .iter()
            .map(|kind| match kind {
                PartialKind::Rows => ColumnNoise::new(c, g, rho, 1.0),
                PartialKind::Patients => ColumnNoise::new(sites as f64, g, rho, 1.0),
                PartialKind::Sum(Some(b)) => ColumnNoise::new(
                    (c * b.magnitude() / b.step).ceil() + sites as f64,
                    g,
                    rho,
                    b.step,
                ),
                PartialKind::Sum(None) | PartialKind::Other => Err(EngineError::Internal(
                    "dp release of an unbounded partial".into(),
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        let patients = ColumnNoise::new(sites as f64, g, rho, 1.0)?;
        let k = policy
            .min_group_size
            .checked_mul(sites)
            .and_then(|k| i64::try_from(k).ok())
            .ok_or_else(overflow)?;
        let z = (2.0 * (g / policy.dp.delta).ln()).sqrt();
        let margin = (patients.sd * z).ceil() as i64;
        Ok(Self {
            columns,
            patients,
            min_group_size: k,
            threshold: k.checked_add(margin).ok_or_else(overflow)?,
        })
    }

    /// Merge the sites' partials of `release`, select and privatise. Nothing
    /// about withheld groups is reported: their number is not released.
    pub fn release<U: Uniform>(
        &self,
        release: &Release,
        answers: &[SitePartials],
        u: &mut U,
    ) -> Result<Released> {
        let (mut groups, _) = merge_groups(release, answers)?;
        self.apply(release, &mut groups, u)?;
        let groups = super::with_scalar_row(release, groups);
        Ok(Released {
            batch: build_output(release, &groups, |v| CountFinish::FloorAtZero.apply(v))?,
            suppressed: 0,
            groups: Vec::new(),
            withheld_cells: super::withheld_cells(release, &groups),
        })
    }

    /// Select and privatise the merged `groups` in place: groups that fail
    /// selection are removed, the others hold one row of noisy totals.
    pub(crate) fn apply<U: Uniform>(
        &self,
        release: &Release,
        groups: &mut Vec<Group>,
        u: &mut U,
    ) -> Result<()> {
        let types = release.site_types();
        let partial_types = &types[release.key_count..release.key_count + self.columns.len()];
        let mut kept = Vec::with_capacity(groups.len());
        for mut g in std::mem::take(groups) {
            // Draw the selection noise for every group, passing or not, so
            // the work done does not depend on the exact count.
            let noisy = i128::from(g.patients) + self.patients.sample(u)?;
            let selected = g.patients >= self.min_group_size && noisy >= i128::from(self.threshold);
            let row = self.noisy_row(&g.rows, partial_types, u)?;
            if selected {
                g.rows = vec![row];
                kept.push(g);
            }
        }
        *groups = kept;
        Ok(())
    }

    fn noisy_row<U: Uniform>(
        &self,
        rows: &[Vec<ScalarValue>],
        types: &[DataType],
        u: &mut U,
    ) -> Result<Vec<ScalarValue>> {
        self.columns
            .iter()
            .zip(types)
            .enumerate()
            .map(|(j, (noise, t))| {
                let total = grid_total(rows, j, noise.step)?;
                let noisy = total.checked_add(noise.sample(u)?).ok_or_else(overflow)?;
                from_grid(noisy, noise.step, t)
            })
            .collect()
    }
}

/// Σ over sites of partial `j`, in grid steps (integers exactly, floats
/// rounded to the nearest step).
fn grid_total(rows: &[Vec<ScalarValue>], j: usize, step: f64) -> Result<i128> {
    let mut total: i128 = 0;
    for r in rows {
        let v = &r[j];
        if v.is_null() {
            continue;
        }
        let steps = match v.data_type() {
            DataType::Float64 | DataType::Float32 => {
                let x = as_f64(v).unwrap_or(0.0) / step;
                if !x.is_finite() || x.abs() > 1e30 {
                    return Err(overflow());
                }
                x.round() as i128
            }
            _ if step == 1.0 => i128::from(as_i64(v)?),
            _ => (as_i64(v)? as f64 / step).round() as i128,
        };
        total = total.checked_add(steps).ok_or_else(overflow)?;
    }
    Ok(total)
}

/// A noisy grid total as a value of the partial's type: counts are floored
/// at zero, values are steps × the grid (division by the inverse step,
/// so 1234 steps of 0.01 is exactly the double nearest 12.34).
fn from_grid(steps: i128, step: f64, t: &DataType) -> Result<ScalarValue> {
    let value = match t {
        DataType::Float64 | DataType::Float32 => {
            let inverse = (1.0 / step).round();
            let x = if inverse >= 1.0 && (1.0 / inverse - step).abs() < 1e-12 {
                steps as f64 / inverse
            } else {
                steps as f64 * step
            };
            ScalarValue::Float64(Some(x))
        }
        _ => {
            let n = i64::try_from(steps).map_err(|_| overflow())?;
            ScalarValue::Int64(Some(n))
        }
    };
    Ok(value.cast_to(t)?)
}

#[cfg(test)]
mod tests;
