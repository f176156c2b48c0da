//! What every site adds to a subplan it admitted, next to the analyst's
//! partial aggregates: the patients behind every cell ([`cells`]), the
//! bound on what one patient contributes ([`bounding`]) and the per-patient
//! contributions the p% rule judges ([`dominance`]).
//!
//! The coordinator derives the same layout from the same canonical subplan,
//! so both sides agree on the extra columns without trusting each other;
//! the disclosure layer reads them through [`crate::release`].

pub mod bounding;
pub mod cells;
pub mod dominance;
