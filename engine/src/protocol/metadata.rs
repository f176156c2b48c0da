//! Schema-metadata keys of a federated result, the one definition the
//! coordinator writes and clients read.

/// Groups withheld by the federation's threshold after merging.
pub const SUPPRESSED: &str = "ihdsi.suppressed_groups";
/// Site-level partial groups withheld by the sites' own thresholds.
pub const SITE_SUPPRESSED: &str = "ihdsi.site_suppressed_groups";
/// The coordinator's query id.
pub const QUERY_ID: &str = "ihdsi.query_id";
/// Comma-separated ids of the sites that answered.
pub const SITES: &str = "ihdsi.sites";
/// Base to which released counts are rounded (1 = exact).
pub const COUNTS_ROUNDED_TO: &str = "ihdsi.counts_rounded_to";
/// `threshold` or `dp`.
pub const PRIVACY_MODE: &str = "ihdsi.privacy_mode";
/// dp: ρ charged for this query (0 when every release was cached).
pub const RHO_CHARGED: &str = "ihdsi.dp.rho_charged";
/// dp: ρ left on the principal's budget after this query.
pub const RHO_REMAINING: &str = "ihdsi.dp.rho_remaining";
/// dp: the principal's total budget.
pub const RHO_TOTAL: &str = "ihdsi.dp.rho_total";
/// dp: releases answered from the cache, free.
pub const CACHED: &str = "ihdsi.dp.cached_releases";
/// dp: JSON, per release: each aggregate's noise standard deviation and
/// the noisy threshold of group selection.
pub const NOISE: &str = "ihdsi.dp.noise";
/// Cells withheld under the rules, as JSON: `[{"release": 0, "column":
/// "n", "cells": 1}]`, one entry per column with any (empty: none). A NULL
/// it does not count is a NULL of the data.
pub const WITHHELD_CELLS: &str = "ihdsi.withheld_cells";
