//! `/cluster/resources`: one request for the whole cluster, the inventory every collection
//! starts with. This collector writes the seed's families from it: nodes, guests and storage,
//! and the sums over them.

use std::collections::BTreeMap;
use std::time::Instant;

use prometheus_client::encoding::DescriptorEncoder;

use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Sample, Spec, View};
use super::{gauge, gauge_family, labels};
use crate::pve::{ApiError, Dispatcher, ErrorKind, Known, named};

pub const NAME: &str = "cluster_resources";
pub(crate) const PATH: &str = "/cluster/resources";

pub use super::resource::{Resource, Rows};

pub struct ClusterResources;
pub static COLLECTOR: ClusterResources = ClusterResources;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: true,
    // It writes the inventory itself.
    operations: &[],
    cost: Cost::Nothing,
    refresh: None,
};

impl Collector for ClusterResources {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move { from_inventory(ctx, Box::new(Seed)) })
    }
}

/// A collector's outcome that is the inventory's: its errors and its time.
pub fn from_inventory(ctx: &Context, families: Box<dyn Families>) -> Collected<Box<dyn Families>> {
    Collected {
        data: families,
        errors: ctx.inventory.errors.clone(),
        known: Vec::new(),
        duration: ctx.inventory.duration,
        unreachable: Vec::new(),
    }
}

/// The seed's families, written from the inventory when it was fetched without error.
#[derive(Debug)]
pub struct Seed;

impl Families for Seed {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        if !view.inventory.succeeded() {
            return Ok(());
        }
        let unreachable: Vec<&str> = view.unreachable.iter().map(String::as_str).collect();
        encode(&view.inventory.data, &unreachable, encoder)
    }
}

pub async fn fetch(dispatcher: &Dispatcher) -> Collected<Rows> {
    let started = Instant::now();
    let answer = dispatcher
        .call(
            PATH,
            // As it arrives: the whole body is never held (22 MB at 50,000 guests).
            |c| async move { crate::pve::stream::get::<super::resource::Answer>(&c, PATH).await },
        )
        .await;
    let (mut data, mut errors) = match answer {
        Ok(answer) => (answer.data, Vec::new()),
        Err(error) => (Rows::default(), vec![error]),
    };
    // PVE gives every row an id and a type: rows without them make a broken answer. The
    // good rows still count, the collector reports the failure.
    let before = data.len();
    data.retain(|r| r.id.known().is_some() && r.type_.known().is_some());
    if data.len() < before {
        errors.push(ApiError {
            endpoint: "-".into(),
            path: PATH.into(),
            kind: ErrorKind::Decode(format!("{} rows without id or type", before - data.len())),
        });
    }
    Collected {
        data,
        errors,
        known: Vec::new(),
        duration: started.elapsed(),
        unreachable: Vec::new(),
    }
}

/// A storage row's name: its `storage`, else the last part of its id (`storage/pve1/local`).
pub fn storage_name(row: &Resource) -> Option<&str> {
    named(row.storage()).or_else(|| named(row.id.known()?.rsplit('/').next()))
}

pub fn kind(row: &Resource) -> &str {
    row.type_.known().unwrap_or("")
}

/// The nodes whose status is `online`: the ones worth asking for their own details.
pub fn online_nodes(rows: &Rows) -> Vec<String> {
    rows.iter()
        .filter(|r| kind(r) == "node" && r.status.known() == Some("online"))
        .filter_map(|r| named(r.node.known()).map(str::to_owned))
        .collect()
}

/// A guest's id: `vmid`, or the number in `qemu/100` when `vmid` is missing. Inline: written
/// for every guest's series without an allocation.
pub fn vmid(row: &Resource) -> compact_str::CompactString {
    use compact_str::ToCompactString;
    match row.vmid.known() {
        Some(vmid) => vmid.to_compact_string(),
        None => {
            let id = row.id.known().unwrap_or("");
            id.rsplit('/').next().unwrap_or("").into()
        }
    }
}

/// A guest: a VM or container that is not a template.
pub fn is_guest(row: &Resource) -> bool {
    matches!(kind(row), "qemu" | "lxc") && row.template.known() != Some(true)
}

#[derive(Default)]
struct NodeSums {
    up: bool,
    cpus: Option<f64>,
    memory: Option<f64>,
    cpus_allocated: f64,
    memory_allocated: f64,
}

/// A guest's labels, read from its row when they are compared or written: 8 bytes a series
/// (50,000 at the largest clusters), nothing copied or allocated. They sort as the label
/// values do (host, name, type, then the vmid as text).
struct GuestLabels<'a>(&'a Resource);

impl<'a> GuestLabels<'a> {
    fn host_name_type(&self) -> [&'a str; 3] {
        let row = self.0;
        [
            row.node.known().unwrap_or(""),
            row.name.known().unwrap_or(""),
            kind(row),
        ]
    }
}

impl Ord for GuestLabels<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.host_name_type()
            .cmp(&other.host_name_type())
            .then_with(|| vmid(self.0).cmp(&vmid(other.0)))
    }
}

impl PartialOrd for GuestLabels<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for GuestLabels<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for GuestLabels<'_> {}

impl prometheus_client::encoding::EncodeLabelSet for GuestLabels<'_> {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder,
    ) -> std::fmt::Result {
        let [host, name, kind] = self.host_name_type();
        let vmid = vmid(self.0);
        let labels = [
            ("host", host),
            ("name", name),
            ("type", kind),
            ("vmid", vmid.as_str()),
        ];
        labels.encode(encoder)
    }
}

/// `unreachable`: nodes listed online whose own requests answered 595/596; they count as down.
pub fn encode(
    rows: &Rows,
    unreachable: &[&str],
    encoder: &mut DescriptorEncoder,
) -> std::fmt::Result {
    let mut nodes: BTreeMap<&str, NodeSums> = BTreeMap::new();
    for row in rows.iter().filter(|r| kind(r) == "node") {
        let Some(name) = named(row.node.known()) else {
            continue;
        };
        let sums = nodes.entry(name).or_default();
        sums.up = row.status.known() == Some("online") && !unreachable.contains(&name);
        sums.cpus = row.maxcpu.known();
        sums.memory = row.maxmem.known().map(|m| m as f64);
    }
    // One series per guest (50,000 at the largest clusters): labels borrowed from the rows,
    // not copied into a label set per series.
    // A row without a vmid (none, and none in its id) names no guest.
    let guests = || rows.iter().filter(|r| is_guest(r) && !vmid(r).is_empty());
    // Made to its size: grown by doubling it took up to twice as much.
    let mut guests_up: Vec<(GuestLabels<'_>, f64)> = Vec::with_capacity(guests().count());
    for row in guests() {
        let host = row.node.known().unwrap_or("");
        if let Some(sums) = nodes.get_mut(host) {
            sums.cpus_allocated += row.maxcpu.known().unwrap_or(0.0);
            sums.memory_allocated += row.maxmem.known().unwrap_or(0) as f64;
        }
        let up = row.status.known() == Some("running");
        guests_up.push((GuestLabels(row), f64::from(u8::from(up))));
    }

    let cluster_cpus_allocated: f64 = nodes.values().map(|n| n.cpus_allocated).sum();
    let cluster_cpus: f64 = nodes.values().filter_map(|n| n.cpus).sum();
    let cluster_memory_allocated: f64 = nodes.values().map(|n| n.memory_allocated).sum();
    let cluster_memory: f64 = nodes.values().filter_map(|n| n.memory).sum();
    gauge(
        encoder,
        "proxmox_cluster_cpus_allocated",
        "vCPUs allocated to the cluster's guests, running or not (templates excluded).",
        cluster_cpus_allocated,
    )?;
    gauge(
        encoder,
        "proxmox_cluster_cpus_total",
        "CPU threads of the cluster's online nodes.",
        cluster_cpus,
    )?;
    gauge(
        encoder,
        "proxmox_cluster_memory_allocated_bytes",
        "Memory allocated to the cluster's guests, running or not (templates excluded), in bytes.",
        cluster_memory_allocated,
    )?;
    gauge(
        encoder,
        "proxmox_cluster_memory_total_bytes",
        "Memory of the cluster's online nodes, in bytes.",
        cluster_memory,
    )?;
    gauge_family(
        encoder,
        "proxmox_guest_up",
        "Whether a guest (VM or container) is running (1) or not (0).",
        guests_up,
    )?;

    let per_node = |value: &dyn Fn(&NodeSums) -> Option<f64>| -> Vec<Sample> {
        nodes
            .iter()
            .filter_map(|(name, sums)| Some((labels([("name", name)]), value(sums)?)))
            .collect()
    };
    gauge_family(
        encoder,
        "proxmox_node_cpus_allocated",
        "vCPUs allocated to a node's guests, running or not (templates excluded).",
        per_node(&|n| Some(n.cpus_allocated)),
    )?;
    gauge_family(
        encoder,
        "proxmox_node_cpus_total",
        "CPU threads of a node (absent while the node is offline).",
        per_node(&|n| n.cpus),
    )?;
    gauge_family(
        encoder,
        "proxmox_node_memory_allocated_bytes",
        "Memory allocated to a node's guests, running or not (templates excluded), in bytes.",
        per_node(&|n| Some(n.memory_allocated)),
    )?;
    gauge_family(
        encoder,
        "proxmox_node_memory_total_bytes",
        "Memory of a node in bytes (absent while the node is offline).",
        per_node(&|n| n.memory),
    )?;

    let mut storage_total: Vec<Sample> = Vec::new();
    let mut storage_used: Vec<Sample> = Vec::new();
    for row in rows.iter().filter(|r| kind(r) == "storage") {
        let Some(name) = storage_name(row) else {
            continue;
        };
        let set = labels([
            ("node", row.node.known().unwrap_or("")),
            ("storage", name),
            ("type", row.plugintype().unwrap_or("")),
        ]);
        if let Some(total) = row.maxdisk.known() {
            storage_total.push((set.clone(), total as f64));
        }
        if let Some(used) = row.disk.known() {
            storage_used.push((set, used as f64));
        }
    }
    gauge_family(
        encoder,
        "proxmox_node_storage_total_bytes",
        "Size of a storage as seen from a node, in bytes.",
        storage_total,
    )?;
    gauge_family(
        encoder,
        "proxmox_node_storage_used_bytes",
        "Space used on a storage as seen from a node, in bytes.",
        storage_used,
    )?;

    gauge_family(
        encoder,
        "proxmox_node_up",
        "Whether a node is online and reachable through the API (1) or not (0).",
        per_node(&|n| Some(f64::from(u8::from(n.up))))
            .into_iter()
            .map(|(mut set, v)| {
                set.push(("type", "node".to_owned()));
                (set, v)
            })
            .collect(),
    )
}
