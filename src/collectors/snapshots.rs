//! `snapshots`: `/nodes/{node}/{qemu|lxc}/{vmid}/snapshot` for every guest (templates aside)
//! on an online node: how many snapshots each guest has and how old each one is. One request
//! per guest, swept over 5 minutes by default ([`super::sweep`]).

use std::collections::HashSet;
use std::sync::Arc;

use compact_str::CompactString;

use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use super::cluster_resources::{Rows, is_guest, kind, vmid};
use super::guest::sorted_tags;
use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Reply, Spec};
use super::{Target, View, sorted_family, sweep, unix_seconds};
use prometheus_client::metrics::MetricType;
use crate::pve::{ApiError, Dispatcher, ErrorKind, Known};

pub const NAME: &str = "snapshots";

pub struct Snapshots;
pub static COLLECTOR: Snapshots = Snapshots;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: false,
    operations: &[
            "GET /nodes/{node}/qemu/{vmid}/snapshot",
            "GET /nodes/{node}/lxc/{vmid}/snapshot",
        ],
    cost: Cost::PerGuest,
    refresh: Some(Duration::from_secs(300)),
};

impl Collector for Snapshots {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move {
            let guests = guests(&ctx.inventory.data, &ctx.online_nodes());
            let fetched = sweep(ctx, NAME, guests, fetch).await;
            fetched.map(|guests| Box::new(Lists(guests)) as Box<dyn Families>)
        })
    }
}

/// The guests whose snapshots are asked: templates aside, on the `online` nodes.
fn guests(rows: &Rows, online: &[String]) -> Vec<GuestRef> {
    let online: HashSet<&str> = online.iter().map(String::as_str).collect();
    rows.iter()
        .filter(|r| is_guest(r))
        .filter(|r| r.node.known().is_some_and(|n| online.contains(n)))
        .filter_map(|r| {
            Some(GuestRef(Arc::new(GuestInfo {
                node: r.node.known()?.into(),
                kind: kind(r).into(),
                vmid: vmid(r).parse().ok()?,
                vmid_text: vmid(r),
                name: r.name.known().unwrap_or("").into(),
                tags: sorted_tags(r.tags()).into(),
            })))
        })
        .collect()
}

/// The snapshot list paths this collector asks for these rows.
pub fn paths(rows: &Rows, online: &[String]) -> Vec<String> {
    guests(rows, online).iter().map(Target::path).collect()
}

/// A guest whose snapshots are asked for.
#[derive(Debug)]
struct GuestInfo {
    node: CompactString,
    kind: CompactString,
    vmid: u64,
    /// `vmid` as its label value.
    vmid_text: CompactString,
    name: CompactString,
    tags: CompactString,
}

#[derive(Clone, Debug)]
struct GuestRef(Arc<GuestInfo>);

impl Target for GuestRef {
    fn node(&self) -> &str {
        &self.0.node
    }
    fn path(&self) -> String {
        let g = &self.0;
        format!("/nodes/{}/{}/{}/snapshot", g.node, g.kind, g.vmid)
    }
}

/// A snapshot's name and when it was taken (Unix time).
type Snapshot = (CompactString, Option<i64>);

async fn fetch(
    dispatcher: Arc<Dispatcher>,
    guest: GuestRef,
) -> Result<Reply<Vec<Snapshot>>, ApiError> {
    let path = guest.path();
    let g = guest.0.clone();
    // The same request and answer shape for VMs and containers, by different generated calls.
    macro_rules! snapshots_by {
        ($call:ident) => {{
            let answer = dispatcher
                .call(&path, |c| {
                    let g = g.clone();
                    async move { c.$call().node(g.node.clone()).vmid(g.vmid).send().await }
                })
                .await?;
            let list = answer.data.iter();
            Ok(Reply::Got(
                list.map(|s| (s.name.known().unwrap_or("").into(), s.snaptime.known()))
                    .collect(),
            ))
        }};
    }
    match g.kind.as_str() {
        "qemu" => snapshots_by!(get_nodes_node_qemu_vmid_snapshot),
        "lxc" => snapshots_by!(get_nodes_node_lxc_vmid_snapshot),
        other => Err(ApiError {
            endpoint: "-".into(),
            path,
            kind: ErrorKind::Other(format!("no snapshots for guests of type {other}")),
        }),
    }
}

#[derive(Debug)]
struct Lists(Vec<(GuestRef, Arc<Vec<Snapshot>>)>);

/// The labels the seed's later versions give snapshot families, in their order.
fn guest_labels(g: &GuestInfo) -> [(&'static str, &str); 5] {
    [
        ("node", &g.node),
        ("type", &g.kind),
        ("name", &g.name),
        ("vmid", &g.vmid_text),
        ("tags", &g.tags),
    ]
}

/// `current` is where the guest is now, not a snapshot.
fn count(list: &[Snapshot]) -> usize {
    list.iter().filter(|s| s.0 != "current").count()
}

/// The real snapshots by name, each name once (the first given).
fn by_name(list: &[Snapshot]) -> Vec<(&str, Option<i64>)> {
    let mut real: Vec<(&str, Option<i64>)> = list
        .iter()
        .filter(|s| s.0 != "current")
        .map(|s| (s.0.as_str(), s.1))
        .collect();
    real.sort_by_key(|s| s.0);
    real.dedup_by(|later, earlier| later.0 == earlier.0);
    real
}

impl Families for Lists {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let now = unix_seconds(view.taken_at);
        // Sorted by their label values once, then written without copying them: at 50,000
        // guests a sample with its own label strings for each series took tens of MB.
        let mut guests: Vec<(&GuestInfo, &Vec<Snapshot>)> =
            self.0.iter().map(|(g, list)| (&*g.0, &**list)).collect();
        guests.sort_by(|a, b| guest_labels(a.0).cmp(&guest_labels(b.0)));
        guests.dedup_by(|later, earlier| guest_labels(later.0) == guest_labels(earlier.0));
        sorted_family(
            encoder,
            "proxmox_guest_snapshots",
            "Snapshots a guest has (the `current` state not counted).",
            MetricType::Gauge,
            guests
                .iter()
                .map(|(g, list)| (guest_labels(g), count(list) as f64)),
        )?;
        sorted_family(
            encoder,
            "proxmox_guest_snapshot_age_seconds",
            "Seconds since a guest's snapshot was taken.",
            MetricType::Gauge,
            guests.iter().flat_map(|(g, list)| {
                by_name(list).into_iter().filter_map(move |(name, taken)| {
                    let age = (now - taken? as f64).max(0.0).floor();
                    Some(((guest_labels(g), [("snapshot", name)]), age))
                })
            }),
        )
    }
}
