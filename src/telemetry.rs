//! Logging: tracing to standard error at `--log-level` for the exporter itself; other crates
//! (HTTP and TLS internals) only from `warn` up, unless `RUST_LOG` says otherwise.

use tracing_subscriber::EnvFilter;

pub fn init(level: tracing::Level) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,proxmox_exporter={level}")));
    // A subscriber may already be set (in tests); then that one stays.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
