//! The signals that stop a long-running `ihdsi` process: Ctrl-C
//! (SIGINT) and SIGTERM (what an orchestrator or `systemctl stop` sends).
//! Every server of the binary, the demo included, shuts down gracefully
//! on either.

/// Resolves on the first Ctrl-C or SIGTERM, naming which.
pub async fn termination() -> &'static str {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupt",
        () = terminate => "terminate",
    }
}
