//! Per-bin counts of one stratum, as merged across sites.
//!
//! A bin is a time of the grid (its end, in the grid's unit) with the
//! events and censorings that fall in it. Patients at risk at a bin are
//! those whose follow-up reaches it: everyone who has not had an event or
//! been censored in an earlier bin. The grid has no late entry, so the
//! numbers at risk follow from the counts alone.

use crate::error::{Result, StatisticsError};

/// The counts of one bin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bin {
    /// The bin's time on the grid.
    pub time: f64,
    /// Events in the bin.
    pub events: u64,
    /// Patients censored in the bin (still at risk at its time).
    pub censored: u64,
}

/// The bins of one stratum, in time order, with the numbers at risk.
#[derive(Debug, Clone, PartialEq)]
pub struct Stratum {
    bins: Vec<Bin>,
    at_risk: Vec<u64>,
}

impl Stratum {
    /// Check the grid and derive the numbers at risk. Bins may hold no
    /// events and no censorings; they then only carry the grid.
    pub fn new(bins: Vec<Bin>) -> Result<Self> {
        let ordered = bins.iter().all(|b| b.time.is_finite())
            && bins.windows(2).all(|w| w[0].time < w[1].time);
        if !ordered {
            return Err(StatisticsError::UnorderedGrid);
        }
        let mut at_risk = vec![0; bins.len()];
        let mut remaining = 0u64;
        for (i, b) in bins.iter().enumerate().rev() {
            remaining += b.events + b.censored;
            at_risk[i] = remaining;
        }
        Ok(Self { bins, at_risk })
    }

    /// The bins, in time order.
    pub fn bins(&self) -> &[Bin] {
        &self.bins
    }

    /// Patients at risk at each bin.
    pub fn at_risk(&self) -> &[u64] {
        &self.at_risk
    }

    /// Patients in the stratum.
    pub fn patients(&self) -> u64 {
        self.at_risk.first().copied().unwrap_or(0)
    }

    /// At risk and events at `time`: zero at risk past the last bin, all
    /// patients before the first.
    pub(crate) fn at(&self, time: f64) -> (u64, u64) {
        match self.bins.iter().position(|b| b.time >= time) {
            Some(i) if self.bins[i].time == time => (self.at_risk[i], self.bins[i].events),
            Some(i) => (self.at_risk[i], 0),
            None => (0, 0),
        }
    }
}
