//! `pbs_tasks`: the backup server's failed tasks per type (`backup`, `verificationjob`,
//! `syncjob`, `garbage_collection`, `prune`, …) from its task archive,
//! `/nodes/localhost/tasks?errors=1&since=…`, one request a window. Counted as PVE's `tasks`
//! collector counts a node's (see [`crate::collectors::tasks`]): per UTC day, from the
//! archive, so restarts and a second exporter count the same; warnings apart.

use std::time::SystemTime;

use prometheus_client::encoding::DescriptorEncoder;

use super::{NODE, get, single};
use crate::collectors::tasks::{
    Ended, LIMIT, TallyFamilies, encode_tally, ended_as, midnight, tally,
};
use crate::collectors::{BoxFuture, Collected, Collector, Context, Cost, Families, Spec, View};
use crate::pve::Known;

pub const NAME: &str = "pbs_tasks";

pub struct Tasks;
pub static COLLECTOR: Tasks = Tasks;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: true,
    operations: &["GET /nodes/{node}/tasks"],
    cost: Cost::One,
    refresh: None,
};

const DAY: i64 = 86_400;

impl Collector for Tasks {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        let since = midnight(SystemTime::now()) - DAY;
        let path = format!("/nodes/{NODE}/tasks");
        Box::pin(async move {
            let answer = get(&ctx.dispatcher, &path, |c| async move {
                (c.get_nodes_node_tasks().node(NODE))
                    .errors(true)
                    .since(since)
                    .limit(LIMIT)
                    .send()
                    .await
            });
            single(answer, |a| {
                let ended: Ended = (a.data.iter())
                    .filter_map(|t| {
                        ended_as(t.status.known(), t.worker_type.known(), t.endtime.known())
                    })
                    .collect();
                Box::new(Failed(ended))
            })
            .await
        })
    }
}

const FAMILIES: TallyFamilies = TallyFamilies {
    failed: (
        "proxmox_pbs_tasks_failed",
        "Tasks of this type on the backup server that ended with an error since 00:00 UTC \
         (its task archive; starts again from 0 each day).",
    ),
    warned: (
        "proxmox_pbs_tasks_warned",
        "Tasks of this type on the backup server that succeeded with warnings since 00:00 UTC \
         (starts again from 0 each day).",
    ),
    last_failure: (
        "proxmox_pbs_task_last_failure_timestamp_seconds",
        "When the last task of this type on the backup server that ended with an error ended, \
         as a Unix time (failures of the last one to two days; none before).",
    ),
};

#[derive(Debug)]
struct Failed(Ended);

impl Families for Failed {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let tally = tally(&self.0, midnight(view.taken_at));
        let each = tally.iter().map(|(kind, t)| ([("type", *kind)], t));
        encode_tally(each, &FAMILIES, encoder)
    }
}
