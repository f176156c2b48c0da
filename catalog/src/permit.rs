//! EHDS data permits: signed by a health data access body, checked by every
//! site before it runs anything.
//!
//! Under the European Health Data Space (Art. 67–69), secondary use needs a
//! permit naming a holder, a purpose (Art. 53), the datasets in scope and a
//! validity window. The coordinator cannot vouch for any of that: a site in
//! Seoul answers to PIPA, not to the coordinator's operator. So a permit is
//! an ed25519-signed token that travels with every subplan, and each site
//! verifies it against the access-body keys *it* trusts and narrows it with
//! its own policy ([`SitePermitPolicy`]). A site policy can only remove
//! rights a permit grants, never add any.
//!
//! The token is `ihdsi-permit.v1.<payload>.<signature>`, both parts
//! base64url without padding; the signature covers the payload bytes exactly
//! as sent (no re-serialisation before verifying).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};

const PREFIX: &str = "ihdsi-permit.v1.";

/// The purposes of secondary use the EHDS permits (Art. 53(1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// (a) public interest in public and occupational health.
    PublicHealth,
    /// (b) policy-making and regulatory activities.
    PolicyMaking,
    /// (c) official statistics.
    OfficialStatistics,
    /// (d) education or teaching in health or care.
    Education,
    /// (e) scientific research related to health or care, incl. innovation.
    ScientificResearch,
    /// (f) improvement of the delivery of care and treatment.
    CareImprovement,
}

impl Purpose {
    /// Every purpose, in the regulation's order.
    pub const ALL: [Purpose; 6] = [
        Purpose::PublicHealth,
        Purpose::PolicyMaking,
        Purpose::OfficialStatistics,
        Purpose::Education,
        Purpose::ScientificResearch,
        Purpose::CareImprovement,
    ];

    /// The snake_case name used in permits and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::PublicHealth => "public_health",
            Purpose::PolicyMaking => "policy_making",
            Purpose::OfficialStatistics => "official_statistics",
            Purpose::Education => "education",
            Purpose::ScientificResearch => "scientific_research",
            Purpose::CareImprovement => "care_improvement",
        }
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Purpose {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self> {
        Purpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Purpose::ALL.iter().map(|p| p.as_str()).collect();
                CatalogError::ConfigInvalid(format!(
                    "unknown purpose '{s}': expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// The content of a data permit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permit {
    /// The access body's reference, e.g. `LU-HDAB-2026-0042`.
    pub id: String,
    /// The analyst the permit is issued to (their login name).
    pub holder: String,
    /// Why the data may be used.
    pub purpose: Purpose,
    /// Whether the holder uses the data commercially (sites may narrow).
    #[serde(default)]
    pub commercial: bool,
    /// Patient tables in scope.
    pub tables: Vec<String>,
    /// Sites in scope.
    pub sites: Vec<String>,
    /// Privacy mode the permit was granted under (`threshold` or `dp`).
    pub privacy_mode: String,
    /// zCDP budget ρ for DP mode, if any.
    #[serde(default)]
    pub budget_rho: Option<f64>,
    /// Start of validity (RFC 3339).
    pub valid_from: String,
    /// End of validity (RFC 3339).
    pub valid_until: String,
    /// Name of the access-body key that signs it.
    pub issuer: String,
}

impl Permit {
    fn window(&self) -> std::result::Result<(DateTime<Utc>, DateTime<Utc>), PermitRefusal> {
        let parse = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| PermitRefusal::Malformed("validity window is not RFC 3339"))
        };
        Ok((parse(&self.valid_from)?, parse(&self.valid_until)?))
    }

    /// Whether `table` is in scope.
    pub fn covers_table(&self, table: &str) -> bool {
        self.tables.iter().any(|t| t.eq_ignore_ascii_case(table))
    }
}

/// Why a site (or the coordinator) refuses a permit. Each has a fixed code
/// for the audit trail; messages never quote anything but permit fields.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PermitRefusal {
    #[error("no data permit accompanies the subplan")]
    Missing,
    #[error("the data permit is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "the data permit's signature does not verify against any access-body key this site trusts"
    )]
    BadSignature,
    #[error("data permit {id} is not valid before {from}")]
    NotYetValid { id: String, from: String },
    #[error("data permit {id} expired at {until}")]
    Expired { id: String, until: String },
    #[error("data permit {id} is held by {holder}, not by {analyst}")]
    WrongHolder {
        id: String,
        holder: String,
        analyst: String,
    },
    #[error("this site does not allow the purpose {purpose} (data permit {id})")]
    PurposeNotAllowed { id: String, purpose: Purpose },
    #[error("data permit {id} does not cover site {site}")]
    SiteOutside { id: String, site: String },
    #[error("table {table} is outside data permit {id}")]
    TableOutside { id: String, table: String },
    #[error("this site's policy does not allow table {table} for {what} (data permit {id})")]
    TableNarrowed {
        id: String,
        table: String,
        what: String,
    },
}

impl PermitRefusal {
    /// A stable code for audit records and clients.
    pub fn code(&self) -> &'static str {
        match self {
            PermitRefusal::Missing => "permit.missing",
            PermitRefusal::Malformed(_) => "permit.malformed",
            PermitRefusal::BadSignature => "permit.signature",
            PermitRefusal::NotYetValid { .. } => "permit.not_yet_valid",
            PermitRefusal::Expired { .. } => "permit.expired",
            PermitRefusal::WrongHolder { .. } => "permit.holder",
            PermitRefusal::PurposeNotAllowed { .. } => "permit.purpose",
            PermitRefusal::SiteOutside { .. } => "permit.site",
            PermitRefusal::TableOutside { .. } => "permit.table",
            PermitRefusal::TableNarrowed { .. } => "permit.site_policy",
        }
    }
}

/// An access body's public key, as a site or coordinator trusts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessBodyKey {
    /// The key's name, matched against [`Permit::issuer`].
    pub name: String,
    /// The raw 32-byte ed25519 public key, base64url.
    pub public_key: String,
}

/// A site's narrowing of permits: `[[permits.deny]]` in `site.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyRule {
    /// Tables the rule withholds.
    pub tables: Vec<String>,
    /// Applies to these purposes (empty: every purpose).
    #[serde(default)]
    pub purposes: Vec<Purpose>,
    /// Applies only to commercial holders.
    #[serde(default)]
    pub commercial_only: bool,
}

/// `[permits]` in `site.toml`: which access bodies the site trusts and what
/// it allows on top of any permit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitePermitPolicy {
    /// Access-body keys whose signatures this site accepts.
    pub trusted_keys: Vec<AccessBodyKey>,
    /// Purposes this site serves (empty: every EHDS purpose).
    #[serde(default)]
    pub allowed_purposes: Vec<Purpose>,
    /// Narrowing rules.
    #[serde(default)]
    pub deny: Vec<DenyRule>,
}

/// What a permit check needs to know about the subplan.
#[derive(Debug, Clone, Copy)]
pub struct PermitRequest<'a> {
    pub site: &'a str,
    pub analyst: &'a str,
    /// Patient tables the subplan reads.
    pub tables: &'a [String],
    pub now: DateTime<Utc>,
}

impl SitePermitPolicy {
    /// Check the config (keys decode, rules name real tables).
    pub fn validate(&self) -> Result<()> {
        if self.trusted_keys.is_empty() {
            return Err(CatalogError::ConfigInvalid(
                "[permits] needs at least one trusted_keys entry".into(),
            ));
        }
        for k in &self.trusted_keys {
            decode_public_key(&k.public_key).map_err(|m| {
                CatalogError::ConfigInvalid(format!("permits key '{}': {m}", k.name))
            })?;
        }
        for rule in &self.deny {
            for t in &rule.tables {
                if !crate::schema::is_patient_table(t) {
                    return Err(CatalogError::UnknownTable(t.clone()));
                }
            }
        }
        Ok(())
    }

    /// The four checks a site makes before running a subplan: signature,
    /// validity window, holder, and purpose, sites and tables against the
    /// permit *and* this site's own policy.
    pub fn check(
        &self,
        token: Option<&str>,
        req: PermitRequest<'_>,
    ) -> std::result::Result<Permit, PermitRefusal> {
        let token = token.ok_or(PermitRefusal::Missing)?;
        let permit = verify(token, &self.trusted_keys)?;
        let (from, until) = permit.window()?;
        if req.now < from {
            return Err(PermitRefusal::NotYetValid {
                id: permit.id,
                from: permit.valid_from,
            });
        }
        if req.now >= until {
            return Err(PermitRefusal::Expired {
                id: permit.id,
                until: permit.valid_until,
            });
        }
        if permit.holder != req.analyst {
            return Err(PermitRefusal::WrongHolder {
                id: permit.id,
                holder: permit.holder,
                analyst: req.analyst.to_string(),
            });
        }
        if !self.allowed_purposes.is_empty() && !self.allowed_purposes.contains(&permit.purpose) {
            return Err(PermitRefusal::PurposeNotAllowed {
                id: permit.id,
                purpose: permit.purpose,
            });
        }
        if !permit.sites.iter().any(|s| s == req.site) {
            return Err(PermitRefusal::SiteOutside {
                id: permit.id,
                site: req.site.to_string(),
            });
        }
        for table in req.tables {
            if !permit.covers_table(table) {
                return Err(PermitRefusal::TableOutside {
                    id: permit.id,
                    table: table.clone(),
                });
            }
            if let Some(what) = self.narrowed(&permit, table) {
                return Err(PermitRefusal::TableNarrowed {
                    id: permit.id,
                    table: table.clone(),
                    what,
                });
            }
        }
        Ok(permit)
    }

    fn narrowed(&self, permit: &Permit, table: &str) -> Option<String> {
        self.deny.iter().find_map(|rule| {
            let table_hit = rule.tables.iter().any(|t| t.eq_ignore_ascii_case(table));
            let purpose_hit = rule.purposes.is_empty() || rule.purposes.contains(&permit.purpose);
            let holder_hit = !rule.commercial_only || permit.commercial;
            (table_hit && purpose_hit && holder_hit).then(|| {
                let kind = if permit.commercial { "commercial " } else { "" };
                format!("{kind}{} use", permit.purpose)
            })
        })
    }
}

fn decode_public_key(b64: &str) -> std::result::Result<Vec<u8>, &'static str> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .map_err(|_| "public key is not base64url")?;
    if bytes.len() != 32 {
        return Err("an ed25519 public key has 32 bytes");
    }
    Ok(bytes)
}

/// Split a token into its payload bytes, signature and parsed permit,
/// without checking the signature (the coordinator uses this to pick a
/// permit; every site verifies).
pub fn decode(token: &str) -> std::result::Result<(Vec<u8>, Vec<u8>, Permit), PermitRefusal> {
    let rest = token
        .trim()
        .strip_prefix(PREFIX)
        .ok_or(PermitRefusal::Malformed("not an ihdsi-permit.v1 token"))?;
    let (payload, signature) = rest
        .split_once('.')
        .ok_or(PermitRefusal::Malformed("the signature part is missing"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| PermitRefusal::Malformed("payload is not base64url"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| PermitRefusal::Malformed("signature is not base64url"))?;
    let permit: Permit = serde_json::from_slice(&payload)
        .map_err(|_| PermitRefusal::Malformed("payload is not a permit document"))?;
    Ok((payload, signature, permit))
}

/// A permit's id and purpose as logs and audit trails name it: read, not
/// verified (sites verify); `(malformed)` for a token that is not a permit.
pub fn label(token: Option<&str>) -> (Option<String>, Option<String>) {
    match token.map(decode) {
        Some(Ok((_, _, p))) => (Some(p.id), Some(p.purpose.to_string())),
        Some(Err(_)) => (Some("(malformed)".into()), None),
        None => (None, None),
    }
}

/// Verify a token against `keys` (by the issuer's key name) and return the
/// permit it holds.
pub fn verify(token: &str, keys: &[AccessBodyKey]) -> std::result::Result<Permit, PermitRefusal> {
    let (payload, signature, permit) = decode(token)?;
    let key = keys
        .iter()
        .find(|k| k.name == permit.issuer)
        .ok_or(PermitRefusal::BadSignature)?;
    let public = decode_public_key(&key.public_key).map_err(|_| PermitRefusal::BadSignature)?;
    UnparsedPublicKey::new(&ED25519, public)
        .verify(&payload, &signature)
        .map_err(|_| PermitRefusal::BadSignature)?;
    Ok(permit)
}

/// A new access-body signing key: (PKCS#8 document, public key base64url).
pub fn generate_key() -> Result<(Vec<u8>, String)> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| CatalogError::ConfigInvalid("cannot generate an ed25519 key".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| CatalogError::ConfigInvalid("cannot read the generated key".into()))?;
    let public = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    Ok((pkcs8.as_ref().to_vec(), public))
}

/// The public key (base64url) of a PKCS#8 signing key.
pub fn public_key_of(pkcs8: &[u8]) -> Result<String> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| {
        CatalogError::ConfigInvalid("the signing key is not an ed25519 PKCS#8 document".into())
    })?;
    Ok(URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()))
}

/// Sign `permit` with the access body's PKCS#8 key into a token.
pub fn issue(permit: &Permit, pkcs8: &[u8]) -> Result<String> {
    permit
        .window()
        .map_err(|e| CatalogError::ConfigInvalid(e.to_string()))?;
    if let Some(rho) = permit.budget_rho
        && !(rho.is_finite() && rho > 0.0)
    {
        return Err(CatalogError::ConfigInvalid(
            "a permit's budget ρ must be a positive number".into(),
        ));
    }
    for t in &permit.tables {
        if !crate::schema::is_patient_table(t) {
            return Err(CatalogError::UnknownTable(t.clone()));
        }
    }
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| {
        CatalogError::ConfigInvalid("the signing key is not an ed25519 PKCS#8 document".into())
    })?;
    let payload = serde_json::to_vec(permit)
        .map_err(|e| CatalogError::ConfigInvalid(format!("cannot encode the permit: {e}")))?;
    let signature = pair.sign(&payload);
    Ok(format!(
        "{PREFIX}{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

#[cfg(test)]
mod tests;
