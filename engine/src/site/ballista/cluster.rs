//! A Ballista cluster in the current process: one scheduler and one
//! executor on loopback, for the demo and the tests.
//!
//! This is Ballista's standalone mode (its own scheduler and executor
//! code, talking gRPC and Arrow Flight over real sockets), with one
//! difference from `ballista_executor::new_standalone_executor`: the
//! executor's work directory, where shuffle files with intermediate
//! patient-level state land, belongs to the cluster and is removed when
//! the cluster is dropped, instead of staying behind in the system's
//! temporary folder.

use std::sync::Arc;

use ballista_core::extension::{
    ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
};
use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::ExecutorRegistration;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::scheduler::{
    ExecutorOperatingSystemSpecification, ExecutorSpecification,
};
use ballista_core::utils::{GrpcServerConfig, create_grpc_server, default_config_producer};
use ballista_core::{BALLISTA_PROTOCOL_VERSION, RuntimeProducer};
use ballista_executor::executor::Executor;
use ballista_executor::flight_service::BallistaFlightService;
use ballista_executor::health::ExecutorHealth;
use ballista_executor::metrics::LoggingMetricsCollector;
use datafusion::execution::SessionStateBuilder;
use tokio::net::TcpListener;

use crate::site::error::{Result, SiteError};
use crate::tasks::SpawnedTask;

/// A scheduler and an executor running in this process.
#[derive(Debug)]
pub struct StandaloneCluster {
    scheduler: std::net::SocketAddr,
    /// The executor's tasks, aborted on drop: declared before `work_dir`
    /// so that they stop before its files are removed (fields drop in
    /// order).
    executor: Vec<SpawnedTask<()>>,
    /// The executor's shuffle files; removed on drop.
    work_dir: tempfile::TempDir,
}

fn cluster_error(what: &str) -> impl Fn(String) -> SiteError + '_ {
    move |e| SiteError::Data(format!("Ballista standalone cluster: {what}: {e}"))
}

impl StandaloneCluster {
    /// Start a scheduler on a free loopback port and one executor with
    /// `vcores` task slots registered with it.
    pub async fn start(vcores: usize) -> Result<Self> {
        let scheduler = ballista_scheduler::standalone::new_standalone_scheduler()
            .await
            .map_err(|e| cluster_error("scheduler")(e.to_string()))?;
        let work_dir = tempfile::Builder::new()
            .prefix("ihdsi-ballista-")
            .tempdir()
            .map_err(|e| cluster_error("work directory")(e.to_string()))?;
        let mut cluster = Self {
            scheduler,
            work_dir,
            executor: Vec::new(),
        };
        cluster.start_executor(vcores.max(1)).await?;
        Ok(cluster)
    }

    /// The scheduler's URL, as a site's `site.toml` names it.
    pub fn scheduler_url(&self) -> String {
        format!("df://localhost:{}", self.scheduler.port())
    }

    /// The executor's work directory (one folder per job it ran).
    pub fn work_dir(&self) -> &std::path::Path {
        self.work_dir.path()
    }

    /// How many jobs the executor has written stages for.
    pub fn jobs(&self) -> usize {
        std::fs::read_dir(self.work_dir.path()).map_or(0, |entries| {
            entries
                .filter_map(std::result::Result::ok)
                .filter(|e| e.path().is_dir())
                .count()
        })
    }

    async fn start_executor(&mut self, vcores: usize) -> Result<()> {
        let err = cluster_error("executor");
        let scheduler =
            SchedulerGrpcClient::connect(format!("http://localhost:{}", self.scheduler.port()))
                .await
                .map_err(|e| err(e.to_string()))?;
        let listener = TcpListener::bind("localhost:0")
            .await
            .map_err(|e| err(e.to_string()))?;
        let port = listener
            .local_addr()
            .map_err(|e| err(e.to_string()))?
            .port();
        let registration = ExecutorRegistration {
            id: uuid::Uuid::new_v4().to_string(),
            host: Some("localhost".to_string()),
            port: u32::from(port),
            // Pull-based scheduling: the scheduler never calls back.
            grpc_port: 0,
            specification: Some(
                ExecutorSpecification::default()
                    .with_vcores(u32::try_from(vcores).unwrap_or(1))
                    .into(),
            ),
            os_info: Some(ExecutorOperatingSystemSpecification::default().into()),
            ballista_protocol_version: BALLISTA_PROTOCOL_VERSION,
        };
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_scalar_functions(ballista_scalar_functions())
            .with_aggregate_functions(ballista_aggregate_functions())
            .with_window_functions(ballista_window_functions())
            .build();
        let runtime = Arc::clone(state.runtime_env());
        let runtime_producer: RuntimeProducer = Arc::new(move |_| Ok(Arc::clone(&runtime)));
        let work_dir = self.work_dir.path().display().to_string();
        let executor = Arc::new(Executor::with_default_execution_engine(
            registration,
            &work_dir,
            runtime_producer,
            Arc::new(default_config_producer),
            Arc::new((&state).into()),
            Arc::new(LoggingMetricsCollector::default()),
            vcores,
        ));
        let flight = arrow_flight::flight_service_server::FlightServiceServer::new(
            BallistaFlightService::new(work_dir),
        );
        let incoming = tokio_stream_of(listener);
        self.executor.push(SpawnedTask::spawn(async move {
            let served = create_grpc_server(&GrpcServerConfig::default())
                .add_service(flight)
                .serve_with_incoming(incoming)
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "Ballista executor's Flight service ended");
            }
        }));
        self.executor.push(SpawnedTask::spawn(async move {
            let polled = ballista_executor::execution_loop::poll_loop(
                scheduler,
                executor,
                BallistaCodec::default(),
                None,
                None,
                ExecutorHealth::new(),
            )
            .await;
            if let Err(e) = polled {
                tracing::warn!(error = %e, "Ballista executor stopped polling");
            }
        }));
        Ok(())
    }
}

/// Accepted connections of `listener`, as tonic serves them.
fn tokio_stream_of(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}
