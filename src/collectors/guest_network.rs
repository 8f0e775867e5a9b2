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
use super::{BoxFuture, Collected, Collector, Context, Cost, Families, View};
use super::{each_online_node, labels, sorted_family};
use crate::pve::client::types::GetNodesNodeNetstatResponseDataItem;
use crate::pve::{Known, named};

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
        Box::pin(each_online_node(ctx, fetch, |nodes| Box::new(Devices(nodes))))
    }
}

node_get!(fetch, "netstat", get_nodes_node_netstat, Vec<Device>);

#[derive(Debug)]
struct Devices(Vec<(String, Vec<Device>)>);

impl Families for Devices {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        // Names from the inventory: a device of a guest that is gone still counts, nameless.
        let names: std::collections::HashMap<compact_str::CompactString, &str> = view
            .inventory
            .data
            .iter()
            .filter(|r| is_guest(r))
            .map(|r| (vmid(r), r.name.known().unwrap_or("")))
            .collect();
        let mut received = Vec::new();
        let mut sent = Vec::new();
        for (node, devices) in &self.0 {
            for device in devices {
                let (Some(id), Some(interface)) = (device.vmid.known(), named(device.dev.known()))
                else {
                    continue;
                };
                let id = id.to_string();
                let name = names.get(id.as_str()).copied().unwrap_or("");
                let set = labels([
                    ("interface", interface),
                    ("name", name),
                    ("node", node),
                    ("vmid", &id),
                ]);
                if let Some(bytes) = device.in_.known() {
                    received.push((set.clone(), bytes as f64));
                }
                if let Some(bytes) = device.out.known() {
                    sent.push((set, bytes as f64));
                }
            }
        }
        for (name, help, mut samples) in [
            (
                "proxmox_guest_interface_receive_bytes",
                "Bytes a guest received on a network interface (PVE's `in`).",
                received,
            ),
            (
                "proxmox_guest_interface_transmit_bytes",
                "Bytes a guest sent on a network interface (PVE's `out`).",
                sent,
            ),
        ] {
            samples.sort_by(|a, b| a.0.cmp(&b.0));
            samples.dedup_by(|later, earlier| later.0 == earlier.0);
            sorted_family(
                encoder,
                name,
                help,
                MetricType::Counter,
                samples.into_iter(),
            )?;
        }
        Ok(())
    }
}
