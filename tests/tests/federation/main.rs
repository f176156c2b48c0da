//! End-to-end tests of the federation: one test binary (see the workspace
//! build notes), real Flight servers on loopback.

// Tests race queries against faults on tasks they await or abort themselves.
#![allow(clippy::disallowed_methods)]

// One folder per stage of the flow: the Flight SQL surface, the answers
// (plan, split and merge against the oracle), the sites, the release rules
// (threshold and dp), and the binned statistics.
mod answers;
mod binned;
mod disclosure;
mod dp;
mod sites;
mod surface;
