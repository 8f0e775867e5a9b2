//! `zfs`: `/nodes/{node}/disks/zfs` for every online node: each pool's health, size,
//! allocated and free bytes, fragmentation and dedup ratio.

use prometheus_client::encoding::DescriptorEncoder;

use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Sample, Spec, View};
use super::{each_online_node, gauge_family, labels};
use crate::pve::client::types::GetNodesNodeDisksZfsResponseDataItem;
use crate::pve::{Known, named};

pub const NAME: &str = "zfs";

pub type Pool = GetNodesNodeDisksZfsResponseDataItem;

pub struct Zfs;
pub static COLLECTOR: Zfs = Zfs;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: false,
    operations: &["GET /nodes/{node}/disks/zfs"],
    cost: Cost::PerNode,
    refresh: None,
};

impl Collector for Zfs {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(each_online_node(ctx, fetch, |nodes| Box::new(Pools(nodes))))
    }
}

node_get!(fetch, "disks/zfs", get_nodes_node_disks_zfs, Vec<Pool>);

#[derive(Debug)]
struct Pools(Vec<(String, Vec<Pool>)>);

impl Families for Pools {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let pools: Vec<(&str, &str, &Pool)> = self
            .0
            .iter()
            .flat_map(|(node, pools)| pools.iter().map(move |p| (node.as_str(), p)))
            .filter_map(|(node, p)| Some((node, named(p.name.known())?, p)))
            .collect();
        let each = |value: &dyn Fn(&Pool) -> Option<f64>| -> Vec<Sample> {
            pools
                .iter()
                .filter_map(|(node, name, p)| {
                    Some((labels([("node", node), ("pool", name)]), value(p)?))
                })
                .collect()
        };
        let health = |p: &Pool| p.health.known().unwrap_or("").trim().to_ascii_uppercase();
        gauge_family(
            encoder,
            "proxmox_zfs_pool_healthy",
            "Whether a ZFS pool is ONLINE (1) or not (0: DEGRADED, FAULTED, OFFLINE, …).",
            each(&|p| Some(f64::from(u8::from(health(p) == "ONLINE")))),
        )?;
        let states: Vec<Sample> = pools
            .iter()
            .map(|(node, name, p)| {
                let set = labels([("health", &health(p)), ("node", node), ("pool", name)]);
                (set, 1.0)
            })
            .collect();
        gauge_family(
            encoder,
            "proxmox_zfs_pool_info",
            "A ZFS pool's health as ZFS reports it (ONLINE, DEGRADED, …); always 1.",
            states,
        )?;
        let bytes = |v: Option<i64>| v.map(|v| v as f64);
        gauge_family(
            encoder,
            "proxmox_zfs_pool_size_bytes",
            "Size of a ZFS pool, in bytes.",
            each(&|p| bytes(p.size.known())),
        )?;
        gauge_family(
            encoder,
            "proxmox_zfs_pool_allocated_bytes",
            "Space allocated in a ZFS pool, in bytes.",
            each(&|p| bytes(p.alloc.known())),
        )?;
        gauge_family(
            encoder,
            "proxmox_zfs_pool_free_bytes",
            "Free space in a ZFS pool, in bytes.",
            each(&|p| bytes(p.free.known())),
        )?;
        gauge_family(
            encoder,
            "proxmox_zfs_pool_fragmentation_ratio",
            "Fragmentation of a ZFS pool's free space, 0 to 1.",
            each(&|p| p.frag.known().map(|f| f as f64 / 100.0)),
        )?;
        gauge_family(
            encoder,
            "proxmox_zfs_pool_dedup_ratio",
            "A ZFS pool's deduplication ratio (1 without deduplication).",
            each(&|p| p.dedup.known()),
        )
    }
}
