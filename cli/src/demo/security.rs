//! The demo federation's security: mutual TLS between coordinator and
//! sites, an access body that issues every demo principal a permit, sites
//! that require one, and audit trails, all in the demo's run folder.
//! Keys, certificates and permits are made anew at every start; the audit
//! trails (and the dp ledger beside them) are kept. Two demos cannot share
//! a run folder: the second finds the audit trails in use and says so.
//! What it makes is the federation builder's [`Security`].

use std::path::Path;

use chrono::{Duration, SecondsFormat, Utc};

use crate::error::{CliError, Result};
use crate::federation::Security;
use ihdsi_catalog::permit::{AccessBodyKey, Permit, Purpose, SitePermitPolicy, issue};
use ihdsi_catalog::schema;
use ihdsi_flight_server::permits::{read_signing_key, write_signing_key};
use ihdsi_flight_server::tls;

/// The demo's access body key name.
pub const DEMO_ACCESS_BODY: &str = "demo-hdab";

/// Make certificates, an access-body key and a one-year permit for each
/// of `principals` over every patient table at every site, all in `dir`;
/// audit trails go to `dir/audit`.
pub fn prepare(dir: &Path, sites: &[String], principals: &[String]) -> Result<Security> {
    let certs = dir.join("certs");
    let set = tls::init(&certs, sites, &[])?;
    let key_path = dir.join("access-body.key");
    let public = write_signing_key(&key_path)?;
    let key = read_signing_key(&key_path)?;
    let permits_dir = dir.join("permits");
    std::fs::create_dir_all(&permits_dir)
        .map_err(|e| CliError::Permit(format!("cannot create {}: {e}", permits_dir.display())))?;
    for holder in principals {
        let token = issue(&year_permit(holder, sites), &key)?;
        let file = permits_dir.join(format!("{holder}.permit"));
        std::fs::write(&file, format!("{token}\n"))
            .map_err(|e| CliError::Permit(format!("cannot write {}: {e}", file.display())))?;
    }
    Ok(Security {
        certs,
        coordinator_fingerprint: set.coordinator_fingerprint,
        site_permits: SitePermitPolicy {
            trusted_keys: vec![AccessBodyKey {
                name: DEMO_ACCESS_BODY.into(),
                public_key: public,
            }],
            allowed_purposes: Vec::new(),
            deny: Vec::new(),
        },
        permits_dir,
        audit_dir: dir.join("audit"),
        analyst_tls: false,
    })
}

/// The id of the permit the demo's access body issues to `holder`.
pub fn permit_id(holder: &str) -> String {
    format!("DEMO-{holder}")
}

/// A one-year research permit for `holder` over every patient table.
fn year_permit(holder: &str, sites: &[String]) -> Permit {
    let now = Utc::now();
    Permit {
        id: permit_id(holder),
        holder: holder.to_string(),
        purpose: Purpose::ScientificResearch,
        commercial: false,
        tables: schema::patient_tables()
            .map(|t| t.name.to_string())
            .collect(),
        sites: sites.to_vec(),
        privacy_mode: "threshold".into(),
        budget_rho: None,
        valid_from: (now - Duration::minutes(5)).to_rfc3339_opts(SecondsFormat::Secs, true),
        valid_until: (now + Duration::days(365)).to_rfc3339_opts(SecondsFormat::Secs, true),
        issuer: DEMO_ACCESS_BODY.into(),
    }
}
