//! A Prometheus exporter for Proxmox VE clusters.
//!
//! Layout, from the top down; a module uses only those below it (`tests/layout.rs` checks):
//! - [`config`], [`telemetry`]: flags and variables into a checked configuration; logging.
//! - [`http`]: the routes (`/metrics`, `/pve`, `/probe`, landing page, health) and the
//!   exporter's own TLS and basic authentication.
//! - [`exporter`]: one target's cached, single-flight collections; collecting ahead of the
//!   scrapes; the targets of `/pve` and `/probe`; the exposition of a collection.
//! - [`compat`]: prometheus-pve-exporter's families and its `pve.yml` modules.
//! - [`collectors`]: one file per collector, the registry, a collection's run, and the helpers
//!   collectors encode their families with.
//! - [`pbs`]: the Proxmox Backup Server client, generated like PVE's from our subset of its
//!   API (`schema/pbs-apidata.json`), with PVE's lenient types and request hooks.
//! - [`pve`]: the client generated from the schema by `build.rs`, the lenient types PVE's
//!   answers need, and the dispatcher that spreads requests over the cluster's endpoints.
//! - [`schema`]: the importer that turns pve-docs' `apidata.js` into `schema/pve-api.json`
//!   (used by the `pve-schema` binary), and the version differ.
//! - [`malloc`]: the binary's allocator (jemalloc) and its settings.
//!
//! Beside the stack: [`sim`], the simulated PVE API (tests, `--demo`, benchmarks), and
//! [`record`], which records a live cluster's answers as a test scenario.
//!
//! Inside a folder, `mod.rs` is its face: the files beside it may use it, and it names them.

pub mod collectors;
pub mod compat;
pub mod config;
pub mod exporter;
pub mod http;
pub mod malloc;
pub mod pbs;
pub mod pve;
pub mod record;
pub mod schema;
pub mod sim;
pub mod telemetry;

/// Locks `m`. A panic while it was held leaves plain data behind, which stays usable.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
