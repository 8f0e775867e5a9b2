//! Collectors: each is one file here that fetches what it needs from the API and turns it into
//! metric families; [`REGISTRY`] lists them all. A collection first asks `/cluster/resources`
//! (the inventory: nodes, guests, storage), then runs every enabled collector at once; a
//! collector whose answers are still fresh (its refresh is longer than the cache window) is
//! not asked again. A failing collector costs only its own metrics.
//!
//! This file holds what a collector is: the [`Collector`] trait, its [`Spec`] and [`Cost`],
//! what it returns ([`Collected`], [`Families`]) and the registry. Beside it:
//! - [`collection`]: a collection's run: the [`Context`] a fetch gets, the fan-out helpers,
//!   [`Collectors`] (which collectors run, what they kept) and the [`Snapshot`] it makes;
//! - [`encode`]: the helpers every collector writes its families with.
//!
//! The items a collector file needs from those two are re-exported here, so a collector
//! imports from `super` alone.
//!
//! Adding a collector: a file with a unit struct implementing [`Collector`], its name in the
//! `registry!` line below, and its operations in `schema/operations.txt`.

use std::pin::Pin;
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use crate::pve::ApiError;

pub mod collection;
pub mod encode;
pub mod sweep;

pub use collection::{
    Collectors, Context, Kept, Outcome, PerNode, Snapshot, Target, cluster_wide,
    cluster_wide_unless, each_online_node, fan_out,
};
pub use encode::{
    ByVmid, Sample, View, Vmid, WithVmid, as_text, gauge, gauge_family, labels, sorted_family,
    unix_seconds,
};
pub use sweep::{Reply, Sweeps, sweep};

/// `async fn NAME(dispatcher, node) -> Result<TYPE, ApiError>`: one node's
/// `GET /nodes/{node}/WHAT` through the generated `CALL`, its answer's `data`.
macro_rules! node_get {
    ($(#[$doc:meta])* $vis:vis $name:ident, $what:literal, $call:ident, $ty:ty) => {
        $(#[$doc])*
        $vis async fn $name(
            dispatcher: std::sync::Arc<crate::pve::Dispatcher>,
            node: String,
        ) -> Result<$ty, crate::pve::ApiError> {
            let path = format!(concat!("/nodes/{}/", $what), node);
            let answer = dispatcher
                .call(&path, |c| {
                    let node = node.clone();
                    async move { c.$call().node(node).send().await }
                })
                .await?;
            Ok(answer.data)
        }
    };
}

macro_rules! registry {
    ($($module:ident),* $(,)?) => {
        /// Every collector, in the order their families are written.
        pub static REGISTRY: &[&dyn Collector] = &[$(&$module::COLLECTOR),*];
    };
}

// Declared here rather than by `registry!`, so that rustfmt (which does not look inside
// macros) reaches their files.
pub mod backup;
pub mod ceph;
pub mod cluster;
pub mod cluster_resources;
pub mod disks;
pub mod guest;
pub mod guest_filesystems;
pub mod guest_network;
pub mod guest_pressure;
pub mod ha;
pub mod node;
pub mod node_certificates;
pub mod node_disks;
pub mod replication;
pub mod smart;
pub mod snapshots;
pub mod storage;
pub mod subscription;
pub mod tasks;
pub mod zfs;

pub mod resource;

pub mod pbs;

registry!(
    cluster_resources,
    node_certificates,
    node_disks,
    cluster,
    node,
    guest,
    snapshots,
    subscription,
    ha,
    replication,
    zfs,
    ceph,
    backup,
    guest_filesystems,
    guest_network,
    guest_pressure,
    disks,
    storage,
    tasks,
    smart,
);

/// A future a collector returns; boxed so collectors can sit in one list.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a collector fetched, ready to be written as metric families.
pub trait Families: Send + Sync + std::fmt::Debug {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result;
}

/// What a collector asks of the API in a window, besides the inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Nothing: it reads the inventory.
    Nothing,
    /// One request for the whole cluster.
    One,
    /// This many requests for the whole cluster (or backup server).
    Fixed(u32),
    /// One request per online node. Its fetch reads nothing of the inventory but the online
    /// nodes ([`each_online_node`]): it may start on the last collection's nodes before the
    /// inventory has come (see [`Collectors::collect`]).
    PerNode,
    /// Two requests per online node.
    TwoPerNode,
    /// One request per guest (templates aside) on an online node.
    PerGuest,
    /// One request per running VM (templates aside) on an online node.
    PerRunningVm,
    /// Two cluster-wide requests and one per storage holding backups (a shared one once).
    BackupStorages,
    /// One request per online node (its disk list) and one per disk it names.
    PerDisk,
    /// A backup server's: one request for its datastores, one per datastore (its
    /// namespaces) and one per namespace.
    PerNamespace,
}

impl Cost {
    /// Whether the collector sweeps its targets over its refresh ([`sweep`]) rather than
    /// asking them all when the refresh is over.
    pub fn sweeps(self) -> bool {
        matches!(
            self,
            Cost::PerGuest | Cost::PerRunningVm | Cost::BackupStorages | Cost::PerDisk
        )
    }
}

/// What a collector is: its name, default, the operations it calls, its cost and refresh.
#[derive(Debug)]
pub struct Spec {
    /// The name in flags (`--collector.NAME`) and in `proxmox_exporter_collector_*{collector}`.
    pub name: &'static str,
    /// On without `--collector.NAME`.
    pub enabled_by_default: bool,
    /// The API operations it calls, `METHOD /path` as in `schema/operations.txt`; the
    /// inventory (`GET /cluster/resources`) every collection asks anyway is not listed.
    pub operations: &'static [&'static str],
    /// The requests it makes per window (the README's table says the same).
    pub cost: Cost,
    /// How long its answers stay fresh by default; `None`: one cache window.
    pub refresh: Option<Duration>,
}

/// One source of metrics.
pub trait Collector: Sync {
    fn spec(&self) -> &'static Spec;
    /// Fetches its answers. Requests go through `ctx` (its fan-out honours the scrape's
    /// deadline and the limit on requests under way).
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>>;

    fn name(&self) -> &'static str {
        self.spec().name
    }
    fn enabled_by_default(&self) -> bool {
        self.spec().enabled_by_default
    }
    fn operations(&self) -> &'static [&'static str] {
        self.spec().operations
    }
    fn cost(&self) -> Cost {
        self.spec().cost
    }
    fn refresh(&self) -> Option<Duration> {
        self.spec().refresh
    }
    /// The collector whose answers this one reads too: with both on, the requests are made
    /// once per collection, and only the other's count.
    fn shares(&self) -> Option<&'static str> {
        None
    }
}

/// What the collectors ask with nothing but a node: `WHAT` of each `GET /nodes/{node}/WHAT`
/// they declare (`disks/list`, `status`, …); not `disks/smart`, asked once per disk.
pub fn per_node_paths() -> Vec<&'static str> {
    let mut paths: Vec<&str> = declared()
        .filter_map(|path| path.strip_prefix("/nodes/{node}/"))
        .filter(|rest| !rest.contains('{') && *rest != smart::PER_DISK)
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// The cluster-wide paths the collectors declare (`/cluster/status`, …), the inventory aside.
pub fn cluster_paths() -> Vec<&'static str> {
    declared()
        .filter(|path| path.starts_with("/cluster/"))
        .collect()
}

/// The paths of every `GET` a collector declares.
fn declared() -> impl Iterator<Item = &'static str> {
    REGISTRY
        .iter()
        .flat_map(|c| c.operations())
        .filter_map(|op| op.strip_prefix("GET "))
}

/// Every collector: PVE's ([`REGISTRY`]) and then a backup server's ([`pbs::REGISTRY`]);
/// the flags (`--collector.NAME`) are made for each.
pub fn every_collector() -> impl Iterator<Item = &'static dyn Collector> {
    REGISTRY.iter().chain(pbs::REGISTRY).copied()
}

/// The collector named `name`.
pub fn find(name: &str) -> Option<&'static dyn Collector> {
    find_in(REGISTRY, name)
}

/// The collector of `registry` named `name`.
pub fn find_in(registry: &[&'static dyn Collector], name: &str) -> Option<&'static dyn Collector> {
    registry.iter().copied().find(|c| c.name() == name)
}

/// Where `collector` stands in [`REGISTRY`]; `None` for collectors outside it (`/pve`'s).
pub(crate) fn registry_position(collector: &dyn Collector) -> Option<usize> {
    REGISTRY
        .iter()
        .position(|c| std::ptr::addr_eq(*c, collector))
}

/// What one collector fetched, what failed, and how long it took.
#[derive(Debug)]
pub struct Collected<T> {
    pub data: T,
    /// Errors that came in this collection (they are logged).
    pub errors: Vec<ApiError>,
    /// Errors that came earlier and still stand (a sweep's target that has not answered
    /// since): they count against the collector but were logged when they came.
    pub known: Vec<ApiError>,
    pub duration: Duration,
    /// Nodes whose own requests answered 595/596: unreachable from the cluster right now.
    pub unreachable: Vec<String>,
}

impl<T> Collected<T> {
    pub fn succeeded(&self) -> bool {
        self.errors.is_empty() && self.known.is_empty()
    }

    /// `data` as given, with no error and no time spent (nothing was asked for it).
    pub fn given(data: T) -> Self {
        Collected {
            data,
            errors: Vec::new(),
            known: Vec::new(),
            duration: Duration::ZERO,
            unreachable: Vec::new(),
        }
    }

    /// Nothing but `error`, after `duration`.
    pub fn failed(data: T, error: ApiError, duration: Duration) -> Self {
        Collected {
            data,
            errors: vec![error],
            known: Vec::new(),
            duration,
            unreachable: Vec::new(),
        }
    }

    /// The same outcome around other data.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Collected<U> {
        Collected {
            data: f(self.data),
            errors: self.errors,
            known: self.known,
            duration: self.duration,
            unreachable: self.unreachable,
        }
    }
}

/// The `/cluster/resources` rows every collection starts with.
pub type Inventory = Collected<cluster_resources::Rows>;

/// How an enabled collector runs.
#[derive(Clone, Copy)]
pub struct Enabled {
    pub collector: &'static dyn Collector,
    /// How long its answers are reused; `None` or not longer than the cache window: they are
    /// asked again in every collection.
    pub refresh: Option<Duration>,
}

impl std::fmt::Debug for Enabled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enabled")
            .field("collector", &self.collector.name())
            .field("refresh", &self.refresh)
            .finish()
    }
}

/// The default limit on API requests under way: 50 for each enabled collector that asks every
/// node or guest (so 50 nodes take one round), at least 100, at most 1024.
pub fn default_concurrency(enabled: &[Enabled]) -> usize {
    let fanning = enabled
        .iter()
        .filter(|e| {
            matches!(
                e.collector.cost(),
                Cost::PerNode
                    | Cost::TwoPerNode
                    | Cost::PerGuest
                    | Cost::PerRunningVm
                    | Cost::BackupStorages
                    | Cost::PerDisk
                    | Cost::PerNamespace
            )
        })
        .count();
    (50 * fanning).clamp(100, 1024)
}

/// The collectors on by default, with their default refresh.
pub fn defaults() -> Vec<Enabled> {
    defaults_in(REGISTRY)
}

/// The collectors of `registry` on by default, with their default refresh.
pub fn defaults_in(registry: &[&'static dyn Collector]) -> Vec<Enabled> {
    registry
        .iter()
        .filter(|c| c.enabled_by_default())
        .map(|&collector| Enabled {
            collector,
            refresh: collector.refresh(),
        })
        .collect()
}

/// The families of a collector that fetched nothing.
#[derive(Debug)]
pub struct Nothing;

impl Families for Nothing {
    fn encode(&self, _: &View<'_>, _: &mut DescriptorEncoder) -> std::fmt::Result {
        Ok(())
    }
}
