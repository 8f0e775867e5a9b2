//! `pbs_jobs`: the garbage collection, verify, sync and prune jobs: how each one's last run
//! ended, when, and when the next is due. One request per kind a window (`/admin/gc`,
//! `/admin/verify`, `/admin/sync`, `/admin/prune`).
//!
//! - **States.** PBS keeps a job's last task state as `OK`-like text: `ok`, `WARNINGS: n`
//!   (success with warnings) or the error message. A job whose last task has a UPID but no
//!   state is running; one with neither never ran (no last-run series, `never` in the info).
//! - **Sync jobs in both directions.** PBS 3.3 added push jobs and lists them only with
//!   `sync-direction=all`; older servers refuse the parameter (400), and are asked again
//!   without it.
//! - **Permissions.** Without `RemoteAudit` on `/remote` PBS lists no sync job instead of
//!   answering 403: an empty list is logged once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use compact_str::CompactString;
use prometheus_client::encoding::DescriptorEncoder;

use super::{get, outcome};
use crate::collectors::{BoxFuture, Collected, Collector, Context, Cost, Families, Spec, View};
use crate::collectors::{gauge_family, labels};
use crate::pve::{ApiError, ErrorKind, Known, named};

pub const NAME: &str = "pbs_jobs";

pub struct Jobs;
pub static COLLECTOR: Jobs = Jobs;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: true,
    operations: &[
        "GET /admin/gc",
        "GET /admin/verify",
        "GET /admin/sync",
        "GET /admin/prune",
    ],
    cost: Cost::Fixed(4),
    refresh: None,
};

/// How a job's last run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Ok,
    Warning,
    Failed,
    Running,
    Never,
}

impl State {
    /// From PBS's last-run state text and whether a last run's UPID is known.
    pub fn of(state: Option<&str>, upid: bool) -> State {
        match named(state).map(str::trim) {
            Some(s) if s.eq_ignore_ascii_case("ok") => State::Ok,
            Some(s) if crate::collectors::tasks::is_warning(&s.to_ascii_uppercase()) => {
                State::Warning
            }
            Some(_) => State::Failed,
            None if upid => State::Running,
            None => State::Never,
        }
    }

    fn label(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::Failed => "error",
            State::Running => "running",
            State::Never => "never",
        }
    }
}

/// One job as kept.
#[derive(Debug, PartialEq)]
pub struct Job {
    /// `gc`, `verify`, `sync` or `prune`.
    pub kind: &'static str,
    /// The job's id (a GC job's: its datastore).
    pub id: CompactString,
    pub datastore: CompactString,
    pub schedule: CompactString,
    pub state: State,
    pub last_end: Option<i64>,
    pub next_run: Option<i64>,
    /// A GC run's length.
    pub duration: Option<i64>,
}

/// The fields every kind of job has, read from one list item.
macro_rules! job {
    ($kind:literal, $item:expr, $id:expr, $upid:expr) => {{
        let item = $item;
        Job {
            kind: $kind,
            id: $id.unwrap_or("").into(),
            datastore: item.store.known().unwrap_or("").into(),
            schedule: item.schedule.known().unwrap_or("").into(),
            state: State::of(item.last_run_state.known(), $upid.known().is_some()),
            last_end: item.last_run_endtime.known(),
            next_run: item.next_run.known(),
            duration: None,
        }
    }};
}

/// Whether PBS refused `sync-direction` (before 3.3).
fn refused_direction(error: &ApiError) -> bool {
    matches!(&error.kind, ErrorKind::Refused { status, reason }
        if status.as_u16() == 400 && reason.contains("sync-direction"))
}

static EMPTY_SYNC_LOGGED: AtomicBool = AtomicBool::new(false);

impl Collector for Jobs {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move {
            let started = Instant::now();
            let d = &ctx.dispatcher;
            let sync = async {
                let all = get(d, "/admin/sync", |c| async move {
                    c.get_admin_sync().sync_direction("all").send().await
                })
                .await;
                match all {
                    Err(error) if refused_direction(&error) => {
                        get(d, "/admin/sync", |c| async move {
                            c.get_admin_sync().send().await
                        })
                        .await
                    }
                    other => other,
                }
            };
            let (gc, verify, sync, prune) = tokio::join!(
                get(
                    d,
                    "/admin/gc",
                    |c| async move { c.get_admin_gc().send().await }
                ),
                get(d, "/admin/verify", |c| async move {
                    c.get_admin_verify().send().await
                }),
                sync,
                get(d, "/admin/prune", |c| async move {
                    c.get_admin_prune().send().await
                }),
            );
            let mut jobs = Vec::new();
            let mut errors = Vec::new();
            match gc {
                Ok(answer) => jobs.extend(answer.data.iter().map(|g| Job {
                    duration: g.duration.known(),
                    ..job!("gc", g, g.store.known(), g.upid)
                })),
                Err(error) => errors.push(error),
            }
            match verify {
                Ok(answer) => jobs.extend(
                    answer
                        .data
                        .iter()
                        .map(|v| job!("verify", v, v.id.known(), v.last_run_upid)),
                ),
                Err(error) => errors.push(error),
            }
            match sync {
                Ok(answer) => {
                    if answer.data.is_empty() && !EMPTY_SYNC_LOGGED.swap(true, Ordering::Relaxed) {
                        tracing::info!(
                            "the backup server lists no sync job: if it has some, the token lacks \
                             RemoteAudit on /remote (PBS then lists none instead of refusing)"
                        );
                    }
                    jobs.extend(
                        answer
                            .data
                            .iter()
                            .map(|s| job!("sync", s, s.id.known(), s.last_run_upid)),
                    );
                }
                Err(error) => errors.push(error),
            }
            match prune {
                Ok(answer) => jobs.extend(
                    answer
                        .data
                        .iter()
                        .map(|p| job!("prune", p, p.id.known(), p.last_run_upid)),
                ),
                Err(error) => errors.push(error),
            }
            outcome(started, Box::new(Listed(jobs)), errors)
        })
    }
}

#[derive(Debug)]
struct Listed(Vec<Job>);

impl Families for Listed {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let key = |j: &Job| labels([("datastore", &j.datastore), ("id", &j.id), ("type", j.kind)]);
        let each = |pick: &dyn Fn(&Job) -> Option<f64>| {
            (self.0.iter())
                .filter_map(|j| Some((key(j), pick(j)?)))
                .collect::<Vec<_>>()
        };
        gauge_family(
            encoder,
            "proxmox_pbs_job_info",
            "A job (type: gc, verify, sync or prune) with its schedule and its last run's \
             state (ok, warning, error, running, never); always 1.",
            (self.0.iter())
                .map(|j| {
                    let set = labels([
                        ("datastore", &j.datastore),
                        ("id", &j.id),
                        ("schedule", &j.schedule),
                        ("state", j.state.label()),
                        ("type", j.kind),
                    ]);
                    (set, 1.0)
                })
                .collect(),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_job_last_run_success",
            "Whether a job's last run succeeded (1, warnings included) or failed (0); no series \
             while it runs or when it never ran.",
            each(&|j| match j.state {
                State::Ok | State::Warning => Some(1.0),
                State::Failed => Some(0.0),
                State::Running | State::Never => None,
            }),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_job_last_run_end_timestamp_seconds",
            "When a job's last run ended, as a Unix time.",
            each(&|j| Some(j.last_end? as f64)),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_job_next_run_timestamp_seconds",
            "When a job runs next by its schedule, as a Unix time.",
            each(&|j| Some(j.next_run? as f64)),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_job_last_run_duration_seconds",
            "How long a garbage collection job's last run took.",
            each(&|j| Some(j.duration? as f64)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::State;

    #[test]
    fn a_jobs_state_is_read_from_its_last_run() {
        assert_eq!(State::of(Some("ok"), true), State::Ok);
        assert_eq!(State::of(Some("WARNINGS: 2"), true), State::Warning);
        assert_eq!(
            State::of(Some("verification failed - please check the log"), true),
            State::Failed
        );
        assert_eq!(State::of(None, true), State::Running);
        assert_eq!(State::of(Some(" "), false), State::Never);
    }
}
