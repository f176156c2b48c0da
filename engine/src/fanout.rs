//! Fan-out: send a release's subplan to every site that hosts its tables,
//! in parallel, over Arrow Flight `DoGet`, and collect the partials.
//!
//! A query fails as a whole if any selected site is down or refuses: a
//! federated answer that silently lacks a site would be a wrong number, and
//! answers that differ by one site's presence would let an analyst isolate
//! that site's patients by differencing.

use std::time::Duration;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{FlightData, Ticket};
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::error::{EngineError, Result};
use crate::progress::Progress;
use crate::protocol::{SITE_ELAPSED_KEY, SITE_SUPPRESSED_KEY, SiteFailure, SubplanRequest};
use ihdsi_catalog::SiteEntry;

/// A site endpoint with a lazily connected channel.
#[derive(Debug, Clone)]
pub struct SiteClient {
    /// The registry entry.
    pub entry: SiteEntry,
    channel: Channel,
    timeout: Duration,
}

/// What one site returned for one release.
#[derive(Debug, Clone, Default)]
pub struct SitePartials {
    pub site: String,
    pub batches: Vec<RecordBatch>,
    /// Groups the site suppressed under its own threshold.
    pub suppressed: u64,
    /// Bytes of Flight messages received (headers, bodies, metadata).
    pub bytes: u64,
    /// What the site reported spending on the subplan itself.
    pub site_elapsed: Duration,
}

impl SiteClient {
    /// Prepare a client; nothing is connected until the first request.
    /// With `tls`, the site must prove a certificate from the pinned CA and
    /// the coordinator presents its own client certificate.
    pub fn new(entry: SiteEntry, timeout: Duration, tls: Option<ClientTlsConfig>) -> Result<Self> {
        let invalid = |e: tonic::transport::Error| EngineError::SiteUnavailable {
            site: entry.id.clone(),
            cause: format!("invalid endpoint {}: {e}", entry.endpoint),
        };
        // HTTP/2 pings find a site that stopped answering (frozen, its
        // host gone) well before the query's timeout; a site process that
        // dies resets its connections, which fails the stream at once.
        let mut endpoint = Endpoint::from_shared(entry.endpoint.clone())
            .map_err(invalid)?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .tcp_keepalive(Some(Duration::from_secs(30)));
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).map_err(invalid)?;
        }
        Ok(Self {
            channel: endpoint.connect_lazy(),
            entry,
            timeout,
        })
    }

    /// The error for a status this site's `DoGet` ended with: the site's
    /// own [`SiteFailure`] when it sent one, else (no ihdsi site answered:
    /// a refused connection, a reset stream, a proxy) unavailability with
    /// the transport's cause.
    fn status_error(&self, status: tonic::Status) -> EngineError {
        match SiteFailure::from_status(&status) {
            Some(failure) => failure.into_error(&self.entry.id),
            None => EngineError::SiteUnavailable {
                site: self.entry.id.clone(),
                cause: transport_cause(&status),
            },
        }
    }

    /// Run one subplan at this site.
    pub async fn fetch(&self, req: &SubplanRequest) -> Result<SitePartials> {
        let work = self.fetch_inner(req);
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(EngineError::SiteTimedOut {
                    site: self.entry.id.clone(),
                    secs: self.timeout.as_secs(),
                })
            })
    }

    async fn fetch_inner(&self, req: &SubplanRequest) -> Result<SitePartials> {
        let mut client =
            FlightServiceClient::new(self.channel.clone()).max_decoding_message_size(256 << 20);
        let ticket = Ticket {
            ticket: req.to_ticket().into(),
        };
        let response = client
            .do_get(ticket)
            .await
            .map_err(|s| self.status_error(s))?;
        let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = std::sync::Arc::clone(&bytes);
        let frames = response.into_inner().map(
            move |item: std::result::Result<FlightData, tonic::Status>| {
                if let Ok(d) = &item {
                    let n = d.data_header.len() + d.data_body.len() + d.app_metadata.len();
                    counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                }
                item.map_err(|s| FlightError::Tonic(Box::new(s)))
            },
        );
        let mut stream = FlightRecordBatchStream::new_from_flight_data(frames);
        let mut batches = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => batches.push(b),
                Err(FlightError::Tonic(status)) => return Err(self.status_error(*status)),
                Err(e) => {
                    return Err(EngineError::SiteProtocol {
                        site: self.entry.id.clone(),
                        detail: e.to_string(),
                    });
                }
            }
        }
        let metadata = |key: &str| -> Option<u64> {
            stream
                .schema()
                .and_then(|s| s.metadata().get(key))
                .and_then(|v| v.parse().ok())
        };
        Ok(SitePartials {
            site: self.entry.id.clone(),
            batches,
            suppressed: metadata(SITE_SUPPRESSED_KEY).unwrap_or(0),
            bytes: bytes.load(std::sync::atomic::Ordering::Relaxed),
            site_elapsed: Duration::from_micros(metadata(SITE_ELAPSED_KEY).unwrap_or(0)),
        })
    }
}

/// The status message plus its source chain: a TLS failure ("invalid
/// peer certificate: UnknownIssuer") sits several sources deep.
fn transport_cause(status: &tonic::Status) -> String {
    let mut cause = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        let text = s.to_string();
        if !cause.contains(&text) {
            cause.push_str(": ");
            cause.push_str(&text);
        }
        source = s.source();
    }
    cause
}

/// Run `req` at all `sites` in parallel, recording each site's state in
/// `progress`; fail as soon as any one fails, naming it. The site requests
/// are tasks of a [`tokio::task::JoinSet`], aborted as a whole: on the
/// first failure the other requests are dropped at once (their streams
/// reset, so the sites stop), and so they are when the caller gives up (a
/// dp deadline, a client that hung up) and drops this future.
pub async fn fan_out(
    sites: &[&SiteClient],
    req: &SubplanRequest,
    progress: &Progress,
) -> Result<Vec<SitePartials>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in sites.iter().enumerate() {
        let (site, req, progress) = ((*s).clone(), req.clone(), progress.clone());
        tasks.spawn(async move {
            let line = progress.guard(progress.started(&site.entry.id, req.release));
            let answer = site.fetch(&req).await;
            match &answer {
                Err(e) if e.names_no_site() => line.finish_untold(),
                _ => line.finish(answer.is_ok()),
            }
            (i, answer)
        });
    }
    let mut answers: Vec<Option<SitePartials>> = vec![None; sites.len()];
    while let Some(joined) = tasks.join_next().await {
        let failure = match joined {
            Ok((i, Ok(a))) => {
                answers[i] = Some(a);
                continue;
            }
            Ok((_, Err(e))) => e,
            Err(e) => EngineError::Internal(format!("site task failed: {e}")),
        };
        tasks.abort_all();
        progress.cancel_running();
        tracing::info!(query_id = %req.query_id, release = req.release, code = %failure.code(), "a site failed; the other site requests are cancelled");
        return Err(failure);
    }
    Ok(answers.into_iter().flatten().collect())
}
