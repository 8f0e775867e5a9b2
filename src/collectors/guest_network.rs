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

use super::cluster_resources::{is_guest, vmid};
use super::{BoxFuture, ByVmid, Collected, Collector, Context, Cost, Families, View};
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

/// A guest interface's counters, kept small: vmid and interface as short strings, the bytes
/// in and out (negative: none).
#[derive(Debug)]
struct Interface {
    vmid: CompactString,
    interface: CompactString,
    received: i64,
    sent: i64,
}

/// A node's guest interfaces.
async fn fetch(
    dispatcher: std::sync::Arc<crate::pve::Dispatcher>,
    node: String,
) -> Result<Vec<Interface>, crate::pve::ApiError> {
    use compact_str::ToCompactString;
    let devices = netstat(dispatcher, node).await?;
    let mut interfaces: Vec<Interface> = devices
        .iter()
        .filter_map(|device| {
            let (Some(id), Some(interface)) = (device.vmid.known(), named(device.dev.known()))
            else {
                return None;
            };
            Some(Interface {
                vmid: id.to_compact_string(),
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

/// An interface with its guest's node and name, as written.
struct Labelled<'a> {
    node: &'a str,
    name: &'a str,
    interface: &'a Interface,
}

impl Labelled<'_> {
    fn labels(&self) -> [(&'static str, &str); 4] {
        [
            ("interface", self.interface.interface.as_str()),
            ("name", self.name),
            ("node", self.node),
            ("vmid", self.interface.vmid.as_str()),
        ]
    }
}

impl Families for Devices {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        // Names from the inventory: a device of a guest that is gone still counts, nameless.
        let names: ByVmid<&str> = (view.inventory.data.iter())
            .filter(|r| is_guest(r))
            .filter_map(|r| Some((vmid(r).parse().ok()?, r.name.known().unwrap_or(""))))
            .collect();
        let name = |vmid: &str| names.get(vmid.parse().ok()?).copied();
        // Sorted by their label values once, then written without copying them.
        // Made to its size: grown by doubling it took up to twice as much.
        let mut all: Vec<Labelled<'_>> =
            Vec::with_capacity(self.0.iter().map(|(_, interfaces)| interfaces.len()).sum());
        all.extend(
            (self.0.iter())
                .flat_map(|(node, interfaces)| interfaces.iter().map(move |i| (node, i)))
                .map(|(node, i)| {
                    let name = name(i.vmid.as_str()).unwrap_or("");
                    Labelled {
                        node,
                        name,
                        interface: i,
                    }
                }),
        );
        drop(names);
        all.sort_by(|a, b| a.labels().cmp(&b.labels()));
        all.dedup_by(|later, earlier| later.labels() == earlier.labels());
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
                (n >= 0).then(|| (each.labels(), n as f64))
            });
            sorted_family(encoder, name, help, MetricType::Counter, samples)?;
        }
        Ok(())
    }
}
