//! `/nodes/{node}/disks/list` for every online node: the SMART health of each disk. The
//! `disks` collector reads the same answer (asked once per collection when both are on).

use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;

use super::{
    BoxFuture, Collected, Collector, Context, Cost, Families, Sample, Spec, View, each_online_node,
};
use super::{gauge_family, labels};
use crate::pve::client::types::GetNodesNodeDisksListResponseDataItem;
use crate::pve::{ApiError, Dispatcher, ErrorKind, Known, named};

pub const NAME: &str = "node_disks";

pub type Disk = GetNodesNodeDisksListResponseDataItem;

pub struct NodeDisks;
pub static COLLECTOR: NodeDisks = NodeDisks;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: true,
    operations: &["GET /nodes/{node}/disks/list"],
    cost: Cost::PerNode,
    refresh: None,
};

impl Collector for NodeDisks {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(each_online_node(ctx, disk_lists(ctx), |nodes| {
            Box::new(Disks(nodes))
        }))
    }
}

/// A node's disk list as the collectors share it.
pub type Listed = Result<Arc<Vec<Disk>>, ApiError>;

/// Each node's disk list through the collection's shared answers ([`Context::disk_lists`]).
pub fn disk_lists(
    ctx: &Context,
) -> impl Fn(Arc<Dispatcher>, String) -> BoxFuture<'static, Listed> + use<> {
    let lists = ctx.disk_lists.clone();
    move |dispatcher, node| {
        let lists = lists.clone();
        Box::pin(async move { lists.get(&node, || fetch(dispatcher, node.clone())).await })
    }
}

#[derive(Debug)]
struct Disks(Vec<(String, Arc<Vec<Disk>>)>);

impl Families for Disks {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        encode(&self.0, encoder)
    }
}

/// A node's disk list (`node_disks` and `disks` ask it through [`disk_lists`]).
pub async fn fetch(dispatcher: Arc<Dispatcher>, node: String) -> Result<Vec<Disk>, ApiError> {
    let path = format!("/nodes/{node}/disks/list");
    let answer = dispatcher
        .call(&path, |c| {
            let node = node.clone();
            async move { c.get_nodes_node_disks_list().node(node).send().await }
        })
        .await?;
    // PVE names every disk by its device path: a row without one makes a broken answer.
    if answer.data.iter().any(|d| d.devpath.known().is_none()) {
        return Err(ApiError {
            endpoint: "-".into(),
            path,
            kind: ErrorKind::Decode("a disk without devpath".into()),
        });
    }
    Ok(answer.data)
}

/// 1 for a passed health check (`PASSED`, or `OK` for SAS/NVMe), -1 when there is none
/// (absent, empty or `UNKNOWN`), 0 for anything else: a failure.
pub fn smart_value(health: Option<&str>) -> f64 {
    match health.map(str::trim) {
        Some(h) if h.eq_ignore_ascii_case("PASSED") || h.eq_ignore_ascii_case("OK") => 1.0,
        None | Some("") => -1.0,
        Some(h) if h.eq_ignore_ascii_case("UNKNOWN") => -1.0,
        Some(_) => 0.0,
    }
}

fn encode(nodes: &[(String, Arc<Vec<Disk>>)], encoder: &mut DescriptorEncoder) -> std::fmt::Result {
    let mut samples: Vec<Sample> = Vec::new();
    for (node, disks) in nodes {
        for disk in disks.iter() {
            let Some(devpath) = named(disk.devpath.known()) else {
                continue;
            };
            let set = labels([("devpath", devpath), ("node", node)]);
            samples.push((set, smart_value(disk.health.known())));
        }
    }
    // Should a device be listed twice, the worse health wins: failed, then unknown, then passed.
    samples.sort_by_key(|(_, v)| {
        if *v == 0.0 {
            0
        } else if *v < 0.0 {
            1
        } else {
            2
        }
    });
    gauge_family(
        encoder,
        "proxmox_node_disk_smart_status",
        "SMART health of a disk: 1 passed, 0 failed, -1 unknown (no SMART data reported).",
        samples,
    )
}

#[cfg(test)]
mod tests {
    use super::smart_value;

    #[test]
    fn health_words() {
        for (health, want) in [
            (Some("PASSED"), 1.0),
            (Some("OK"), 1.0),
            (Some("passed"), 1.0),
            (Some("FAILED"), 0.0),
            (Some("FAILING_NOW"), 0.0),
            (Some("UNKNOWN"), -1.0),
            (Some(""), -1.0),
            (None, -1.0),
        ] {
            assert_eq!(smart_value(health), want, "{health:?}");
        }
    }
}
