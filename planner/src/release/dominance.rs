//! The cells the p% dominance rule judges, and the width of what a site
//! sends for each: the part of the release contract the site's dominance
//! summary ([`crate::partials::dominance`]) and the disclosure layer share.

/// One cell the p% rule judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DominanceEntry {
    /// The partial column (`p*` index) it belongs to.
    pub partial: usize,
    /// A variance's spread (squared deviations from the mean), rather than
    /// one data term of a sum.
    pub spread: bool,
}

/// Per-patient columns of one entry in the contributions plan: a term's
/// total, or (spread) the patient's Σx, Σx² and count.
pub fn contribution_width(entry: &DominanceEntry) -> usize {
    if entry.spread { 3 } else { 1 }
}
