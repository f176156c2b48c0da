//! Exact samplers for the discrete Laplace and discrete Gaussian
//! distributions (Canonne, Kamath and Steinke, "The Discrete Gaussian for
//! Differential Privacy", NeurIPS 2020, Algorithms 1–3).
//!
//! Why not `x + f64 noise`: floating-point samplers leak through the
//! low-order bits of their output (Mironov 2012), and rounding a continuous
//! sample changes the distribution the privacy proof is about. These
//! samplers use only integer arithmetic on exact rationals and uniform
//! random integers from the operating system, so the output follows the
//! stated distribution exactly. σ² is a rational `num / den`.

use ring::rand::{SecureRandom, SystemRandom};

/// Why a sample could not be drawn. `#[non_exhaustive]`: code outside
/// this crate that matches on it keeps a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SamplerError {
    #[error("the operating system's random source failed")]
    Random,
    #[error("noise parameters out of range: {0}")]
    Range(&'static str),
}

type Result<T> = std::result::Result<T, SamplerError>;

/// A source of uniform random integers.
pub trait Uniform {
    /// A uniform integer in `[0, bound)`; `bound > 0`.
    fn below(&mut self, bound: u128) -> Result<u128>;
}

/// The operating system's CSPRNG (through ring), with rejection sampling so
/// that every value below the bound is exactly equally likely.
#[derive(Debug)]
pub struct OsUniform {
    rng: SystemRandom,
}

impl Default for OsUniform {
    fn default() -> Self {
        Self {
            rng: SystemRandom::new(),
        }
    }
}

impl Uniform for OsUniform {
    fn below(&mut self, bound: u128) -> Result<u128> {
        if bound == 0 {
            return Err(SamplerError::Range("empty range"));
        }
        // Reject draws from the top partial block of 2^128.
        let limit = u128::MAX - (u128::MAX % bound + 1) % bound;
        loop {
            let mut bytes = [0u8; 16];
            self.rng
                .fill(&mut bytes)
                .map_err(|_| SamplerError::Random)?;
            let x = u128::from_le_bytes(bytes);
            if x <= limit {
                return Ok(x % bound);
            }
        }
    }
}

/// Bernoulli(n / d), `0 ≤ n ≤ d`, `d > 0`.
fn bernoulli<U: Uniform>(u: &mut U, n: u128, d: u128) -> Result<bool> {
    Ok(u.below(d)? < n)
}

/// Bernoulli(exp(−n/d)) for `n/d ∈ [0, 1]` (CKS Algorithm 1, first case).
fn bernoulli_exp_le1<U: Uniform>(u: &mut U, n: u128, d: u128) -> Result<bool> {
    let mut k: u128 = 1;
    loop {
        let denominator = d
            .checked_mul(k)
            .ok_or(SamplerError::Range("exponent denominator overflows"))?;
        if !bernoulli(u, n, denominator)? {
            return Ok(k % 2 == 1);
        }
        k += 1;
    }
}

/// Bernoulli(exp(−n/d)) for any `n/d ≥ 0` (CKS Algorithm 1).
pub fn bernoulli_exp<U: Uniform>(u: &mut U, n: u128, d: u128) -> Result<bool> {
    if d == 0 {
        return Err(SamplerError::Range("zero denominator"));
    }
    let whole = n / d;
    for _ in 0..whole {
        if !bernoulli_exp_le1(u, 1, 1)? {
            return Ok(false);
        }
    }
    bernoulli_exp_le1(u, n % d, d)
}

/// Discrete Laplace with scale `t ≥ 1`: P(x) ∝ exp(−|x|/t) (CKS Algorithm 2).
pub fn discrete_laplace<U: Uniform>(u: &mut U, t: u128) -> Result<i128> {
    if t == 0 {
        return Err(SamplerError::Range("the Laplace scale must be at least 1"));
    }
    loop {
        let uu = u.below(t)?;
        if !bernoulli_exp(u, uu, t)? {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp(u, 1, 1)? {
            v += 1;
        }
        let x = uu + t * v;
        let negative = bernoulli(u, 1, 2)?;
        if negative && x == 0 {
            continue;
        }
        let x = i128::try_from(x).map_err(|_| SamplerError::Range("sample overflows"))?;
        return Ok(if negative { -x } else { x });
    }
}

/// Discrete Gaussian with variance parameter σ² = `num / den`:
/// P(x) ∝ exp(−x² / 2σ²) (CKS Algorithm 3).
pub fn discrete_gaussian<U: Uniform>(u: &mut U, num: u128, den: u128) -> Result<i128> {
    if num == 0 || den == 0 {
        return Err(SamplerError::Range("σ² must be positive"));
    }
    // t = ⌊σ⌋ + 1 (⌊√⌊x⌋⌋ = ⌊√x⌋), exact in integers.
    let t = isqrt(num / den) + 1;
    loop {
        let signed = discrete_laplace(u, t)?;
        let y = signed.unsigned_abs();
        // Accept with probability exp(−(|y| − σ²/t)² / 2σ²)
        //   = exp(−(|y|·t·den − num)² / (2·num·den·t²)).
        let a = y
            .checked_mul(t)
            .and_then(|x| x.checked_mul(den))
            .ok_or(SamplerError::Range("sample overflows"))?;
        let diff = a.abs_diff(num);
        let n = diff
            .checked_mul(diff)
            .ok_or(SamplerError::Range("sample overflows"))?;
        let d = num
            .checked_mul(den)
            .and_then(|x| x.checked_mul(2 * t * t))
            .ok_or(SamplerError::Range("σ² is too large"))?;
        if bernoulli_exp(u, n, d)? {
            return Ok(signed);
        }
    }
}

/// ⌊√n⌋.
fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    let mut x = (n as f64).sqrt() as u128;
    while x * x > n {
        x -= 1;
    }
    while (x + 1) * (x + 1) <= n {
        x += 1;
    }
    x
}

#[cfg(test)]
mod tests;
