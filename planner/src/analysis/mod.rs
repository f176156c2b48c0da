//! Reading a logical plan: the vocabulary every later stage shares.
//!
//! Expression helpers ([`exprs`]), where the patient identifier flows
//! ([`lineage`]), the plan an expression reads ([`scope`]), what kind of aggregate a call is ([`aggregates`]) and the
//! additive terms of an aggregate's argument ([`terms`]). These modules
//! judge nothing and rewrite nothing: admission, the split and the site
//! partials all read plans through them, so they import no other stage.

pub mod aggregates;
pub mod axis;
pub mod carried;
pub mod exprs;
pub mod lineage;
pub mod scope;
pub mod terms;
