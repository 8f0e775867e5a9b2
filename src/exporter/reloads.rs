//! How the last configuration reload went (`SIGHUP`, `POST /-/reload`), shown the way
//! Prometheus shows its own: `proxmox_exporter_config_last_reload_successful` and
//! `proxmox_exporter_config_last_reload_success_timestamp_seconds`. The configuration read at
//! start counts as the first successful load.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use prometheus_client::encoding::DescriptorEncoder;

use crate::collectors::{gauge, unix_seconds};
use crate::lock;

const SUCCESSFUL: (&str, &str) = (
    "proxmox_exporter_config_last_reload_successful",
    "Whether the last configuration reload succeeded (1) or was refused (0).",
);
const SUCCESS_TIMESTAMP: (&str, &str) = (
    "proxmox_exporter_config_last_reload_success_timestamp_seconds",
    "When the configuration was last loaded without error, as a Unix time.",
);

/// The outcome of the last reload, and when one last succeeded.
#[derive(Debug)]
pub struct Reloads {
    successful: AtomicBool,
    last_success: Mutex<SystemTime>,
}

impl Reloads {
    /// The configuration was loaded at `at` (the start).
    pub fn new(at: SystemTime) -> Self {
        Reloads {
            successful: AtomicBool::new(true),
            last_success: Mutex::new(at),
        }
    }

    pub fn succeeded(&self, at: SystemTime) {
        *lock(&self.last_success) = at;
        self.successful.store(true, Ordering::SeqCst);
    }

    pub fn failed(&self) {
        self.successful.store(false, Ordering::SeqCst);
    }

    fn values(&self) -> (f64, f64) {
        let successful = f64::from(u8::from(self.successful.load(Ordering::SeqCst)));
        (successful, unix_seconds(*lock(&self.last_success)))
    }

    pub fn encode(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let (successful, at) = self.values();
        gauge(encoder, SUCCESSFUL.0, SUCCESSFUL.1, successful)?;
        gauge(encoder, SUCCESS_TIMESTAMP.0, SUCCESS_TIMESTAMP.1, at)
    }

    /// The two families in the text format, for a `/metrics` with no cluster of its own.
    pub fn text(&self) -> String {
        let (successful, at) = self.values();
        format!(
            "# HELP {0} {1}\n# TYPE {0} gauge\n{0} {successful}\n\
             # HELP {2} {3}\n# TYPE {2} gauge\n{2} {at}\n",
            SUCCESSFUL.0, SUCCESSFUL.1, SUCCESS_TIMESTAMP.0, SUCCESS_TIMESTAMP.1
        )
    }
}
