//! Logging: tracing to standard error at `--log-level` for the exporter itself; other crates
//! (HTTP and TLS internals) only from `warn` up, unless `RUST_LOG` says otherwise.
//!
//! `RUST_LOG` takes `LEVEL` and `TARGET=LEVEL` directives, comma separated
//! (`warn,proxmox_exporter=debug,hyper=info`): tracing-subscriber's `Targets`, without the
//! span and field filters of its `EnvFilter`, whose regex engine would double the time a
//! first `cargo run --release` takes to compile the dependencies.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// The filter: `RUST_LOG` when set and valid, else `level` for the exporter and `warn` for
/// the rest. A `RUST_LOG` that does not parse is named in a warning, not silently dropped.
fn filter(level: tracing::Level, rust_log: Option<&str>) -> (Targets, Option<String>) {
    let ours = || {
        Targets::new()
            .with_default(tracing::Level::WARN)
            .with_target("proxmox_exporter", level)
    };
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        None => (ours(), None),
        Some(value) => match value.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (ours(), Some(format!("RUST_LOG `{value}` ignored: {e}"))),
        },
    }
}

pub fn init(level: tracing::Level) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (targets, refused) = filter(level, rust_log.as_deref());
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A subscriber may already be set (in tests); then that one stays.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(targets))
        .try_init();
    if let Some(refused) = refused {
        tracing::warn!("{refused}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;

    fn level_for(targets: &Targets, target: &str) -> Option<LevelFilter> {
        targets
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, level)| level)
    }

    #[test]
    fn our_level_for_us_and_warn_for_the_rest() {
        let (targets, refused) = filter(Level::DEBUG, None);
        assert!(refused.is_none());
        assert_eq!(
            level_for(&targets, "proxmox_exporter"),
            Some(LevelFilter::DEBUG)
        );
        assert_eq!(targets.default_level(), Some(LevelFilter::WARN));
        assert!(targets.would_enable("hyper", &Level::WARN));
        assert!(!targets.would_enable("hyper", &Level::INFO));
    }

    #[test]
    fn rust_log_wins_and_a_broken_one_is_named() {
        let (targets, refused) = filter(Level::INFO, Some("info,hyper=trace"));
        assert!(refused.is_none());
        assert!(targets.would_enable("hyper", &Level::TRACE));
        assert!(!targets.would_enable("proxmox_exporter", &Level::DEBUG));
        let (targets, refused) = filter(Level::INFO, Some("proxmox_exporter=loud"));
        assert!(refused.unwrap().contains("proxmox_exporter=loud"));
        assert!(targets.would_enable("proxmox_exporter", &Level::INFO));
    }
}
