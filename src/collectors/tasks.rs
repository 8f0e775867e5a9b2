//! `tasks`: failed tasks per node and type, from each node's task archive:
//! `/nodes/{node}/tasks?errors=1&since=…`, one request per node and window.
//!
//! - **Counted from PVE's archive, per UTC day.** Each window asks each node for its finished
//!   tasks that did not end `OK` and started since the UTC midnight before last, and counts
//!   those that *ended* since the last UTC midnight. The counters are a function of the node's
//!   archive, not of what this process happened to see: a second scrape in the window, the
//!   next window, a restart of the exporter (or a second one beside it) give the same values,
//!   so no task is counted twice, and none that ended while the exporter was down is lost.
//!   At UTC midnight they start again from 0, which `increase()` and `rate()` read as a
//!   counter reset; a task that failed after the last scrape before midnight is the one they
//!   miss. (`/cluster/tasks` is no source for this: it keeps only the cluster's last few
//!   dozen tasks.)
//! - **Warnings apart.** PVE ends a task that succeeded with warnings (a vzdump that skipped a
//!   file) as `WARNINGS: n`: counted in its own family, not as a failure. Anything else but
//!   `OK` (`job errors`, `interrupted by signal`, an error message) is a failure.
//! - **Labels** are the node and PVE's task type (`vzdump`, `qmstart`, `qmigrate`,
//!   `vzmigrate`, …); never the UPID or a message, which would make a series per task.
//! - A task that ran for more than a day before it ended is not in the answer (PVE filters on
//!   the start time).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Spec, View};
use super::{each_online_node, sorted_family, unix_seconds};
use crate::pve::client::types::GetNodesNodeTasksResponseDataItem;
use crate::pve::{ApiError, Dispatcher, Known, named};

pub const NAME: &str = "tasks";

pub type Task = GetNodesNodeTasksResponseDataItem;

/// At most this many tasks per answer: two days of a node's failures, however bad.
pub const LIMIT: u64 = 2000;

const DAY: i64 = 86_400;

pub struct Tasks;
pub static COLLECTOR: Tasks = Tasks;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: false,
    operations: &["GET /nodes/{node}/tasks"],
    cost: Cost::PerNode,
    refresh: None,
};

impl Collector for Tasks {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(each_online_node(ctx, fetch, |nodes| {
            Box::new(Failed(nodes))
        }))
    }
}

/// The last UTC midnight at or before `at`, in Unix seconds.
pub fn midnight(at: SystemTime) -> i64 {
    (unix_seconds(at) as i64).div_euclid(DAY) * DAY
}

/// What is kept of a node's answer: each task that did not end `OK` as (type, end, warning).
pub type Ended = Vec<(compact_str::CompactString, i64, bool)>;

async fn fetch(dispatcher: Arc<Dispatcher>, node: String) -> Result<Ended, ApiError> {
    let since = midnight(SystemTime::now()) - DAY;
    let path = format!("/nodes/{node}/tasks");
    let answer = dispatcher
        .call(&path, |c| {
            let node = node.clone();
            async move {
                c.get_nodes_node_tasks()
                    .node(node)
                    .errors(true)
                    .since(since)
                    .limit(LIMIT)
                    .send()
                    .await
            }
        })
        .await?;
    Ok(answer.data.iter().filter_map(ended).collect())
}

/// A finished task that did not end `OK`: its type, end time and whether it only warned.
fn ended(task: &Task) -> Option<(compact_str::CompactString, i64, bool)> {
    ended_as(
        task.status.known(),
        task.type_.known(),
        task.endtime.known(),
    )
}

/// A task of `kind` that ended at `end` with `status`, unless it ended `OK` (or has not).
pub fn ended_as(
    status: Option<&str>,
    kind: Option<&str>,
    end: Option<i64>,
) -> Option<(compact_str::CompactString, i64, bool)> {
    let status = named(status)?.trim();
    if status.eq_ignore_ascii_case("OK") {
        return None;
    }
    Some((named(kind)?.into(), end?, is_warning(status)))
}

/// PVE's status of a task that succeeded with warnings: `WARNINGS: 3`.
pub fn is_warning(status: &str) -> bool {
    status
        .strip_prefix("WARNINGS:")
        .is_some_and(|n| n.trim().parse::<u64>().is_ok())
}

#[derive(Debug)]
struct Failed(Vec<(String, Ended)>);

/// Per (node, type): failures and warnings since `origin`, and the last failure's end.
#[derive(Default)]
pub struct Tally {
    pub failed: u64,
    pub warned: u64,
    pub last_failure: Option<i64>,
}

impl Failed {
    fn tally(&self, origin: i64) -> BTreeMap<(&str, &str), Tally> {
        let mut tally = BTreeMap::new();
        for (node, tasks) in &self.0 {
            for (kind, end, warning) in tasks {
                let entry: &mut Tally = tally.entry((node.as_str(), kind.as_str())).or_default();
                entry.add(*end, *warning, origin);
            }
        }
        tally
    }
}

/// Every task type's tally of `tasks` (a backup server's, or one node's).
pub fn tally(tasks: &Ended, origin: i64) -> BTreeMap<&str, Tally> {
    let mut tally = BTreeMap::new();
    for (kind, end, warning) in tasks {
        let entry: &mut Tally = tally.entry(kind.as_str()).or_default();
        entry.add(*end, *warning, origin);
    }
    tally
}

impl Tally {
    /// A task that ended at `end`, counted when it ended since `origin`.
    fn add(&mut self, end: i64, warning: bool, origin: i64) {
        if warning {
            self.warned += u64::from(end >= origin);
        } else {
            self.failed += u64::from(end >= origin);
            self.last_failure = self.last_failure.max(Some(end));
        }
    }
}

impl Families for Failed {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let tally = self.tally(midnight(view.taken_at));
        encode_tally(
            (tally.iter()).map(|(&(node, kind), t)| ([("node", node), ("type", kind)], t)),
            &NODE_FAMILIES,
            encoder,
        )
    }
}

/// The names and help of the three families a tally makes.
pub struct TallyFamilies {
    pub failed: (&'static str, &'static str),
    pub warned: (&'static str, &'static str),
    pub last_failure: (&'static str, &'static str),
}

const NODE_FAMILIES: TallyFamilies = TallyFamilies {
    failed: (
        "proxmox_node_tasks_failed",
        "Tasks of this type on the node that ended with an error since 00:00 UTC (PVE's task \
         archive; starts again from 0 each day).",
    ),
    warned: (
        "proxmox_node_tasks_warned",
        "Tasks of this type on the node that succeeded with warnings (`WARNINGS: n`) since \
         00:00 UTC (starts again from 0 each day).",
    ),
    last_failure: (
        "proxmox_node_task_last_failure_timestamp_seconds",
        "When the last task of this type on the node that ended with an error ended, as a \
         Unix time (failures of the last one to two days; none before).",
    ),
};

/// Writes a tally's three families, its entries sorted by their labels. Every entry in the
/// answer (two days) has a series, 0 until its first failure of the day: a counter that
/// appeared at 1 would hide that failure from `increase()`.
pub fn encode_tally<'t, L>(
    tally: impl Iterator<Item = (L, &'t Tally)> + Clone,
    names: &TallyFamilies,
    encoder: &mut DescriptorEncoder,
) -> std::fmt::Result
where
    L: prometheus_client::encoding::EncodeLabelSet,
{
    let (name, help) = names.failed;
    let failed = tally.clone().map(|(l, t)| (l, t.failed as f64));
    sorted_family(encoder, name, help, MetricType::Counter, failed)?;
    let (name, help) = names.warned;
    let warned = tally.clone().map(|(l, t)| (l, t.warned as f64));
    sorted_family(encoder, name, help, MetricType::Counter, warned)?;
    let (name, help) = names.last_failure;
    let last = tally.filter_map(|(l, t)| Some((l, t.last_failure? as f64)));
    sorted_family(encoder, name, help, MetricType::Gauge, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_starts_at_utc_midnight() {
        let at = |s: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(midnight(at(1_780_272_000)), 1_780_272_000);
        assert_eq!(midnight(at(1_780_272_000 + 86_399)), 1_780_272_000);
        assert_eq!(midnight(at(1_780_272_000 - 1)), 1_780_272_000 - 86_400);
    }

    #[test]
    fn warnings_are_successes_and_everything_else_but_ok_fails() {
        assert!(is_warning("WARNINGS: 2"));
        assert!(!is_warning("WARNINGS: many"));
        assert!(!is_warning("job errors"));
        let task = |status: &str| -> Task {
            serde_json::from_value(serde_json::json!({
                "upid": "UPID:pve1:x", "node": "pve1", "type": "vzdump", "status": status,
                "starttime": 100, "endtime": 200,
            }))
            .unwrap()
        };
        assert_eq!(ended(&task("OK")), None);
        assert_eq!(
            ended(&task("WARNINGS: 1")),
            Some(("vzdump".into(), 200, true))
        );
        assert_eq!(
            ended(&task("job errors")),
            Some(("vzdump".into(), 200, false))
        );
        assert_eq!(
            ended(&task("unexpected status")),
            Some(("vzdump".into(), 200, false))
        );
    }

    #[test]
    fn only_what_ended_since_midnight_counts_and_the_last_failure_is_kept() {
        let failed = Failed(vec![(
            "pve1".into(),
            vec![
                ("vzdump".into(), 1_000 - 10, false),
                ("vzdump".into(), 1_000 + 5, false),
                ("vzdump".into(), 1_000 + 7, true),
                ("qmstart".into(), 1_000 - 3, false),
            ],
        )]);
        let tally = failed.tally(1_000);
        let vzdump = &tally[&("pve1", "vzdump")];
        assert_eq!(
            (vzdump.failed, vzdump.warned, vzdump.last_failure),
            (1, 1, Some(1_005))
        );
        let qmstart = &tally[&("pve1", "qmstart")];
        assert_eq!((qmstart.failed, qmstart.last_failure), (0, Some(997)));
    }
}
