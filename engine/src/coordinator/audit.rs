//! The coordinator's audit records: each statement as it arrives (before
//! it is planned), its plan or refusal before any site is contacted, its
//! outcome before the answer is returned, refusals at the front door, and
//! differencing advisories.

use super::{Coordinator, QueryContext, QueryOutcome};
use crate::audit::{
    AdvisoryRecord, Decision, QueryRecord, ReceivedRecord, ResultRecord, SubplanSql, sha256_hex,
};
use crate::error::{EngineError, Result};
use ihdsi_catalog::permit::label;

impl Coordinator {
    /// Put the statement on record as it arrived, before anything parses
    /// it.
    pub(super) async fn audit_received(&self, cx: &QueryContext, sql: &str) -> Result<()> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        let (permit, purpose) = label(cx.permit.as_deref());
        let record = ReceivedRecord {
            query_id: cx.query_id.clone(),
            analyst: cx.analyst.clone(),
            permit,
            purpose,
            sql: self.audited_sql(sql),
            sql_bytes: sql.len(),
            sql_sha256: sha256_hex(sql.as_bytes()),
            decision: Decision::Received,
        };
        Ok(log.append("received", &record).await?)
    }

    /// `sql` as the trail keeps it: whole up to `max_statement_bytes`
    /// (longer statements are refused unplanned), cut there otherwise.
    fn audited_sql(&self, sql: &str) -> String {
        let mut end = sql.len().min(self.limits.max_statement_bytes);
        while !sql.is_char_boundary(end) {
            end -= 1;
        }
        sql[..end].to_string()
    }

    pub(super) async fn audit_query(
        &self,
        cx: &QueryContext,
        sql: &str,
        subplans: Vec<SubplanSql>,
        decision: std::result::Result<(), &EngineError>,
    ) -> Result<()> {
        let refusal = decision.err().map(|e| (e.code(), e.to_string()));
        self.audit_query_record(cx, sql, subplans, refusal).await
    }

    /// Put a query refused before planning (by the front door, e.g. an
    /// unknown permit selection) on the audit trail.
    pub async fn record_refusal(
        &self,
        cx: &QueryContext,
        sql: &str,
        code: &str,
        reason: &str,
    ) -> Result<()> {
        let refusal = Some((code.to_string(), reason.to_string()));
        self.audit_query_record(cx, sql, Vec::new(), refusal).await
    }

    async fn audit_query_record(
        &self,
        cx: &QueryContext,
        sql: &str,
        subplans: Vec<SubplanSql>,
        refusal: Option<(String, String)>,
    ) -> Result<()> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        let (permit, purpose) = label(cx.permit.as_deref());
        let (code, reason) = refusal.map_or((None, None), |(c, r)| (Some(c), Some(r)));
        let record = QueryRecord {
            query_id: cx.query_id.clone(),
            analyst: cx.analyst.clone(),
            permit,
            purpose,
            sql: self.audited_sql(sql),
            subplans,
            decision: if code.is_none() {
                Decision::Admitted
            } else {
                Decision::Refused
            },
            code,
            reason,
        };
        Ok(log.append("query", &record).await?)
    }

    /// Put each earlier query the mechanism's differencing detector paired
    /// with this one on the audit trail, as an advisory.
    pub(super) async fn audit_differencing(
        &self,
        cx: &QueryContext,
        flagged: Vec<String>,
    ) -> Result<()> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        for earlier in flagged {
            tracing::warn!(
                query_id = cx.query_id,
                earlier_query_id = earlier,
                analyst = cx.analyst,
                "possible differencing pair"
            );
            let record = AdvisoryRecord {
                code: "differencing.suspected".into(),
                analyst: cx.analyst.clone(),
                query_id: cx.query_id.clone(),
                earlier_query_id: earlier,
                threshold: self.policy.min_group_size,
            };
            log.append("advisory", &record).await?;
        }
        Ok(())
    }

    pub(super) async fn audit_result(
        &self,
        cx: &QueryContext,
        outcome: &Result<QueryOutcome>,
    ) -> Result<()> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        let answered = outcome.as_ref().ok();
        let record = ResultRecord {
            query_id: cx.query_id.clone(),
            analyst: cx.analyst.clone(),
            permit: label(cx.permit.as_deref()).0,
            decision: if answered.is_some() {
                Decision::Answered
            } else {
                Decision::Failed
            },
            code: outcome.as_ref().err().map(EngineError::code),
            released_rows: answered.map(|o| o.batches.iter().map(|b| b.num_rows() as u64).sum()),
            suppressed_groups: answered.map(|o| o.suppressed_groups),
        };
        Ok(log.append("result", &record).await?)
    }
}
