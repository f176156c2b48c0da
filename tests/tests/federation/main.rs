//! End-to-end tests of the federation: one test binary (see the workspace
//! build notes), real Flight servers on loopback.

mod attacks;
mod auth;
mod bytes;
mod cell_property;
mod cells;
mod chaos;
mod cohort;
mod demo_flags;
mod differential;
mod disclosure;
mod dominance;
mod dp;
mod dp_defences;
mod duplicates;
mod errors;
mod fuzz;
mod histograms;
mod jdbc;
mod limits;
mod metadata;
mod mixed;
mod postgres;
mod security;
mod stewardship;
mod surface;
mod survival;
mod survival_rules;
mod timing;
