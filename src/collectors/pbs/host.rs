//! `pbs_host`: the backup server itself: CPU, I/O wait, memory, swap, root file system, load
//! and uptime from `/nodes/localhost/status`, and its version from `/version`; two requests a
//! window. `proxmox_pbs_up` says whether either answered: 0 when the server could not be
//! reached at all.

use std::time::Instant;

use prometheus_client::encoding::DescriptorEncoder;

use super::{NODE, get, outcome};
use crate::collectors::{BoxFuture, Collected, Collector, Context, Cost, Families, Spec, View};
use crate::collectors::{gauge, gauge_family, labels};
use crate::pbs::client::types::{GetNodesNodeStatusResponseData, GetVersionResponseData};
use crate::pve::Known;

pub const NAME: &str = "pbs_host";

pub struct Host;
pub static COLLECTOR: Host = Host;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: true,
    operations: &["GET /nodes/{node}/status", "GET /version"],
    cost: Cost::Fixed(2),
    refresh: None,
};

impl Collector for Host {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move {
            let started = Instant::now();
            let d = &ctx.dispatcher;
            let path = format!("/nodes/{NODE}/status");
            let (status, version) = tokio::join!(
                get(d, &path, |c| async move {
                    c.get_nodes_node_status().node(NODE).send().await
                }),
                get(
                    d,
                    "/version",
                    |c| async move { c.get_version().send().await }
                ),
            );
            let mut errors = Vec::new();
            let status = status.map_err(|e| errors.push(e)).ok().map(|a| a.data);
            let version = version.map_err(|e| errors.push(e)).ok().map(|a| a.data);
            outcome(started, Box::new(Server { status, version }), errors)
        })
    }
}

#[derive(Debug)]
struct Server {
    status: Option<GetNodesNodeStatusResponseData>,
    version: Option<GetVersionResponseData>,
}

impl Families for Server {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let up = self.status.is_some() || self.version.is_some();
        gauge(
            encoder,
            "proxmox_pbs_up",
            "Whether the backup server's API answered (its status or its version).",
            f64::from(u8::from(up)),
        )?;
        if let Some(v) = &self.version {
            let set = labels([
                ("release", v.release.known().unwrap_or("")),
                ("repoid", v.repoid.known().unwrap_or("")),
                ("version", v.version.known().unwrap_or("")),
            ]);
            gauge_family(
                encoder,
                "proxmox_pbs_version_info",
                "The backup server's version, release and build (repoid); always 1.",
                vec![(set, 1.0)],
            )?;
        }
        let Some(s) = &self.status else {
            return Ok(());
        };
        let int = |v: Option<i64>| v.map(|v| v as f64);
        let values = [
            (
                "proxmox_pbs_host_cpu_usage_ratio",
                "The backup server's CPU use (1 = every CPU busy).",
                s.cpu.known(),
            ),
            (
                "proxmox_pbs_host_cpu_iowait_ratio",
                "The share of CPU time the backup server spent waiting for I/O.",
                s.wait.known(),
            ),
            (
                "proxmox_pbs_host_memory_size_bytes",
                "The backup server's memory.",
                int(s.memory.as_ref().and_then(|m| m.total.known())),
            ),
            (
                "proxmox_pbs_host_memory_used_bytes",
                "The backup server's memory in use.",
                int(s.memory.as_ref().and_then(|m| m.used.known())),
            ),
            (
                "proxmox_pbs_host_memory_free_bytes",
                "The backup server's free memory.",
                int(s.memory.as_ref().and_then(|m| m.free.known())),
            ),
            (
                "proxmox_pbs_host_swap_size_bytes",
                "The backup server's swap space.",
                int(s.swap.as_ref().and_then(|m| m.total.known())),
            ),
            (
                "proxmox_pbs_host_swap_used_bytes",
                "The backup server's swap space in use.",
                int(s.swap.as_ref().and_then(|m| m.used.known())),
            ),
            (
                "proxmox_pbs_host_rootfs_size_bytes",
                "The size of the backup server's root file system.",
                int(s.root.as_ref().and_then(|m| m.total.known())),
            ),
            (
                "proxmox_pbs_host_rootfs_used_bytes",
                "The backup server's root file system space in use.",
                int(s.root.as_ref().and_then(|m| m.used.known())),
            ),
            (
                "proxmox_pbs_host_rootfs_available_bytes",
                "The backup server's root file system space still available.",
                int(s.root.as_ref().and_then(|m| m.avail.known())),
            ),
            (
                "proxmox_pbs_host_uptime_seconds",
                "How long the backup server has been up.",
                int(s.uptime.known()),
            ),
        ];
        for (name, help, value) in values {
            if let Some(value) = value {
                gauge(encoder, name, help, value)?;
            }
        }
        let load: Vec<f64> = (s.loadavg.iter().flatten())
            .filter_map(|l| l.known())
            .collect();
        if let [one, five, fifteen] = load[..] {
            gauge_family(
                encoder,
                "proxmox_pbs_host_load",
                "The backup server's load average over 1, 5 and 15 minutes (minutes label).",
                vec![
                    (labels([("minutes", "1")]), one),
                    (labels([("minutes", "5")]), five),
                    (labels([("minutes", "15")]), fifteen),
                ],
            )?;
        }
        Ok(())
    }
}
