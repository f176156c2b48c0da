//! Capture of the servers' `tracing` output inside the test binary, so that
//! tests can check what the coordinator and the sites log (who asked, why a
//! call was refused) and what they never log (passwords, tokens).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<Buffer> = OnceLock::new();

/// Start capturing (idempotent): every event at INFO and above from every
/// test of this binary goes into one shared buffer.
pub fn capture() {
    LOGS.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            // Ballista's scheduler logs every plan at INFO; capped as
            // the `ihdsi` binary caps it.
            .with_env_filter(
                "info,ballista=warn,ballista_core=warn,ballista_scheduler=warn,ballista_executor=warn",
            )
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    });
}

/// Everything captured so far.
pub fn captured() -> String {
    LOGS.get()
        .map(|b| {
            String::from_utf8_lossy(&b.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
        })
        .unwrap_or_default()
}
