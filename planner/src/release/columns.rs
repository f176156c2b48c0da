//! The names of a site answer's columns, in their order: group keys
//! `k*`, partials `p*`, the distinct-patient count, cell counts, and the
//! dominance summaries. Every part of the planner that builds or reads a
//! site's answer names its columns from here, below all of them.

/// Name of the hidden distinct-patient count a site returns last.
pub const PATIENTS_COLUMN: &str = "ihdsi_patients";

/// Name of the i-th group key column of a site's answer.
pub fn key_column(i: usize) -> String {
    format!("k{i}")
}

/// Name of the j-th partial aggregate column of a site's answer.
pub fn partial_column(j: usize) -> String {
    format!("p{j}")
}

/// Name of the n-th cell count column of a site's answer (see
/// `crate::partials::cells`).
pub fn cell_column(n: usize) -> String {
    format!("ihdsi_c{n}")
}

/// Names of the four hidden columns a site sends for dominance entry `n`
/// (see `crate::partials::dominance`): its two largest patient contributions
/// (absolute values, or squared deviations from the site's mean), their
/// total, and (spread entries) the most rows one patient has in the cell.
pub fn dominance_columns(n: usize) -> [String; 4] {
    [
        format!("ihdsi_d{n}_top1"),
        format!("ihdsi_d{n}_top2"),
        format!("ihdsi_d{n}_total"),
        format!("ihdsi_d{n}_rows"),
    ]
}

/// Columns per dominance entry in a site's answer.
pub const DOMINANCE_WIDTH: usize = 4;
