//! What stands in front of a site's data besides admission and threshold:
//! the data-permit check, the opt-out list and the audit trail. They do not
//! depend on how the site executes (DataFusion here; other backends would
//! sit behind the same guards).

use std::path::Path;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;

use crate::audit::{AuditLog, Decision, RefusalRecord, SubplanRecord};
use crate::protocol::SubplanRequest;
use crate::site::SiteAnswer;
use crate::site::error::{Result, SiteError};
use ihdsi_catalog::permit::{PermitRequest, SitePermitPolicy, label};
use ihdsi_catalog::{QueryLimits, SiteConfig, SiteResources, schema};

/// A site's permit policy, audit trail, opt-out list, statement limits
/// and resource bounds.
#[derive(Clone)]
pub struct SiteGuards {
    /// Permits required when set (development sites run without).
    pub permits: Option<SitePermitPolicy>,
    pub audit: Option<Arc<AuditLog>>,
    /// Persons removed before any subplan sees the data.
    pub opt_out: Vec<i64>,
    /// How big a subplan may be before this site plans it.
    pub limits: QueryLimits,
    /// How much memory, rows and time one subplan may take here.
    pub resources: SiteResources,
}

impl Default for SiteGuards {
    fn default() -> Self {
        Self {
            permits: None,
            audit: None,
            opt_out: Vec::new(),
            limits: QueryLimits::for_site(),
            resources: SiteResources::default(),
        }
    }
}

// The opt-out list holds patient identifiers: `{:?}` shows how many, never
// which (a site engine's Debug output can reach a log).
impl std::fmt::Debug for SiteGuards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteGuards")
            .field("permits", &self.permits)
            .field(
                "audit",
                &self.audit.as_ref().map(|a| a.path().to_path_buf()),
            )
            .field("opted_out_persons", &self.opt_out.len())
            .field("limits", &self.limits)
            .field("resources", &self.resources)
            .finish()
    }
}

impl SiteGuards {
    /// The guards `site.toml` asks for.
    pub fn from_config(config: &SiteConfig) -> Result<Self> {
        let audit = match &config.audit {
            Some(a) => Some(Arc::new(AuditLog::open(
                &a.path,
                &format!("site:{}", config.site.id),
            )?)),
            None => None,
        };
        let opt_out = match &config.site.opt_out {
            Some(path) => read_opt_out(path)?,
            None => Vec::new(),
        };
        Ok(Self {
            permits: config.permits.clone(),
            audit,
            opt_out,
            limits: config.limits,
            resources: config.resources,
        })
    }

    /// Refuse unless the request's permit covers this site, this analyst
    /// and every patient table the subplan reads, under the site's policy.
    pub(crate) fn check_permit(
        &self,
        site: &str,
        req: &SubplanRequest,
        plan: &LogicalPlan,
    ) -> Result<()> {
        let Some(policy) = &self.permits else {
            return Ok(());
        };
        let tables = scanned_tables(plan);
        policy.check(
            req.permit.as_deref(),
            PermitRequest {
                site,
                analyst: &req.analyst,
                tables: &tables,
                now: chrono::Utc::now(),
            },
        )?;
        Ok(())
    }

    /// Put one subplan, how it ended and when, on the audit trail.
    pub(crate) async fn record(
        &self,
        req: &SubplanRequest,
        answer: &Result<SiteAnswer>,
        elapsed: std::time::Duration,
    ) -> Result<()> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        let (permit, purpose) = label(req.permit.as_deref());
        let decision = decision(answer);
        let (code, reason) = match answer {
            Ok(_) => (None, None),
            Err(e) if decision == Decision::Refused => (Some(e.code()), Some(e.to_string())),
            Err(e) => (Some(e.code()), None),
        };
        let record = SubplanRecord {
            query_id: req.query_id.clone(),
            analyst: req.analyst.clone(),
            permit,
            purpose,
            release: req.release,
            sql: req.sql.clone(),
            decision,
            code,
            reason,
            released_groups: answer.as_ref().ok().map(|a| a.batch.num_rows() as u64),
            suppressed_groups: answer.as_ref().ok().map(|a| a.suppressed),
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        };
        Ok(log.append("subplan", &record).await?)
    }
}

/// How a subplan ended, as the site's log and audit trail say it.
pub(crate) fn decision(answer: &Result<SiteAnswer>) -> Decision {
    match answer {
        Ok(_) => Decision::Answered,
        Err(SiteError::Plan(_) | SiteError::Permit(_)) => Decision::Refused,
        Err(SiteError::Cancelled) => Decision::Cancelled,
        Err(SiteError::TimedOut { .. }) => Decision::TimedOut,
        Err(_) => Decision::Failed,
    }
}

impl SiteGuards {
    /// Put a request refused before it named a subplan on the audit trail.
    pub(crate) async fn record_refusal(&self, code: &str, reason: &str) -> Result<()> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        let record = RefusalRecord {
            code: code.to_string(),
            reason: reason.to_string(),
        };
        Ok(log.append("refusal", &record).await?)
    }
}

/// The patient tables a plan reads, subqueries included.
fn scanned_tables(plan: &LogicalPlan) -> Vec<String> {
    let mut tables = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let name = scan.table_name.table().to_string();
            if schema::is_patient_table(&name) && !tables.contains(&name) {
                tables.push(name);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    tables.sort();
    tables
}

/// Read an opt-out list: one person id per line; blank lines and `#`
/// comments are ignored. A line that is not an id is an error naming the
/// line number (never its content, which may be an identifier).
fn read_opt_out(path: &Path) -> Result<Vec<i64>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        SiteError::Data(format!("cannot read opt-out list {}: {e}", path.display()))
    })?;
    let mut ids = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let id = line.parse::<i64>().map_err(|_| {
            SiteError::Data(format!(
                "opt-out list {} line {}: not a person id",
                path.display(),
                i + 1
            ))
        })?;
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_counts_opted_out_persons_without_naming_them() {
        let guards = SiteGuards {
            opt_out: vec![987_654_321, 123_456_789],
            ..SiteGuards::default()
        };
        let text = format!("{guards:?}");
        assert!(text.contains("opted_out_persons: 2"), "{text}");
        assert!(
            !text.contains("987654321") && !text.contains("123456789"),
            "{text}"
        );
    }
}
