//! prometheus-pve-exporter's output, for `/pve`: the same families, TYPEs, label names and
//! values, computed from the same API answers the same way, so its users keep their
//! Prometheus jobs, dashboards and alerts. Each of its collectors is a part here, named as its
//! `--collector.NAME` flag names it; `cluster=1` runs the cluster-wide parts, `node=1` the parts
//! about the node the target points at (the `local` entry of `/cluster/status`).
//!
//! Where it is slow, this is not: `/cluster/status` is asked once per collection, not once per
//! part; `/cluster/resources` once, not three times; the guest configurations behind
//! `pve_onboot_status` concurrently and kept for 5 minutes; each replication job's status is
//! read from the job list (the same data PVE answers per job). A failing part costs its own
//! families, where the peer fails the whole scrape.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use crate::collectors::cluster::Entry;
use crate::collectors::cluster_resources::{Resource, kind};
use crate::collectors::replication::Job;
use crate::collectors::{
    BoxFuture, Collected, Collector, Context, Cost, Enabled, Families, Nothing, Sample, Spec,
    Target, View, gauge_family, sorted_family,
};
use crate::pve::{ApiError, Dispatcher, ErrorKind, Known};

/// One of the peer's collectors.
pub struct Part {
    spec: &'static Spec,
    /// Cluster-wide (`cluster=1`) rather than about the target's node (`node=1`).
    cluster: bool,
    fetch: Fetch,
}

/// How a part fetches.
type Fetch = for<'a> fn(&'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>>;

impl Collector for Part {
    fn spec(&self) -> &'static Spec {
        self.spec
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        (self.fetch)(ctx)
    }
}

macro_rules! part {
    ($static:ident, $name:literal, $cluster:expr, $cost:expr, $refresh:expr, [$($op:literal),*], $fetch:ident) => {
        static $static: Part = Part {
            spec: &Spec {
                name: $name,
                enabled_by_default: true,
                operations: &[$($op),*],
                cost: $cost,
                refresh: $refresh,
            },
            cluster: $cluster,
            fetch: |ctx| Box::pin($fetch(ctx)),
        };
    };
}

part!(
    STATUS,
    "status",
    true,
    Cost::One,
    None,
    ["GET /cluster/status"],
    status
);
part!(
    RESOURCES,
    "resources",
    true,
    Cost::Nothing,
    None,
    [],
    resources
);
part!(
    NODE,
    "node",
    true,
    Cost::One,
    None,
    ["GET /cluster/status"],
    node_info
);
part!(
    CLUSTER,
    "cluster",
    true,
    Cost::One,
    None,
    ["GET /cluster/status"],
    cluster_info
);
part!(
    VERSION,
    "version",
    true,
    Cost::One,
    None,
    ["GET /version"],
    version
);
part!(
    BACKUP_INFO,
    "backup_info",
    true,
    Cost::One,
    None,
    [
        "GET /cluster/status",
        "GET /cluster/backup-info/not-backed-up"
    ],
    backup_info
);
part!(
    QDEVICE,
    "qdevice",
    true,
    Cost::One,
    None,
    ["GET /cluster/status", "GET /cluster/config/qdevice"],
    qdevice
);
part!(
    SUBSCRIPTION,
    "subscription",
    false,
    Cost::One,
    None,
    ["GET /cluster/status", "GET /nodes/{node}/subscription"],
    subscription
);
part!(
    CONFIG,
    "config",
    false,
    Cost::PerGuest,
    Some(Duration::from_secs(300)),
    [
        "GET /cluster/status",
        "GET /nodes/{node}/qemu",
        "GET /nodes/{node}/lxc",
        "GET /nodes/{node}/qemu/{vmid}/config",
        "GET /nodes/{node}/lxc/{vmid}/config"
    ],
    onboot
);
part!(
    REPLICATION,
    "replication",
    false,
    Cost::One,
    None,
    ["GET /cluster/status", "GET /nodes/{node}/replication"],
    replication
);

/// Every part, in the peer's order.
pub static PARTS: &[&Part] = &[
    &STATUS,
    &RESOURCES,
    &NODE,
    &CLUSTER,
    &VERSION,
    &BACKUP_INFO,
    &QDEVICE,
    &SUBSCRIPTION,
    &CONFIG,
    &REPLICATION,
];

/// The parts a `/pve` scrape with `cluster` and `node` runs.
pub fn enabled(cluster: bool, node: bool) -> Vec<Enabled> {
    PARTS
        .iter()
        .filter(|p| if p.cluster { cluster } else { node })
        .map(|&p| Enabled {
            collector: p,
            refresh: p.spec.refresh,
        })
        .collect()
}

/// Families as the peer writes them: each a name, a type and its samples.
#[derive(Debug, Default)]
struct Written(Vec<(&'static str, &'static str, MetricType, Vec<Sample>)>);

impl Written {
    fn gauge(mut self, name: &'static str, help: &'static str, samples: Vec<Sample>) -> Self {
        self.0.push((name, help, MetricType::Gauge, samples));
        self
    }
    fn boxed(self) -> Box<dyn Families> {
        Box::new(self)
    }
}

impl Families for Written {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        for (name, help, _, samples) in &self.0 {
            gauge_family(encoder, name, help, samples.clone())?;
        }
        Ok(())
    }
}

/// A part's outcome from one `/cluster/status` and what `then` makes of it.
async fn with_status<F, Fut>(ctx: &Context, then: F) -> Collected<Box<dyn Families>>
where
    F: FnOnce(Arc<Vec<Entry>>) -> Fut,
    Fut: Future<Output = Result<Box<dyn Families>, ApiError>>,
{
    let started = std::time::Instant::now();
    let result = match ctx.cluster_status().await {
        Ok(status) => then(status).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(families) => Collected {
            data: families,
            errors: Vec::new(),
            known: Vec::new(),
            duration: started.elapsed(),
            unreachable: Vec::new(),
        },
        Err(error) => Collected::failed(Box::new(Nothing), error, started.elapsed()),
    }
}

fn is(entry: &Entry, kind: &str) -> bool {
    entry.type_.known() == Some(kind)
}

/// The name of the node whose API answered (`local`), for the node parts.
fn local_node(status: &[Entry], path: &str) -> Result<String, ApiError> {
    status
        .iter()
        .find(|e| is(e, "node") && e.local.known() == Some(true))
        .and_then(|e| e.name.known().map(str::to_owned))
        .ok_or_else(|| ApiError {
            endpoint: "-".into(),
            path: path.into(),
            kind: ErrorKind::Decode("/cluster/status names no local node".into()),
        })
}

/// `cluster/NAME` of the cluster entry.
fn cluster_id(status: &[Entry]) -> Option<String> {
    let name = status.iter().find(|e| is(e, "cluster"))?.name.known()?;
    Some(format!("cluster/{name}"))
}

fn bool_text(b: Option<bool>) -> String {
    b.map_or(String::new(), |b| u8::from(b).to_string())
}

// pve_up: nodes and the cluster from /cluster/status, guests and storage from the inventory.
async fn status(ctx: &Context) -> Collected<Box<dyn Families>> {
    let started = std::time::Instant::now();
    let mut errors: Vec<ApiError> = ctx.inventory.errors.clone();
    let mut up: Vec<Sample> = Vec::new();
    match ctx.cluster_status().await {
        Ok(status) => {
            for entry in status.iter() {
                let (id, value) = match entry.type_.known() {
                    Some("node") => (entry.id.known().map(str::to_owned), entry.online.known()),
                    Some("cluster") => (cluster_id(&status), entry.quorate.known()),
                    _ => continue,
                };
                if let (Some(id), Some(value)) = (id, value) {
                    up.push((vec![("id", id)], f64::from(u8::from(value))));
                }
            }
        }
        Err(e) => errors.insert(0, e),
    }
    Collected {
        data: Box::new(Up(up)),
        errors,
        known: Vec::new(),
        duration: started.elapsed(),
        unreachable: Vec::new(),
    }
}

/// `pve_up`: the nodes' and the cluster's samples, and the inventory's guests and storages
/// (written at encode time).
#[derive(Debug)]
struct Up(Vec<Sample>);

impl Families for Up {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut samples = self.0.clone();
        for row in &view.inventory.data {
            let up = match kind(row) {
                "qemu" | "lxc" => row.status.known() == Some("running"),
                "storage" => row.status.known() == Some("available"),
                _ => continue,
            };
            if let Some(id) = row.id.known() {
                samples.push((vec![("id", id.to_owned())], f64::from(u8::from(up))));
            }
        }
        gauge_family(
            encoder,
            "pve_up",
            "Whether a node is online, a cluster quorate, a guest running, a storage available.",
            samples,
        )
    }
}

// The resources part: everything from the inventory, at encode time (a series per guest and
// field: nothing is copied).
async fn resources(ctx: &Context) -> Collected<Box<dyn Families>> {
    crate::collectors::cluster_resources::from_inventory(ctx, Box::new(Resources))
}

#[derive(Debug)]
struct Resources;

/// A field of a `/cluster/resources` row as the peer writes it: present → its value.
type Field = fn(&Resource) -> Option<f64>;

fn int<K>(v: &K) -> Option<f64>
where
    K: for<'a> Known<Value<'a> = i64> + 'static,
{
    v.known().map(|n| n as f64)
}

fn num<K>(v: &K) -> Option<f64>
where
    K: for<'a> Known<Value<'a> = f64> + 'static,
{
    v.known()
}

/// The gauges, in the peer's order: name, help, field.
const GAUGES: [(&str, &str, Field); 12] = [
    (
        "pve_disk_size_bytes",
        "Storage size, or a guest's root disk size, in bytes.",
        |r| int(&r.maxdisk),
    ),
    (
        "pve_disk_usage_bytes",
        "Storage used, or a guest's root disk used, in bytes.",
        |r| int(&r.disk),
    ),
    (
        "pve_memory_size_bytes",
        "Memory of a node or guest, in bytes.",
        |r| int(&r.maxmem),
    ),
    (
        "pve_memory_usage_bytes",
        "Memory used by a node or guest, in bytes.",
        |r| int(&r.mem),
    ),
    (
        "pve_network_transmit_bytes",
        "Bytes a guest sent since it started (deprecated: the _total counter).",
        |r| int(&r.netout),
    ),
    (
        "pve_network_receive_bytes",
        "Bytes a guest received since it started (deprecated: the _total counter).",
        |r| int(&r.netin),
    ),
    (
        "pve_disk_write_bytes",
        "Bytes a guest wrote to its disks since it started (deprecated: the _total counter).",
        |r| int(&r.diskwrite),
    ),
    (
        "pve_disk_read_bytes",
        "Bytes a guest read from its disks since it started (deprecated: the _total counter).",
        |r| int(&r.diskread),
    ),
    (
        "pve_cpu_usage_ratio",
        "CPU use of a node or guest, as a ratio of its CPUs.",
        |r| num(&r.cpu),
    ),
    ("pve_cpu_usage_limit", "CPUs of a node or guest.", |r| {
        num(&r.maxcpu)
    }),
    (
        "pve_uptime_seconds",
        "Uptime of a node or guest, in seconds.",
        |r| int(&r.uptime),
    ),
    (
        "pve_storage_shared",
        "Whether a storage is shared by the cluster's nodes.",
        |r| r.shared.known().map(|b| f64::from(u8::from(b))),
    ),
];

/// The counters: family name (the sample adds `_total`), help, field.
const COUNTERS: [(&str, &str, Field); 4] = [
    (
        "pve_network_transmit_bytes",
        "Bytes a guest sent since it started.",
        |r| int(&r.netout),
    ),
    (
        "pve_network_receive_bytes",
        "Bytes a guest received since it started.",
        |r| int(&r.netin),
    ),
    (
        "pve_disk_written_bytes",
        "Bytes a guest wrote to its disks since it started.",
        |r| int(&r.diskwrite),
    ),
    (
        "pve_disk_read_bytes",
        "Bytes a guest read from its disks since it started.",
        |r| int(&r.diskread),
    ),
];

const GUEST_HA_STATES: [&str; 11] = [
    "stopped",
    "request_stop",
    "request_start",
    "request_start_balance",
    "started",
    "fence",
    "recovery",
    "migrate",
    "relocate",
    "freeze",
    "error",
];
const NODE_HA_STATES: [&str; 5] = ["online", "maintenance", "unknown", "fence", "gone"];
const LOCKS: [&str; 9] = [
    "backup",
    "clone",
    "create",
    "migrate",
    "rollback",
    "snapshot",
    "snapshot-delete",
    "suspended",
    "suspending",
];

impl Families for Resources {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        if !view.inventory.succeeded() {
            return Ok(());
        }
        let rows = &view.inventory.data;
        // Labels borrow from the rows: nothing is copied per series.
        fn id(r: &Resource) -> &str {
            r.id.known().unwrap_or("")
        }
        for (name, help, field) in GAUGES {
            let samples = rows
                .iter()
                .filter_map(|r| Some(([("id", id(r))], field(r)?)));
            sorted_family(encoder, name, help, MetricType::Gauge, samples)?;
        }
        for (name, help, field) in COUNTERS {
            let samples = rows
                .iter()
                .filter_map(|r| Some(([("id", id(r))], field(r)?)));
            sorted_family(encoder, name, help, MetricType::Counter, samples)?;
        }
        let per_state = |states_of: fn(&str) -> &'static [&'static str],
                         value: fn(&Resource) -> Option<&str>| {
            rows.iter().flat_map(move |r| {
                let current = value(r);
                states_of(kind(r)).iter().map(move |s| {
                    (
                        [("id", id(r)), ("state", *s)],
                        f64::from(u8::from(current == Some(*s))),
                    )
                })
            })
        };
        sorted_family(
            encoder,
            "pve_ha_state",
            "HA state of a node or HA-managed guest: 1 for the current one.",
            MetricType::Gauge,
            per_state(
                |k| match k {
                    "qemu" | "lxc" => &GUEST_HA_STATES,
                    "node" => &NODE_HA_STATES,
                    _ => &[],
                },
                |r| r.hastate(),
            ),
        )?;
        sorted_family(
            encoder,
            "pve_lock_state",
            "A guest's configuration lock: 1 for the current one.",
            MetricType::Gauge,
            per_state(
                |k| match k {
                    "qemu" | "lxc" => &LOCKS,
                    _ => &[],
                },
                |r| r.lock(),
            ),
        )?;
        fn text(v: Option<&str>) -> Cow<'_, str> {
            Cow::Borrowed(v.unwrap_or(""))
        }
        let guests = rows
            .iter()
            .filter(|r| matches!(kind(r), "qemu" | "lxc"))
            .map(|r| {
                let labels = [
                    ("id", Cow::Borrowed(id(r))),
                    ("node", text(r.node.known())),
                    ("name", text(r.name.known())),
                    ("type", Cow::Borrowed(kind(r))),
                    ("template", Cow::Owned(bool_text(r.template.known()))),
                    ("tags", text(r.tags())),
                ];
                (labels, 1.0)
            });
        sorted_family(
            encoder,
            "pve_guest_info",
            "A guest, always 1.",
            MetricType::Gauge,
            guests,
        )?;
        let storages = rows.iter().filter(|r| kind(r) == "storage").map(|r| {
            let mut content: Vec<&str> = r.content().unwrap_or("").split(',').collect();
            content.sort_unstable();
            let labels = [
                ("id", Cow::Borrowed(id(r))),
                ("node", text(r.node.known())),
                ("storage", text(r.storage())),
                ("plugintype", text(r.plugintype())),
                ("content", Cow::Owned(content.join(","))),
            ];
            (labels, 1.0)
        });
        sorted_family(
            encoder,
            "pve_storage_info",
            "A storage, always 1.",
            MetricType::Gauge,
            storages,
        )
    }
}

async fn node_info(ctx: &Context) -> Collected<Box<dyn Families>> {
    with_status(ctx, |status| async move {
        let samples = status
            .iter()
            .filter(|e| is(e, "node"))
            .map(|e| {
                let labels = vec![
                    ("id", e.id.known().unwrap_or("").to_owned()),
                    ("level", e.level.known().unwrap_or("").to_owned()),
                    ("name", e.name.known().unwrap_or("").to_owned()),
                    (
                        "nodeid",
                        e.nodeid.known().map_or(String::new(), |n| n.to_string()),
                    ),
                ];
                (labels, 1.0)
            })
            .collect::<Vec<_>>();
        // The peer writes no family at all without a node.
        if samples.is_empty() {
            return Ok(Box::new(Nothing) as Box<dyn Families>);
        }
        Ok(Written::default()
            .gauge("pve_node_info", "A node of the cluster, always 1.", samples)
            .boxed())
    })
    .await
}

async fn cluster_info(ctx: &Context) -> Collected<Box<dyn Families>> {
    with_status(ctx, |status| async move {
        let Some(entry) = status.iter().find(|e| is(e, "cluster")) else {
            return Ok(Box::new(Nothing) as Box<dyn Families>);
        };
        // The peer's labels: every key of the entry but `type` and `name`, `id` made
        // `cluster/NAME`.
        let mut labels = vec![("id", cluster_id(&status).unwrap_or_default())];
        let optional: [(&'static str, Option<String>); 8] = [
            ("ip", entry.ip.known().map(str::to_owned)),
            ("level", entry.level.known().map(str::to_owned)),
            ("local", entry.local.known().map(|b| bool_text(Some(b)))),
            ("nodeid", entry.nodeid.known().map(|n| n.to_string())),
            ("nodes", entry.nodes.known().map(|n| n.to_string())),
            ("online", entry.online.known().map(|b| bool_text(Some(b)))),
            ("quorate", entry.quorate.known().map(|b| bool_text(Some(b)))),
            ("version", entry.version.known().map(|n| n.to_string())),
        ];
        labels.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
        Ok(Written::default()
            .gauge(
                "pve_cluster_info",
                "The cluster, always 1.",
                vec![(labels, 1.0)],
            )
            .boxed())
    })
    .await
}

async fn version(ctx: &Context) -> Collected<Box<dyn Families>> {
    crate::collectors::cluster_wide(
        ctx,
        "/version",
        |c| async move { c.get_version().send().await },
        |answer| {
            let v = answer.data;
            let labels: Vec<(&'static str, String)> = [
                ("release", v.release.known()),
                ("repoid", v.repoid.known()),
                ("version", v.version.known()),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?.to_owned())))
            .collect();
            if labels.is_empty() {
                return Box::new(Nothing);
            }
            Written::default()
                .gauge(
                    "pve_version_info",
                    "The Proxmox VE version, always 1.",
                    vec![(labels, 1.0)],
                )
                .boxed()
        },
    )
    .await
}

async fn backup_info(ctx: &Context) -> Collected<Box<dyn Families>> {
    with_status(ctx, |status| async move {
        let answer = ctx
            .dispatcher
            .call("/cluster/backup-info/not-backed-up", |c| async move {
                c.get_cluster_backup_info_not_backed_up().send().await
            })
            .await?;
        let guests: Vec<Sample> = answer
            .data
            .iter()
            .filter_map(|g| {
                let id = format!("{}/{}", g.type_.known()?, g.vmid.known()?);
                Some((vec![("id", id)], 1.0))
            })
            .collect();
        // As the peer: the first entry's name, a standalone node's own.
        let total = match status.first().and_then(|e| e.name.known()) {
            Some(name) => vec![(
                vec![("id", format!("cluster/{name}"))],
                answer.data.len() as f64,
            )],
            None => Vec::new(),
        };
        Ok(Written::default()
            .gauge(
                "pve_not_backed_up_total",
                "Guests no backup job covers.",
                total,
            )
            .gauge(
                "pve_not_backed_up_info",
                "A guest no backup job covers, always 1.",
                guests,
            )
            .boxed())
    })
    .await
}

const QDEVICE_KEYS: [(&str, &str); 5] = [
    ("Model", "model"),
    ("Algorithm", "algorithm"),
    ("QNetd host", "qnetd_host"),
    ("Tie-breaker", "tie_breaker"),
    ("State", "state"),
];

async fn qdevice(ctx: &Context) -> Collected<Box<dyn Families>> {
    with_status(ctx, |status| async move {
        let Some(id) = cluster_id(&status) else {
            return Ok(Box::new(Nothing) as Box<dyn Families>);
        };
        let answer = ctx
            .dispatcher
            .call("/cluster/config/qdevice", |c| async move {
                c.get_cluster_config_qdevice().send().await
            })
            .await;
        let device = match answer {
            Ok(answer) => answer.data,
            // Any answer but success means no QDevice, for the peer as here.
            Err(e) if matches!(e.kind, ErrorKind::Status(_) | ErrorKind::Refused { .. }) => {
                return Ok(Box::new(Nothing) as Box<dyn Families>);
            }
            Err(e) => return Err(e),
        };
        if device.is_empty() {
            return Ok(Box::new(Nothing) as Box<dyn Families>);
        }
        let mut labels = vec![("id", id.clone())];
        for (key, label) in QDEVICE_KEYS {
            let value = match device.get(key) {
                None => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            labels.push((label, value));
        }
        let connected = device.get("State").and_then(|s| s.as_str()) == Some("Connected");
        Ok(Written::default()
            .gauge(
                "pve_qdevice_up",
                "Whether the cluster's QDevice is connected.",
                vec![(vec![("id", id)], f64::from(u8::from(connected)))],
            )
            .gauge(
                "pve_qdevice_info",
                "The cluster's QDevice, always 1.",
                vec![(labels, 1.0)],
            )
            .boxed())
    })
    .await
}

const SUBSCRIPTION_STATES: [&str; 6] = [
    "new",
    "notfound",
    "active",
    "invalid",
    "expired",
    "suspended",
];

async fn subscription(ctx: &Context) -> Collected<Box<dyn Families>> {
    with_status(ctx, |status| async move {
        let node = local_node(&status, "/nodes/{local}/subscription")?;
        let s =
            crate::collectors::subscription::fetch(ctx.dispatcher.clone(), node.clone()).await?;
        let id = format!("node/{node}");
        let level = s.level.known().unwrap_or("unknown").to_owned();
        let current = s.status.known().unwrap_or("unknown");
        let states = SUBSCRIPTION_STATES
            .iter()
            .map(|state| {
                let labels = vec![("id", id.clone()), ("status", (*state).to_owned())];
                (labels, f64::from(u8::from(current == *state)))
            })
            .collect();
        let due: Vec<Sample> = s
            .nextduedate
            .known()
            .filter(|d| !d.is_empty())
            .and_then(crate::collectors::subscription::parse_date)
            .map(|at| at as f64)
            .map(|at| (vec![("id", id.clone())], at))
            .into_iter()
            .collect();
        Ok(Written::default()
            .gauge(
                "pve_subscription_info",
                "The node's subscription level, always 1.",
                vec![(vec![("id", id.clone()), ("level", level)], 1.0)],
            )
            .gauge(
                "pve_subscription_status",
                "The node's subscription status: 1 for the current one.",
                states,
            )
            .gauge(
                "pve_subscription_next_due_timestamp_seconds",
                "When the node's subscription is next due, as a Unix time (midnight UTC).",
                due,
            )
            .boxed())
    })
    .await
}

/// A guest of the local node whose configuration is asked.
#[derive(Clone, Debug)]
struct LocalGuest {
    node: String,
    kind: &'static str,
    vmid: i64,
}

impl Target for LocalGuest {
    fn node(&self) -> &str {
        &self.node
    }
    fn path(&self) -> String {
        format!("/nodes/{}/{}/{}/config", self.node, self.kind, self.vmid)
    }
}

async fn onboot(ctx: &Context) -> Collected<Box<dyn Families>> {
    let started = std::time::Instant::now();
    let status = match ctx.cluster_status().await {
        Ok(status) => status,
        Err(e) => return Collected::failed(Box::new(Nothing), e, started.elapsed()),
    };
    let node = match local_node(&status, "/nodes/{local}/qemu") {
        Ok(node) => node,
        Err(e) => return Collected::failed(Box::new(Nothing), e, started.elapsed()),
    };
    let (qemu_path, lxc_path) = (format!("/nodes/{node}/qemu"), format!("/nodes/{node}/lxc"));
    let (qemu, lxc) = tokio::join!(
        ctx.dispatcher.call(&qemu_path, |c| {
            let node = node.clone();
            async move { c.get_nodes_node_qemu().node(node).send().await }
        }),
        ctx.dispatcher.call(&lxc_path, |c| {
            let node = node.clone();
            async move { c.get_nodes_node_lxc().node(node).send().await }
        }),
    );
    let mut errors = Vec::new();
    let mut guests = Vec::new();
    match qemu {
        Ok(list) => guests.extend(list.data.iter().filter_map(|g| {
            Some(LocalGuest {
                node: node.clone(),
                kind: "qemu",
                vmid: g.vmid.known()?,
            })
        })),
        Err(e) => errors.push(e),
    }
    match lxc {
        Ok(list) => guests.extend(list.data.iter().filter_map(|g| {
            Some(LocalGuest {
                node: node.clone(),
                kind: "lxc",
                vmid: g.vmid.known()?,
            })
        })),
        Err(e) => errors.push(e),
    }
    let mut configs = ctx.fan_out(guests, config_onboot).await;
    configs.errors.splice(0..0, errors);
    configs.duration = started.elapsed();
    configs.map(|answers| {
        let samples = answers
            .into_iter()
            .filter_map(|(g, onboot)| {
                let labels = vec![
                    ("id", format!("{}/{}", g.kind, g.vmid)),
                    ("node", g.node.clone()),
                    ("type", g.kind.to_owned()),
                ];
                Some((labels, f64::from(u8::from(onboot?))))
            })
            .collect();
        Written::default()
            .gauge(
                "pve_onboot_status",
                "A guest's onboot setting, where it has one.",
                samples,
            )
            .boxed()
    })
}

async fn config_onboot(
    dispatcher: Arc<Dispatcher>,
    g: LocalGuest,
) -> Result<Option<bool>, ApiError> {
    let path = g.path();
    let (node, vmid) = (g.node.clone(), g.vmid as u64);
    // The same request for either kind, through its own generated call.
    macro_rules! onboot_of {
        ($call:ident) => {
            dispatcher
                .call(&path, |c| {
                    let node = node.clone();
                    async move { c.$call().node(node).vmid(vmid).send().await }
                })
                .await
                .map(|answer| answer.data.onboot.known())
        };
    }
    if g.kind == "qemu" {
        onboot_of!(get_nodes_node_qemu_vmid_config)
    } else {
        onboot_of!(get_nodes_node_lxc_vmid_config)
    }
}

/// A replication job's value, when it has one.
type JobValue = fn(&Job) -> Option<f64>;

const REPLICATION_VALUES: [(&str, &str, JobValue); 5] = [
    (
        "pve_replication_duration_seconds",
        "How long a replication job's last run took, in seconds.",
        |j| j.duration.known(),
    ),
    (
        "pve_replication_last_sync_timestamp_seconds",
        "When a replication job last synced, as a Unix time.",
        |j| int(&j.last_sync),
    ),
    (
        "pve_replication_last_try_timestamp_seconds",
        "When a replication job last ran, as a Unix time.",
        |j| int(&j.last_try),
    ),
    (
        "pve_replication_next_sync_timestamp_seconds",
        "When a replication job runs next, as a Unix time.",
        |j| int(&j.next_sync),
    ),
    (
        "pve_replication_failed_syncs",
        "A replication job's failed runs in a row.",
        |j| int(&j.fail_count),
    ),
];

async fn replication(ctx: &Context) -> Collected<Box<dyn Families>> {
    with_status(ctx, |status| async move {
        let node = local_node(&status, "/nodes/{local}/replication")?;
        let jobs =
            crate::collectors::replication::fetch(ctx.dispatcher.clone(), node.clone()).await?;
        let text = |v: Option<&str>| v.unwrap_or("").to_owned();
        let mut written = Written::default();
        for (name, help, value) in REPLICATION_VALUES {
            let samples = jobs
                .iter()
                .filter_map(|j| Some((vec![("id", text(j.id.known()))], value(j)?)))
                .collect();
            written = written.gauge(name, help, samples);
        }
        let info = jobs
            .iter()
            .map(|j| {
                let labels = vec![
                    ("id", text(j.id.known())),
                    ("type", text(j.type_.known())),
                    ("source", format!("node/{}", text(j.source.known()))),
                    ("target", format!("node/{}", text(j.target.known()))),
                    (
                        "guest",
                        format!(
                            "{}/{}",
                            text(j.vmtype.known()),
                            j.guest.known().map_or(String::new(), |g| g.to_string())
                        ),
                    ),
                ];
                (labels, 1.0)
            })
            .collect();
        Ok(written
            .gauge("pve_replication_info", "A replication job, always 1.", info)
            .boxed())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_and_node_pick_the_parts() {
        let names =
            |c, n| -> Vec<&str> { enabled(c, n).iter().map(|e| e.collector.name()).collect() };
        assert_eq!(
            names(true, false),
            [
                "status",
                "resources",
                "node",
                "cluster",
                "version",
                "backup_info",
                "qdevice"
            ]
        );
        assert_eq!(
            names(false, true),
            ["subscription", "config", "replication"]
        );
        assert_eq!(names(true, true).len(), 10);
        assert!(names(false, false).is_empty());
    }
}
