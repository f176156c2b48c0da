//! Authentication at the coordinator, checked on the wire with raw Flight
//! calls (so that headers are exactly what real clients send): Basic login
//! with and without base64 padding, bearer tokens, service tokens, and the
//! refusals (no credentials, wrong password, forged token). Also checks the
//! logs: the analyst's name reaches the sites' logs, secrets never do.

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt};
use arrow_flight::{FlightDescriptor, HandshakeRequest};
use base64::Engine;
use ihdsi_catalog::AuthSection;
use ihdsi_catalog::auth::{ServiceToken, UserEntry};
use ihdsi_cli::client::{Connection, Credentials};
use ihdsi_cli::demo::start;
use ihdsi_flight_server::auth::secrets;
use ihdsi_tests::{cohort, logs, policy};
use prost::Message;
use tonic::transport::Channel;

const USER: &str = "dr.kim@snuh.kr";
const PASSWORD: &str = "pw-kim-7";
const WRONG: &str = "pw-WRONG-3";

fn basic(user: &str, password: &str, padded: bool) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let encoded = if padded {
        encoded
    } else {
        encoded.trim_end_matches('=').to_string()
    };
    format!("Basic {encoded}")
}

/// A raw handshake with `authorization` set to `header` (if any); returns
/// the bearer token from the response header.
async fn handshake(channel: &Channel, header: Option<&str>) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(futures::stream::iter([HandshakeRequest::default()]));
    if let Some(h) = header {
        request
            .metadata_mut()
            .insert("authorization", h.parse().expect("header"));
    }
    let response = FlightServiceClient::new(channel.clone())
        .handshake(request)
        .await?;
    let value = response
        .metadata()
        .get("authorization")
        .expect("authorization response header")
        .to_str()
        .expect("ascii")
        .to_string();
    Ok(value
        .strip_prefix("Bearer ")
        .expect("Bearer token")
        .to_string())
}

/// A raw `GetFlightInfo(CommandStatementQuery)` with `header`.
async fn query(channel: &Channel, header: Option<&str>) -> Result<(), tonic::Status> {
    let cmd = CommandStatementQuery {
        query: "SELECT count(DISTINCT person_id) AS n FROM person".into(),
        transaction_id: None,
    };
    let mut request = tonic::Request::new(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()));
    if let Some(h) = header {
        request
            .metadata_mut()
            .insert("authorization", h.parse().expect("header"));
    }
    FlightServiceClient::new(channel.clone())
        .get_flight_info(request)
        .await
        .map(|_| ())
}

fn refused(outcome: Result<impl std::fmt::Debug, tonic::Status>, needle: &str) {
    let status = outcome.expect_err("must be refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains(needle), "{status:?}");
}

/// No credentials, a wrong password, an unknown user, a forged or a
/// malformed token: each refused with its own reason.
async fn wrong_or_missing_credentials_are_refused(channel: &Channel) {
    refused(handshake(channel, None).await, "no credentials");
    refused(query(channel, None).await, "no credentials");
    refused(
        handshake(channel, Some(&basic(USER, WRONG, true))).await,
        "invalid user name or password",
    );
    refused(
        handshake(channel, Some(&basic("mallory", PASSWORD, true))).await,
        "invalid user name or password",
    );
    let forged = "Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    refused(query(channel, Some(forged)).await, "unknown bearer token");
    refused(query(channel, Some("Token abc")).await, "malformed");
}

/// The Rust client logs in the same way and keeps serving after refusals.
async fn the_rust_client_logs_in_alike_and_serving_goes_on(uri: &str) {
    let wrong = Connection::connect(
        uri,
        &Credentials::Password {
            user: USER.into(),
            password: WRONG.into(),
        },
    )
    .await
    .expect_err("wrong password");
    assert!(
        wrong.to_string().contains("invalid user name or password"),
        "{wrong}"
    );
    let ok = Connection::connect(
        uri,
        &Credentials::Password {
            user: USER.into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .expect("login")
    .query("SELECT site, count(DISTINCT person_id) AS n FROM person GROUP BY site")
    .await
    .expect("query after refusals");
    assert_eq!(ok.num_rows(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_authenticated_analysts_are_answered_and_sites_log_who_asked() {
    logs::capture();
    let service_token = secrets::new_token();
    let auth = AuthSection {
        users: vec![UserEntry {
            name: USER.into(),
            password_hash: secrets::hash_password(PASSWORD).expect("hash"),
        }],
        service_tokens: vec![ServiceToken {
            name: "nightly-report".into(),
            token_blake2s: secrets::token_digest(&service_token),
        }],
        ..AuthSection::default()
    };
    let data = cohort(6_000);
    let fed = start(&data, 0, policy(10, false), policy(10, false), &auth)
        .await
        .expect("federation");
    let channel = tonic::transport::Endpoint::from_shared(fed.uri.replacen("grpc", "http", 1))
        .expect("uri")
        .connect()
        .await
        .expect("connect");

    wrong_or_missing_credentials_are_refused(&channel).await;

    // ADBC sends Basic credentials without base64 padding; JDBC with.
    let padded = basic(USER, PASSWORD, true);
    assert!(padded.ends_with('='), "the test needs credentials that pad");
    let token = handshake(&channel, Some(&basic(USER, PASSWORD, false)))
        .await
        .expect("unpadded Basic login");
    let token2 = handshake(&channel, Some(&padded))
        .await
        .expect("padded Basic login");
    assert_ne!(token, token2, "each login gets its own token");
    query(&channel, Some(&format!("Bearer {token}")))
        .await
        .expect("issued token answers");
    let echoed = handshake(&channel, Some(&format!("Bearer {token}")))
        .await
        .expect("bearer handshake (JDBC token=)");
    assert_eq!(echoed, token);
    query(&channel, Some(&format!("Bearer {service_token}")))
        .await
        .expect("service token answers");

    the_rust_client_logs_in_alike_and_serving_goes_on(&fed.uri).await;
    fed.shutdown().await;

    let logged = logs::captured();
    assert!(
        logged.contains("subplan received") && logged.contains(&format!("analyst={USER}")),
        "sites must log the analyst"
    );
    assert!(logged.contains("call refused: not authenticated"));
    for secret in [
        PASSWORD,
        WRONG,
        token.as_str(),
        token2.as_str(),
        service_token.as_str(),
    ] {
        assert!(!logged.contains(secret), "a secret reached the logs");
    }
}
