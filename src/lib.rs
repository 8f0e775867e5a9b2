//! A Prometheus exporter for Proxmox VE clusters.
//!
//! Layout:
//! - [`schema`]: the importer that turns pve-docs' `apidata.js` into `schema/pve-api.json`
//!   (used by the `pve-schema` binary).
//! - [`pve`]: the client generated from that schema by `build.rs`, the lenient types PVE's
//!   answers need, and the dispatcher that spreads requests over the cluster's endpoints.

pub mod ahead;
pub mod collectors;
pub mod compat;
pub mod config;
pub mod malloc;
pub mod modules;
pub mod pve;
pub mod record;
pub mod schema;
pub mod server;
pub mod sim;
pub mod targets;
pub mod telemetry;
pub mod tls;
pub mod web;

/// Locks `m`. A panic while it was held leaves plain data behind, which stays usable.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
