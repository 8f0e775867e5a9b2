//! The collectors of a Proxmox Backup Server target (`/probe?module=M` where `M` has
//! `product: pbs`): the same [`Collector`] trait, cache windows and refreshes as the PVE
//! collectors, through the same dispatcher (several endpoints, retry, backoff) speaking PBS's
//! credentials, but without PVE's inventory. Their families are `proxmox_pbs_*`.
//!
//! - [`datastore`]: every datastore's usage, estimated full date, GC status and maintenance
//!   mode: `/status/datastore-usage` and `/admin/datastore`, two requests a window;
//! - [`jobs`]: GC, verify, sync and prune jobs' last run and next run: four requests a window;
//! - [`groups`]: per datastore and namespace, each backup group's snapshot count and last
//!   backup: one request per datastore (its namespaces) and one per namespace, every 5 minutes;
//!   never the per-snapshot listing, which PBS reads from disk;
//! - [`host`]: the server's CPU, memory, swap, root file system, load and uptime
//!   (`/nodes/localhost/status`) and its version (`/version`): two requests a window;
//! - [`subscription`]: `/nodes/localhost/subscription`, hourly;
//! - [`tasks`]: failed tasks per type from the task archive, as PVE's `tasks` collector counts
//!   them: one request a window.
//!
//! A datastore PBS cannot open (maintenance mode, being removed, not mounted) costs only its
//! own series: it is shown with its reason, and no collector fails for it.

use std::sync::Arc;
use std::time::Instant;

use super::{Collected, Collector, Families, Nothing};
use crate::pbs::client::Client;
use crate::pve::{ApiError, Dispatcher};

pub mod datastore;
pub mod groups;
pub mod host;
pub mod jobs;
pub mod subscription;
pub mod tasks;

/// Every PBS collector, in the order their families are written.
pub static REGISTRY: &[&dyn Collector] = &[
    &host::COLLECTOR,
    &datastore::COLLECTOR,
    &jobs::COLLECTOR,
    &groups::COLLECTOR,
    &subscription::COLLECTOR,
    &tasks::COLLECTOR,
];

/// The PBS collector named `name`.
pub fn find(name: &str) -> Option<&'static dyn Collector> {
    super::find_in(REGISTRY, name)
}

/// The node name PBS's per-node paths take: a backup server answers for itself.
pub const NODE: &str = "localhost";

/// One PBS request: its answer, as the generated `op` decodes it.
pub async fn get<T, F, Fut>(dispatcher: &Dispatcher, path: &str, op: F) -> Result<T, ApiError>
where
    F: Fn(Arc<Client>) -> Fut,
    Fut: Future<Output = Result<progenitor_client::ResponseValue<T>, progenitor_client::Error<()>>>,
{
    dispatcher.call_as(path, op).await
}

/// A collector's outcome from its requests' results: the families of what answered, every
/// error, and the time since `started`.
pub fn outcome(
    started: Instant,
    families: Box<dyn Families>,
    errors: Vec<ApiError>,
) -> Collected<Box<dyn Families>> {
    Collected {
        data: families,
        errors,
        known: Vec::new(),
        duration: started.elapsed(),
        unreachable: Vec::new(),
    }
}

/// One request whose answer makes the collector's families (none when it failed).
pub async fn single<T>(
    answer: impl Future<Output = Result<T, ApiError>>,
    families: impl FnOnce(T) -> Box<dyn Families>,
) -> Collected<Box<dyn Families>> {
    let started = Instant::now();
    match answer.await {
        Ok(answer) => outcome(started, families(answer), Vec::new()),
        Err(error) => outcome(started, Box::new(Nothing), vec![error]),
    }
}

/// Why PBS could not open a datastore, from its error text: the datastore's state, not an
/// API failure. `None` for any other error.
pub fn unavailable(message: &str) -> Option<&'static str> {
    let lower = message.to_ascii_lowercase();
    if lower.contains("maintenance") {
        Some("maintenance")
    } else if lower.contains("being deleted") || lower.contains("being removed") {
        Some("removing")
    } else if lower.contains("not mounted") {
        Some("unmounted")
    } else {
        None
    }
}

/// The PBS collectors on by default, with their default refresh.
pub fn defaults() -> Vec<super::Enabled> {
    super::defaults_in(REGISTRY)
}
