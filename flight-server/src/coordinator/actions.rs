//! The handshake, ihdsi's own `DoAction`s, and the actions refused by design.
//!
//! * **Handshake** returns the bearer token in the `authorization` response
//!   header, where the JDBC driver, ADBC and pyarrow.flight look for it, and
//!   also in the payload for clients that read that instead.
//! * **`ihdsi.progress`** reports per-site state and elapsed time of a
//!   running query, for `ihdsi shell`'s live progress. The client tags its
//!   query with the `x-ihdsi-request-id` header and polls with that id; an
//!   analyst only ever sees progress of their own queries. In dp mode no
//!   query is followed: per-site times are a timing channel (A16).
//! * **`CancelFlightInfo`** releases the result a FlightInfo announces. A
//!   query runs inside `GetFlightInfo`, so by the time a client holds the
//!   FlightInfo its query is done; a client cancels a query still running
//!   by cancelling its `GetFlightInfo` call, which drops the query and
//!   every site request with it.
//! * **Session options** (`SetSessionOptions`, `GetSessionOptions`,
//!   `CloseSession`) answer `Unimplemented`: the coordinator keeps no
//!   per-session state, and ADBC ignores `Unimplemented` on close.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow_flight::{ActionType, HandshakeResponse};
use futures::Stream;
use ihdsi_engine::Progress;
use tonic::{Request, Response, Status};

use crate::auth::{Analyst, Authenticator};

/// Header a client sets to follow its query with [`PROGRESS_ACTION`].
pub const REQUEST_ID_HEADER: &str = "x-ihdsi-request-id";
/// `DoAction` type that returns the progress of a tagged query as JSON.
pub const PROGRESS_ACTION: &str = "ihdsi.progress";
/// Queries stay visible to progress polls while a site works on them, and
/// for at least this long after they start (so the final state can be read).
const KEEP_FINISHED: Duration = Duration::from_secs(60);

type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

/// The authenticated analyst of a request (attached by the auth layer).
pub fn analyst<T>(request: &Request<T>) -> Result<&Analyst, Status> {
    request
        .extensions()
        .get::<Analyst>()
        .ok_or_else(|| Status::unauthenticated("not authenticated"))
}

/// Answer a handshake: the auth layer has already checked the credentials.
pub fn handshake<T>(
    auth: &Authenticator,
    request: &Request<T>,
) -> Result<Response<HandshakeStream>, Status> {
    let who = analyst(request)?;
    let token = auth.token_for(who);
    tracing::info!(analyst = %who.name, via = ?who.via, "analyst logged in");
    let reply = HandshakeResponse {
        protocol_version: 0,
        payload: token.clone().into(),
    };
    let mut response: Response<HandshakeStream> =
        Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| Status::internal("cannot encode the token header"))?;
    response.metadata_mut().insert("authorization", value);
    Ok(response)
}

/// Progress of recent queries, by analyst and client request id.
#[derive(Debug, Default)]
pub struct ProgressBoard {
    queries: Mutex<HashMap<(String, String), (Progress, Instant)>>,
}

impl ProgressBoard {
    /// The request id a client attached, if it is well formed.
    pub fn request_id<T>(request: &Request<T>) -> Option<String> {
        let id = request.metadata().get(REQUEST_ID_HEADER)?.to_str().ok()?;
        let ok = !id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        ok.then(|| id.to_string())
    }

    /// Start following a query.
    pub fn follow(&self, analyst: &str, request_id: String, progress: Progress) {
        let now = Instant::now();
        let mut queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        queries.retain(|_, (progress, since)| {
            progress.running() || now.duration_since(*since) < KEEP_FINISHED
        });
        queries.insert((analyst.to_string(), request_id), (progress, now));
    }

    /// Answer a progress poll with a JSON array of per-site lines.
    pub fn poll(&self, analyst: &str, body: &[u8]) -> Result<Vec<u8>, Status> {
        let id = std::str::from_utf8(body)
            .map_err(|_| Status::invalid_argument("progress: the body must be a request id"))?;
        let queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        let lines = queries
            .get(&(analyst.to_string(), id.to_string()))
            .map(|(p, _)| p.snapshot())
            .unwrap_or_default();
        serde_json::to_vec(&lines).map_err(|e| Status::internal(e.to_string()))
    }
}

/// The custom actions listed by `ListActions`.
pub fn custom_actions() -> Vec<Result<ActionType, Status>> {
    vec![
        Ok(ActionType {
            r#type: PROGRESS_ACTION.into(),
            description: format!(
                "Per-site state and elapsed time of a query tagged with the {REQUEST_ID_HEADER} header; body: that id; result: JSON"
            ),
        }),
        Ok(ActionType {
            r#type: "CancelFlightInfo".into(),
            description: "Release the result a FlightInfo announces (its query is already done; cancel a running query by cancelling its GetFlightInfo call)".into(),
        }),
    ]
}

/// The status for any other action type.
pub fn unsupported_action(kind: &str) -> Status {
    match kind {
        "SetSessionOptions" | "GetSessionOptions" | "CloseSession" => Status::unimplemented(
            format!("{kind}: the coordinator keeps no session options; every call stands alone"),
        ),
        "RenewFlightEndpoint" => Status::unimplemented(
            "RenewFlightEndpoint: results are kept for 10 minutes; run the query again after that",
        ),
        _ => Status::unimplemented(format!(
            "unknown action '{}'; ListActions names the supported ones",
            kind.escape_debug()
        )),
    }
}
