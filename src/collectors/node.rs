//! `node`: `/nodes/{node}/status` for every online node. Load, CPU and I/O wait, memory,
//! swap and root file system, KSM sharing, uptime, the PVE version and the kernel and CPU.
//!
//! The pull-metrics endpoint `/cluster/metrics/export` (PVE 8.4 and later) would be one request
//! for the whole cluster, but it has no version, kernel, CPU model or KSM, answers with every
//! guest's metrics as well, and the node asked collects the other nodes' parts one after the
//! other (BENCHMARKS.md has the measurement); so this collector asks each node.

use prometheus_client::encoding::DescriptorEncoder;

use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Sample, Spec, View};
use super::{each_online_node, gauge_family, labels};
use crate::pve::Known;
use crate::pve::client::types::GetNodesNodeStatusResponseData;

pub const NAME: &str = "node";

pub type Status = GetNodesNodeStatusResponseData;

pub struct Node;
pub static COLLECTOR: Node = Node;

pub static SPEC: Spec = Spec {
    name: NAME,
    // One request per node, and mostly what node_exporter on the host reports.
    enabled_by_default: false,
    operations: &["GET /nodes/{node}/status"],
    cost: Cost::PerNode,
    refresh: None,
};

impl Collector for Node {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(each_online_node(ctx, fetch, |nodes| {
            Box::new(Statuses(nodes))
        }))
    }
}

node_get!(fetch, "status", get_nodes_node_status, Status);

#[derive(Debug)]
struct Statuses(Vec<(String, Status)>);

/// A gauge family with one sample per node that has `value`.
fn per_node(
    encoder: &mut DescriptorEncoder,
    nodes: &[(String, Status)],
    name: &str,
    help: &str,
    value: impl Fn(&Status) -> Option<f64>,
) -> std::fmt::Result {
    let samples: Vec<Sample> = nodes
        .iter()
        .filter_map(|(node, status)| Some((labels([("node", node)]), value(status)?)))
        .collect();
    gauge_family(encoder, name, help, samples)
}

fn bytes(value: Option<i64>) -> Option<f64> {
    value.map(|v| v as f64)
}

impl Families for Statuses {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let nodes = &self.0;
        let load = |i: usize| {
            move |s: &Status| {
                let text = s.loadavg.as_ref()?.get(i)?.known()?;
                text.trim().parse::<f64>().ok()
            }
        };
        per_node(
            encoder,
            nodes,
            "proxmox_node_load1",
            "A node's load average over 1 minute.",
            load(0),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_load5",
            "A node's load average over 5 minutes.",
            load(1),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_load15",
            "A node's load average over 15 minutes.",
            load(2),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_cpu_usage_ratio",
            "Share of a node's CPU time in use, 0 to 1.",
            |s| s.cpu.known(),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_cpu_iowait_ratio",
            "Share of a node's CPU time spent waiting for I/O, 0 to 1.",
            |s| s.wait.known(),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_memory_used_bytes",
            "Memory in use on a node, in bytes.",
            |s| bytes(s.memory.as_ref()?.used.known()),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_memory_available_bytes",
            "Memory available for new work on a node, in bytes (sent by PVE 9 and later).",
            |s| bytes(s.memory.as_ref()?.available.known()),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_memory_size_bytes",
            "Physical memory of a node, in bytes.",
            |s| bytes(s.memory.as_ref()?.total.known()),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_swap_used_bytes",
            "Swap in use on a node, in bytes.",
            |s| bytes(s.swap.as_ref()?.used.known()),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_swap_size_bytes",
            "Swap space of a node, in bytes.",
            |s| bytes(s.swap.as_ref()?.total.known()),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_rootfs_used_bytes",
            "Space used on a node's root file system, in bytes.",
            |s| bytes(s.rootfs.as_ref()?.used.known()),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_rootfs_size_bytes",
            "Size of a node's root file system, in bytes.",
            |s| bytes(s.rootfs.as_ref()?.total.known()),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_ksm_shared_bytes",
            "Memory shared between guests by kernel same-page merging (KSM) on a node, in bytes.",
            |s| bytes(s.ksm.as_ref()?.shared.known()),
        )?;
        per_node(
            encoder,
            nodes,
            "proxmox_node_uptime_seconds",
            "Seconds since a node booted.",
            |s| bytes(s.uptime.known()),
        )?;
        let versions: Vec<Sample> = nodes
            .iter()
            .filter_map(|(node, s)| {
                let version = s.pveversion.known()?;
                Some((labels([("node", node), ("version", version)]), 1.0))
            })
            .collect();
        gauge_family(
            encoder,
            "proxmox_node_version",
            "A node's PVE manager version (pveversion); always 1.",
            versions,
        )?;
        let infos: Vec<Sample> = nodes
            .iter()
            .map(|(node, s)| {
                let cpu_model = s.cpuinfo.as_ref().and_then(|c| c.model.known());
                let kernel = s
                    .current_kernel
                    .as_ref()
                    .and_then(|k| k.release.known())
                    .or_else(|| kernel_release(s.kversion.known()?));
                let boot_mode = s.boot_info.as_ref().and_then(|b| b.mode.known());
                let sockets = s.cpuinfo.as_ref().and_then(|c| c.sockets.known());
                let set = vec![
                    ("boot_mode", boot_mode.unwrap_or("").to_owned()),
                    ("cpu_model", cpu_model.unwrap_or("").to_owned()),
                    (
                        "cpu_sockets",
                        sockets.map(|n| n.to_string()).unwrap_or_default(),
                    ),
                    ("kernel", kernel.unwrap_or("").to_owned()),
                    ("node", node.clone()),
                ];
                (set, 1.0)
            })
            .collect();
        gauge_family(
            encoder,
            "proxmox_node_info",
            "A node's running kernel, CPU model and sockets and boot mode; always 1.",
            infos,
        )
    }
}

/// The release in `kversion` (`Linux 6.8.12-4-pve #1 SMP …`): `6.8.12-4-pve`. PVE 7 and early
/// 8 send only this, not `current-kernel`.
fn kernel_release(kversion: &str) -> Option<&str> {
    let mut words = kversion.split_whitespace();
    match words.next()? {
        "Linux" => words.next(),
        first => Some(first),
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_release;

    #[test]
    fn kernel_release_from_kversion() {
        assert_eq!(
            kernel_release("Linux 6.8.12-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4"),
            Some("6.8.12-4-pve")
        );
        assert_eq!(kernel_release("5.15.108-1-pve"), Some("5.15.108-1-pve"));
        assert_eq!(kernel_release("  "), None);
    }
}
