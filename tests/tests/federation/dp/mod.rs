//! Differential-privacy mode: the attack catalogue, its deterministic defences,
//! and the timing and error oracles as distinguishing games.

mod attacks;
mod defences;
mod timing;
