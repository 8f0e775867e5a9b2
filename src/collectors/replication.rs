//! `replication`: `/nodes/{node}/replication` for every online node: each storage
//! replication job's last successful sync, how long it took, failed syncs in a row, the next
//! planned sync and whether the last run failed. Every node's jobs, not only one node's.

use prometheus_client::encoding::DescriptorEncoder;

use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Sample, Spec, View};
use super::{each_online_node, gauge_family};
use crate::pve::client::types::GetNodesNodeReplicationResponseDataItem;
use crate::pve::{Known, named};

pub const NAME: &str = "replication";

pub type Job = GetNodesNodeReplicationResponseDataItem;

pub struct Replication;
pub static COLLECTOR: Replication = Replication;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: false,
    operations: &["GET /nodes/{node}/replication"],
    cost: Cost::PerNode,
    refresh: None,
};

impl Collector for Replication {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(each_online_node(ctx, fetch, |nodes| Box::new(Jobs(nodes))))
    }
}

node_get!(pub fetch, "replication", get_nodes_node_replication, Vec<Job>);

#[derive(Debug)]
struct Jobs(Vec<(String, Vec<Job>)>);

impl Families for Jobs {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        // A job runs on its guest's node: the node asked is its source.
        let jobs: Vec<(Vec<(&'static str, String)>, &Job)> = self
            .0
            .iter()
            .flat_map(|(node, jobs)| jobs.iter().map(move |job| (node, job)))
            .filter_map(|(node, job)| {
                let id = named(job.id.known())?;
                let guest = job
                    .guest
                    .known()
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| id.split('-').next().unwrap_or("").to_owned());
                let set = vec![
                    ("guest", guest),
                    ("id", id.to_owned()),
                    ("source", job.source.known().unwrap_or(node).to_owned()),
                    ("target", job.target.known().unwrap_or("").to_owned()),
                ];
                Some((set, job))
            })
            .collect();
        let each = |value: &dyn Fn(&Job) -> Option<f64>| -> Vec<Sample> {
            jobs.iter()
                .filter_map(|(set, job)| Some((set.clone(), value(job)?)))
                .collect()
        };
        let time = |t: Option<i64>| t.filter(|t| *t > 0).map(|t| t as f64);
        gauge_family(
            encoder,
            "proxmox_replication_last_sync_timestamp_seconds",
            "When a replication job last synced successfully, as a Unix time (absent before \
             its first success).",
            each(&|j| time(j.last_sync.known())),
        )?;
        gauge_family(
            encoder,
            "proxmox_replication_last_duration_seconds",
            "How long a replication job's last run took, in seconds.",
            each(&|j| j.duration.known()),
        )?;
        gauge_family(
            encoder,
            "proxmox_replication_failed_syncs",
            "Failed runs of a replication job in a row (0 after a success).",
            each(&|j| Some(j.fail_count.known().unwrap_or(0) as f64)),
        )?;
        gauge_family(
            encoder,
            "proxmox_replication_next_sync_timestamp_seconds",
            "When a replication job runs next, as a Unix time.",
            each(&|j| time(j.next_sync.known())),
        )?;
        gauge_family(
            encoder,
            "proxmox_replication_last_failed",
            "Whether a replication job's last run failed (1) or not (0).",
            each(&|j| {
                let failed = j.error.known().is_some_and(|e| !e.is_empty())
                    || j.fail_count.known().unwrap_or(0) > 0;
                Some(f64::from(u8::from(failed)))
            }),
        )
    }
}
