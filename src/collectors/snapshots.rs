//! `snapshots`: `/nodes/{node}/{qemu|lxc}/{vmid}/snapshot` for every guest (templates aside)
//! on an online node: how many snapshots each guest has and how old each one is. One request
//! per guest, swept over 5 minutes by default ([`super::sweep`]).

use std::sync::Arc;

use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use super::cluster_resources::{Rows, is_guest, kind, vmid};
use super::guest::sorted_tags;
use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Reply, Sample, Spec};
use super::{Target, View, sweep};
use super::{gauge_family, unix_seconds};
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
    rows.iter()
        .filter(|r| is_guest(r))
        .filter(|r| r.node.known().is_some_and(|n| online.iter().any(|o| o == n)))
        .filter_map(|r| {
            Some(GuestRef(Arc::new(GuestInfo {
                node: r.node.known()?.to_owned(),
                kind: kind(r).to_owned(),
                vmid: vmid(r).parse().ok()?,
                name: r.name.known().unwrap_or("").to_owned(),
                tags: sorted_tags(r.tags()),
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
    node: String,
    kind: String,
    vmid: u64,
    name: String,
    tags: String,
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
type Snapshot = (String, Option<i64>);

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
                list.map(|s| (s.name.known().unwrap_or("").to_owned(), s.snaptime.known()))
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

/// The labels the seed's later versions give snapshot families.
fn guest_labels(g: &GuestInfo) -> Vec<(&'static str, String)> {
    vec![
        ("node", g.node.clone()),
        ("type", g.kind.clone()),
        ("name", g.name.clone()),
        ("vmid", g.vmid.to_string()),
        ("tags", g.tags.clone()),
    ]
}

impl Families for Lists {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let now = unix_seconds(view.taken_at);
        let mut counts: Vec<Sample> = Vec::new();
        let mut ages: Vec<Sample> = Vec::new();
        for (guest, snapshots) in &self.0 {
            // `current` is where the guest is now, not a snapshot.
            let real: Vec<&Snapshot> = snapshots.iter().filter(|s| s.0 != "current").collect();
            counts.push((guest_labels(&guest.0), real.len() as f64));
            for (name, taken) in real {
                let Some(taken) = taken else {
                    continue;
                };
                let mut set = guest_labels(&guest.0);
                set.push(("snapshot", name.clone()));
                ages.push((set, (now - *taken as f64).max(0.0).floor()));
            }
        }
        gauge_family(
            encoder,
            "proxmox_guest_snapshots",
            "Snapshots a guest has (the `current` state not counted).",
            counts,
        )?;
        gauge_family(
            encoder,
            "proxmox_guest_snapshot_age_seconds",
            "Seconds since a guest's snapshot was taken.",
            ages,
        )
    }
}
