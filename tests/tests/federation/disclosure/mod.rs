//! The release rules in threshold mode under attack: thresholds across sites,
//! cells, the p% rule, duplicates across borders, and the privacy flags of the
//! demo.

mod across_sites;
mod attacks;
mod cell_property;
pub(crate) mod cells;
mod demo_flags;
pub(crate) mod dominance;
mod duplicates;
mod magnitude_property;
