//! Federations assembled by hand from site engines, for tests that need a
//! site the demo does not make (a stoppable site, a site on another
//! backend): each site served on a free loopback port, and a plaintext
//! coordinator over them.

use std::future::Future;

use ihdsi_catalog::registry::CoordinatorSection;
use ihdsi_catalog::{FederationConfig, PrivacyPolicy, SiteEntry};
use ihdsi_cli::demo::{DEMO_PASSWORD, demo_auth};
use ihdsi_engine::{Coordinator, SiteEngine};
use ihdsi_flight_server::serve::{CoordinatorFront, bind, spawn_coordinator, spawn_site};

/// Serve `engine` as site `id` until `shutdown`; its registry entry.
pub async fn serve_site(
    id: &str,
    engine: SiteEngine,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> SiteEntry {
    let (listener, addr) = bind("127.0.0.1:0").await.expect("bind");
    spawn_site(engine, None, listener, shutdown).expect("serve site");
    SiteEntry {
        id: id.to_string(),
        country: String::new(),
        endpoint: format!("http://{addr}"),
        tables: vec![],
        patients: None,
    }
}

/// Serve a coordinator over `sites` under `policy`, admitting the demo
/// analyst, until `shutdown`; its Flight SQL URI.
pub async fn serve_coordinator(
    sites: Vec<SiteEntry>,
    vocabulary: String,
    policy: PrivacyPolicy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> String {
    let config = FederationConfig {
        coordinator: CoordinatorSection {
            listen: "127.0.0.1:0".into(),
            vocabulary: Some(vocabulary),
            site_timeout_secs: 20,
            tls: None,
            shutdown_grace_secs: 30,
        },
        auth: demo_auth(DEMO_PASSWORD).expect("auth").0,
        privacy: policy,
        sites,
        tls: None,
        permits: None,
        audit: None,
        limits: Default::default(),
        resources: Default::default(),
    };
    let (listener, addr) = bind("127.0.0.1:0").await.expect("bind");
    let coordinator = Coordinator::new(&config).await.expect("coordinator");
    spawn_coordinator(
        coordinator,
        &config.auth,
        CoordinatorFront::default(),
        listener,
        shutdown,
    )
    .expect("serve coordinator");
    format!("grpc://{addr}")
}
