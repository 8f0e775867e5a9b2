//! `snapshots`: `/nodes/{node}/{qemu|lxc}/{vmid}/snapshot` for every guest (templates aside)
//! on an online node: how many snapshots each guest has and how old each one is. One request
//! per guest, swept over 5 minutes by default ([`super::sweep`]).

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use compact_str::CompactString;

use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use super::cluster_resources::{Resource, Rows, is_guest, kind, vmid};
use super::guest::sorted_tags;
use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Reply, Spec};
use super::{ByVmid, Target, View, Vmid, WithVmid, sorted_family, sweep, unix_seconds};
use crate::pve::{ApiError, Dispatcher, Known};
use prometheus_client::metrics::MetricType;

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
            fetched.map(|guests| {
                let lists = guests.into_iter().map(|(g, list)| (g.vmid, list)).collect();
                Box::new(Lists(lists)) as Box<dyn Families>
            })
        })
    }
}

/// The guests whose snapshots are asked: templates aside, on the `online` nodes.
fn guests(rows: &Rows, online: &[String]) -> Vec<Guest> {
    let online: HashSet<&str> = online.iter().map(String::as_str).collect();
    rows.iter()
        .filter(|r| is_guest(r))
        .filter(|r| r.node.known().is_some_and(|n| online.contains(n)))
        .filter_map(|r| {
            Some(Guest {
                node: r.node.known()?.into(),
                container: kind(r) == "lxc",
                vmid: vmid(r).parse().ok()?,
            })
        })
        .collect()
}

/// The snapshot list paths this collector asks for these rows.
pub fn paths(rows: &Rows, online: &[String]) -> Vec<String> {
    guests(rows, online).iter().map(Target::path).collect()
}

/// A guest whose snapshots are asked for: what its path needs, and no more (its labels come
/// from the inventory when the families are written).
#[derive(Clone, Debug)]
struct Guest {
    node: CompactString,
    vmid: u32,
    container: bool,
}

impl Guest {
    fn kind(&self) -> &'static str {
        if self.container { "lxc" } else { "qemu" }
    }
}

impl Target for Guest {
    fn node(&self) -> &str {
        &self.node
    }
    fn path(&self) -> String {
        format!(
            "/nodes/{}/{}/{}/snapshot",
            self.node,
            self.kind(),
            self.vmid
        )
    }
}

/// A snapshot's name and when it was taken (Unix time). PVE's `current` (where the guest is
/// now) is not one, and is not kept.
type Snapshot = (CompactString, Option<i64>);

async fn fetch(
    dispatcher: Arc<Dispatcher>,
    guest: Guest,
) -> Result<Reply<Arc<Box<[Snapshot]>>>, ApiError> {
    let path = guest.path();
    // The same request and answer shape for VMs and containers, by different generated calls.
    macro_rules! snapshots_by {
        ($call:ident) => {{
            let answer = dispatcher
                .call(&path, |c| {
                    let node = guest.node.to_string();
                    async move {
                        c.$call()
                            .node(node)
                            .vmid(u64::from(guest.vmid))
                            .send()
                            .await
                    }
                })
                .await?;
            let list = answer.data.iter();
            Ok(Reply::Got(Arc::new(
                list.map(|s| (s.name.known().unwrap_or("").into(), s.snaptime.known()))
                    .filter(|s: &Snapshot| s.0 != "current")
                    .collect(),
            )))
        }};
    }
    if guest.container {
        snapshots_by!(get_nodes_node_lxc_vmid_snapshot)
    } else {
        snapshots_by!(get_nodes_node_qemu_vmid_snapshot)
    }
}

/// Each guest's snapshots by vmid.
#[derive(Debug)]
struct Lists(ByVmid<Arc<Box<[Snapshot]>>>);

/// A guest's labels but its tags, in the order the seed's later versions give them, from its
/// inventory row and vmid.
fn guest_labels(row: &Resource, vmid: Vmid) -> WithVmid<'_, 3> {
    (
        [
            ("node", row.node.known().unwrap_or("")),
            ("type", kind(row)),
            ("name", row.name.known().unwrap_or("")),
        ],
        [("vmid", vmid)],
    )
}

/// The last label: the guest's tags, sorted (made as each series is written: most guests
/// have none, and keeping them for 50,000 guests took MBs).
fn tags_label(row: &Resource) -> [(&'static str, Cow<'static, str>); 1] {
    let tags = sorted_tags(row.tags());
    [(
        "tags",
        if tags.is_empty() {
            Cow::Borrowed("")
        } else {
            Cow::Owned(tags)
        },
    )]
}

/// The snapshots by name, each name once (the first given).
fn by_name(list: &[Snapshot]) -> Vec<(&str, Option<i64>)> {
    let mut real: Vec<(&str, Option<i64>)> = list.iter().map(|s| (s.0.as_str(), s.1)).collect();
    real.sort_by_key(|s| s.0);
    real.dedup_by(|later, earlier| later.0 == earlier.0);
    real
}

/// A guest with its snapshots, as written: its row, its vmid, the list (32 bytes).
type Listed<'a> = (&'a Resource, Vmid, &'a [Snapshot]);

fn labels<'a>(g: &Listed<'a>) -> WithVmid<'a, 3> {
    guest_labels(g.0, g.1)
}

/// The order of the series: by their label values, tags last (made only on a tie).
fn order(a: &Listed<'_>, b: &Listed<'_>) -> std::cmp::Ordering {
    labels(a)
        .cmp(&labels(b))
        .then_with(|| sorted_tags(a.0.tags()).cmp(&sorted_tags(b.0.tags())))
}

impl Families for Lists {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let now = unix_seconds(view.taken_at);
        // The guests with a list, labelled from the inventory; sorted by their label values
        // once, then written without copying them.
        // Made to its size: a guest has at most one list.
        let mut guests: Vec<Listed<'_>> = Vec::with_capacity(self.0.len());
        guests.extend(
            (view.inventory.data.iter())
                .filter(|r| is_guest(r))
                .filter_map(|r| {
                    let id: u32 = vmid(r).parse().ok()?;
                    let list = self.0.get(id)?;
                    Some((r, Vmid(id), &***list))
                }),
        );
        guests.sort_by(order);
        guests.dedup_by(|later, earlier| order(later, earlier).is_eq());
        sorted_family(
            encoder,
            "proxmox_guest_snapshots",
            "Snapshots a guest has (the `current` state not counted).",
            MetricType::Gauge,
            guests
                .iter()
                .map(|g| ((labels(g), tags_label(g.0)), g.2.len() as f64)),
        )?;
        sorted_family(
            encoder,
            "proxmox_guest_snapshot_age_seconds",
            "Seconds since a guest's snapshot was taken.",
            MetricType::Gauge,
            guests.iter().flat_map(|g| {
                by_name(g.2).into_iter().filter_map(move |(name, taken)| {
                    let age = (now - taken? as f64).max(0.0).floor();
                    Some((((labels(g), tags_label(g.0)), [("snapshot", name)]), age))
                })
            }),
        )
    }
}
