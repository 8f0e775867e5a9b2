//! `guest_network`: `/nodes/{node}/netstat` for every online node, one request a node for all
//! its guests: bytes through each guest network interface (`net0`, `net1`, …), from the host's
//! `tap<vmid>i<n>` (VMs) and `veth<vmid>i<n>` (containers) devices.
//!
//! PVE names the two counters from the guest's side: `in` is what the host's device sent,
//! so what the guest received, and `out` what the guest sent (pve-manager's
//! `PVE::API2::Nodes` swaps `transmit` and `receive` for that). The families follow the guest
//! too: `receive` is `in`, `transmit` is `out`. The counters restart when the guest does
//! (its device is made anew), which `rate()` takes as a counter reset.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::cluster_resources::{Resource, is_guest, vmid};
use super::{
    BoxFuture, ByVmid, Collected, Collector, Context, Cost, Families, View, Vmid, WithVmid,
};
use super::{each_online_node, sorted_family};
use crate::pve::client::types::GetNodesNodeNetstatResponseDataItem;
use crate::pve::{Known, named};
use compact_str::CompactString;

pub const NAME: &str = "guest_network";

pub type Device = GetNodesNodeNetstatResponseDataItem;

pub struct GuestNetwork;
pub static COLLECTOR: GuestNetwork = GuestNetwork;

pub static SPEC: super::Spec = super::Spec {
    name: NAME,
    enabled_by_default: false,
    operations: &["GET /nodes/{node}/netstat"],
    cost: Cost::PerNode,
    refresh: None,
};

impl Collector for GuestNetwork {
    fn spec(&self) -> &'static super::Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(each_online_node(ctx, fetch, |nodes| {
            Box::new(Devices(nodes))
        }))
    }
}

node_get!(netstat, "netstat", get_nodes_node_netstat, Vec<Device>);

/// A guest interface's counters, kept small (48 bytes): vmid, interface as a short string,
/// the bytes in and out (negative: none).
#[derive(Debug)]
struct Interface {
    vmid: u32,
    interface: CompactString,
    received: i64,
    sent: i64,
}

/// A node's guest interfaces.
async fn fetch(
    dispatcher: std::sync::Arc<crate::pve::Dispatcher>,
    node: String,
) -> Result<Vec<Interface>, crate::pve::ApiError> {
    let devices = netstat(dispatcher, node).await?;
    let mut interfaces: Vec<Interface> = devices
        .iter()
        .filter_map(|device| {
            let (Some(id), Some(interface)) = (device.vmid.known(), named(device.dev.known()))
            else {
                return None;
            };
            Some(Interface {
                vmid: u32::try_from(id).ok()?,
                interface: interface.into(),
                received: device.in_.known().unwrap_or(-1),
                sent: device.out.known().unwrap_or(-1),
            })
        })
        .collect();
    // Kept for the window: without the room a collect may leave.
    interfaces.shrink_to_fit();
    Ok(interfaces)
}

#[derive(Debug)]
struct Devices(Vec<(String, Vec<Interface>)>);

/// An interface as written: itself, its guest's row (for the name) and its node's place in
/// the answers (24 bytes).
struct Labelled<'a> {
    interface: &'a Interface,
    row: Option<&'a Resource>,
    node: u32,
}

/// An interface's labels: interface, name, node, vmid.
fn labels<'a>(nodes: &'a [(String, Vec<Interface>)], each: &Labelled<'a>) -> WithVmid<'a, 3> {
    let name = each.row.and_then(|r| r.name.known()).unwrap_or("");
    let node = nodes
        .get(each.node as usize)
        .map_or("", |(n, _)| n.as_str());
    (
        [
            ("interface", each.interface.interface.as_str()),
            ("name", name),
            ("node", node),
        ],
        [("vmid", Vmid(each.interface.vmid))],
    )
}

impl Families for Devices {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        // Names from the inventory: a device of a guest that is gone still counts, nameless.
        let rows: ByVmid<&Resource> = (view.inventory.data.iter())
            .filter(|r| is_guest(r))
            .filter_map(|r| Some((vmid(r).parse().ok()?, r)))
            .collect();
        let nodes = self.0.as_slice();
        // Sorted by their label values once, then written without copying them.
        // Made to its size: grown by doubling it took up to twice as much.
        let mut all: Vec<Labelled<'_>> =
            Vec::with_capacity(self.0.iter().map(|(_, interfaces)| interfaces.len()).sum());
        for (node, (_, interfaces)) in self.0.iter().enumerate() {
            let node = u32::try_from(node).unwrap_or(u32::MAX);
            all.extend(interfaces.iter().map(|interface| Labelled {
                interface,
                row: rows.get(interface.vmid).copied(),
                node,
            }));
        }
        drop(rows);
        all.sort_by(|a, b| labels(nodes, a).cmp(&labels(nodes, b)));
        all.dedup_by(|later, earlier| labels(nodes, later) == labels(nodes, earlier));
        for (name, help, bytes) in [
            (
                "proxmox_guest_interface_receive_bytes",
                "Bytes a guest received on a network interface (PVE's `in`).",
                (|i: &Interface| i.received) as fn(&Interface) -> i64,
            ),
            (
                "proxmox_guest_interface_transmit_bytes",
                "Bytes a guest sent on a network interface (PVE's `out`).",
                |i: &Interface| i.sent,
            ),
        ] {
            let samples = all.iter().filter_map(|each| {
                let n = bytes(each.interface);
                (n >= 0).then(|| (labels(nodes, each), n as f64))
            });
            sorted_family(encoder, name, help, MetricType::Counter, samples)?;
        }
        Ok(())
    }
}
