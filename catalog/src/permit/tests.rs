use super::*;

fn permit() -> Permit {
    Permit {
        id: "LU-HDAB-2026-0042".into(),
        holder: "dr.kim".into(),
        purpose: Purpose::ScientificResearch,
        commercial: false,
        tables: vec!["person".into(), "condition_occurrence".into()],
        sites: vec!["lu".into(), "kr".into()],
        privacy_mode: "threshold".into(),
        budget_rho: None,
        valid_from: "2026-01-01T00:00:00Z".into(),
        valid_until: "2027-01-01T00:00:00Z".into(),
        issuer: "hdab-lu".into(),
    }
}

fn policy(public: &str) -> SitePermitPolicy {
    SitePermitPolicy {
        trusted_keys: vec![AccessBodyKey {
            name: "hdab-lu".into(),
            public_key: public.into(),
        }],
        allowed_purposes: vec![],
        deny: vec![],
    }
}

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t)
        .expect("time")
        .with_timezone(&Utc)
}

fn request<'a>(tables: &'a [String], now: &str) -> PermitRequest<'a> {
    PermitRequest {
        site: "lu",
        analyst: "dr.kim",
        tables,
        now: at(now),
    }
}

#[test]
fn a_signed_permit_passes_and_each_check_refuses_with_its_code() {
    let (key, public) = generate_key().expect("key");
    let token = issue(&permit(), &key).expect("issue");
    let site = policy(&public);
    let tables = vec!["person".to_string()];
    let ok = site
        .check(Some(&token), request(&tables, "2026-06-01T00:00:00Z"))
        .expect("valid");
    assert_eq!(ok.id, "LU-HDAB-2026-0042");

    let code = |r: std::result::Result<Permit, PermitRefusal>| r.expect_err("refused").code();
    assert_eq!(
        code(site.check(None, request(&tables, "2026-06-01T00:00:00Z"))),
        "permit.missing"
    );
    assert_eq!(
        code(site.check(Some(&token), request(&tables, "2027-01-01T00:00:00Z"))),
        "permit.expired"
    );
    assert_eq!(
        code(site.check(Some(&token), request(&tables, "2025-12-31T23:59:59Z"))),
        "permit.not_yet_valid"
    );
    let mut other = request(&tables, "2026-06-01T00:00:00Z");
    other.analyst = "mallory";
    assert_eq!(code(site.check(Some(&token), other)), "permit.holder");
    let mut us = request(&tables, "2026-06-01T00:00:00Z");
    us.site = "us";
    assert_eq!(code(site.check(Some(&token), us)), "permit.site");
    let genomic = vec!["variant_occurrence".to_string()];
    assert_eq!(
        code(site.check(Some(&token), request(&genomic, "2026-06-01T00:00:00Z"))),
        "permit.table"
    );
}

#[test]
fn forged_and_tampered_permits_fail_the_signature() {
    let (key, public) = generate_key().expect("key");
    let (forger, _) = generate_key().expect("forger key");
    let site = policy(&public);
    let tables = vec!["person".to_string()];
    let now = "2026-06-01T00:00:00Z";
    let forged = issue(&permit(), &forger).expect("issue");
    let err = site
        .check(Some(&forged), request(&tables, now))
        .expect_err("forged");
    assert_eq!(err.code(), "permit.signature");

    // Widen the validity of a genuine permit by editing its payload.
    let token = issue(&permit(), &key).expect("issue");
    let (payload, signature, _) = decode(&token).expect("decode");
    let edited = String::from_utf8(payload)
        .expect("utf8")
        .replace("2027-01-01", "2099-01-01");
    let tampered = format!(
        "{PREFIX}{}.{}",
        URL_SAFE_NO_PAD.encode(edited.as_bytes()),
        URL_SAFE_NO_PAD.encode(&signature)
    );
    let err = site
        .check(Some(&tampered), request(&tables, now))
        .expect_err("tampered");
    assert_eq!(err.code(), "permit.signature");
    let err = site
        .check(Some("garbage"), request(&tables, now))
        .expect_err("garbage");
    assert_eq!(err.code(), "permit.malformed");
}

#[test]
fn a_site_policy_narrows_but_never_widens() {
    let (key, public) = generate_key().expect("key");
    let mut commercial = permit();
    commercial.commercial = true;
    commercial.tables.push("variant_occurrence".into());
    let token = issue(&commercial, &key).expect("issue");
    let now = "2026-06-01T00:00:00Z";
    let mut site = policy(&public);
    site.deny.push(DenyRule {
        tables: vec!["variant_occurrence".into()],
        purposes: vec![],
        commercial_only: true,
    });
    let genomic = vec!["variant_occurrence".to_string()];
    let err = site
        .check(Some(&token), request(&genomic, now))
        .expect_err("narrowed");
    assert_eq!(err.code(), "permit.site_policy");
    assert!(
        err.to_string()
            .contains("commercial scientific_research use")
    );
    let person = vec!["person".to_string()];
    assert!(site.check(Some(&token), request(&person, now)).is_ok());

    site.allowed_purposes = vec![Purpose::PublicHealth];
    let err = site
        .check(Some(&token), request(&person, now))
        .expect_err("purpose");
    assert_eq!(err.code(), "permit.purpose");

    // Nothing in a site policy can admit a table the permit leaves out.
    site.allowed_purposes.clear();
    site.deny.clear();
    let drugs = vec!["drug_exposure".to_string()];
    assert_eq!(
        site.check(Some(&token), request(&drugs, now))
            .expect_err("outside")
            .code(),
        "permit.table"
    );
}
