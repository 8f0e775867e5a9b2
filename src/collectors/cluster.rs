//! `cluster`: `/cluster/status`, one request for the whole cluster. Quorum, how many nodes
//! are configured and online, and the cluster's name and configuration version. A standalone
//! node answers with its own entry only: it reports its node counts and nothing else.

use prometheus_client::encoding::DescriptorEncoder;

use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Spec, View};
use super::{cluster_wide, gauge, gauge_family};
use crate::pve::Known;
use crate::pve::client::types::GetClusterStatusResponseDataItem;

pub const NAME: &str = "cluster";
pub(crate) const PATH: &str = "/cluster/status";

pub type Entry = GetClusterStatusResponseDataItem;

pub struct Cluster;
pub static COLLECTOR: Cluster = Cluster;

pub static SPEC: Spec = Spec {
    name: NAME,
    // One request a window would allow it, but the seed's default output stays as it is.
    enabled_by_default: false,
    operations: &["GET /cluster/status"],
    cost: Cost::One,
    refresh: None,
};

impl Collector for Cluster {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(cluster_wide(
            ctx,
            PATH,
            |c| async move { c.get_cluster_status().send().await },
            |answer| Box::new(Status(answer.data)),
        ))
    }
}

#[derive(Debug)]
struct Status(Vec<Entry>);

fn is(entry: &Entry, kind: &str) -> bool {
    entry.type_.known() == Some(kind)
}

impl Families for Status {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let nodes: Vec<&Entry> = self.0.iter().filter(|e| is(e, "node")).collect();
        let cluster = self.0.iter().find(|e| is(e, "cluster"));
        let online = nodes
            .iter()
            .filter(|n| n.online.known() == Some(true))
            .count();
        // The cluster entry counts the nodes in the configuration; a standalone node has none.
        let configured = cluster
            .and_then(|c| c.nodes.known())
            .map_or(nodes.len() as f64, |n| n as f64);
        gauge(
            encoder,
            "proxmox_cluster_nodes",
            "Nodes in the cluster's configuration (1 for a standalone node).",
            configured,
        )?;
        gauge(
            encoder,
            "proxmox_cluster_nodes_online",
            "Nodes the cluster sees online.",
            online as f64,
        )?;
        let Some(cluster) = cluster else {
            return Ok(());
        };
        if let Some(quorate) = cluster.quorate.known() {
            gauge(
                encoder,
                "proxmox_cluster_quorate",
                "Whether the cluster has quorum (1) or not (0); absent for a standalone node.",
                f64::from(u8::from(quorate)),
            )?;
        }
        let version = cluster
            .version
            .known()
            .map(|v| v.to_string())
            .unwrap_or_default();
        gauge_family(
            encoder,
            "proxmox_cluster_info",
            "The cluster's name and configuration (corosync) version; always 1.",
            vec![(
                vec![
                    ("config_version", version),
                    ("name", cluster.name.known().unwrap_or("").to_owned()),
                ],
                1.0,
            )],
        )
    }
}
