//! `ha`: `/cluster/ha/status/current`, one request for the whole cluster. The HA manager's
//! quorum and state, each node's local resource manager state (active, idle, maintenance, …)
//! and one series per HA-managed resource with its state as a label. Guests that HA does not
//! manage have no series.

use compact_str::CompactString;
use prometheus_client::encoding::DescriptorEncoder;

use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Sample, Spec, View};
use super::{cluster_wide, gauge, gauge_family, labels};
use crate::pve::client::types::GetClusterHaStatusCurrentResponseDataItem;
use crate::pve::{Known, named};

pub const NAME: &str = "ha";
const PATH: &str = "/cluster/ha/status/current";

pub type Entry = GetClusterHaStatusCurrentResponseDataItem;

pub struct Ha;
pub static COLLECTOR: Ha = Ha;

pub static SPEC: Spec = Spec {
    name: NAME,
    // One request a window would allow it, but the seed's default output stays as it is.
    enabled_by_default: false,
    operations: &["GET /cluster/ha/status/current"],
    cost: Cost::One,
    refresh: None,
};

impl Collector for Ha {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(cluster_wide(
            ctx,
            PATH,
            |c| async move { c.get_cluster_ha_status_current().send().await },
            |answer| Box::new(Status::from(answer.data)),
        ))
    }
}

/// What the HA status says, kept as it is written for the window: the quorum, where the
/// manager and each node's LRM run with their state, and each resource's label values, in the
/// answer's order. A generated entry holds every field PVE may send (2,500 HA guests kept
/// 2.5 MB of them; these take a tenth).
#[derive(Debug, Default)]
struct Status {
    /// The first `quorum` entry's flag.
    quorate: Option<bool>,
    /// `node`, `state` of each `master` entry.
    managers: Vec<[CompactString; 2]>,
    /// `node`, `state` of each `lrm` entry.
    lrms: Vec<[CompactString; 2]>,
    /// `node`, `request_state`, `sid`, `state` of each `service` entry.
    resources: Vec<[CompactString; 4]>,
}

impl From<Vec<Entry>> for Status {
    fn from(entries: Vec<Entry>) -> Self {
        let mut status = Status::default();
        let mut quorum_seen = false;
        for entry in &entries {
            match entry_kind(entry) {
                "quorum" if !quorum_seen => {
                    quorum_seen = true;
                    status.quorate = entry.quorate.known();
                }
                kind @ ("master" | "lrm") => {
                    // An entry without a node (`lrm:`) stands for no node at all.
                    let Some(node) = named(entry.node.known()) else {
                        continue;
                    };
                    let state = state_in(entry.status.known().unwrap_or(""));
                    let list = if kind == "master" {
                        &mut status.managers
                    } else {
                        &mut status.lrms
                    };
                    list.push([node.into(), state.into()]);
                }
                "service" => {
                    let Some(sid) = named(entry.sid.known()) else {
                        continue;
                    };
                    status.resources.push([
                        entry.node.known().unwrap_or("").into(),
                        entry.request_state.known().unwrap_or("").into(),
                        sid.into(),
                        entry.state.known().unwrap_or("").into(),
                    ]);
                }
                _ => {}
            }
        }
        status.managers.shrink_to_fit();
        status.lrms.shrink_to_fit();
        status.resources.shrink_to_fit();
        status
    }
}

/// The kind of an entry from its id (`quorum`, `master`, `lrm:pve1`, `service:vm:100`); the
/// `type` field is typed differently by different PVE versions' descriptions.
fn entry_kind(entry: &Entry) -> &str {
    let id = entry.id.known().unwrap_or("");
    id.split(':').next().unwrap_or("")
}

/// The state inside a manager or node status text, `pve1 (active, Wed Nov 26 …)`:
/// `active`, `idle`, `maintenance` (for `maintenance mode`), `dead` (for an old timestamp),
/// `unknown` (status unreadable), or the word PVE gives (`wait_for_agent_lock`, …).
pub fn state_in(status: &str) -> String {
    let Some(open) = status.find('(') else {
        return "unknown".into();
    };
    let inner = &status[open + 1..];
    let word = inner
        .split([',', ')'])
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if word.starts_with("old timestamp") {
        "dead".into()
    } else if word.starts_with("unable to read") || word.is_empty() {
        "unknown".into()
    } else {
        word.trim_end_matches(" mode").replace(' ', "_")
    }
}

impl Families for Status {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        if let Some(quorate) = self.quorate {
            gauge(
                encoder,
                "proxmox_ha_quorate",
                "Whether the node answering for HA has quorum (1) or not (0).",
                f64::from(u8::from(quorate)),
            )?;
        }
        // The manager and each node's LRM: where, and the state in their status text.
        let states = |list: &[[CompactString; 2]]| -> Vec<Sample> {
            (list.iter())
                .map(|[node, state]| (labels([("node", node), ("state", state)]), 1.0))
                .collect()
        };
        gauge_family(
            encoder,
            "proxmox_ha_manager_info",
            "The HA cluster manager: the node it runs on and its state (active, idle, dead); \
             always 1. Absent while HA was never configured.",
            states(&self.managers),
        )?;
        gauge_family(
            encoder,
            "proxmox_ha_node_state",
            "A node's HA local resource manager state (active, idle, maintenance, dead, …) as \
             the `state` label; always 1, one series per node.",
            states(&self.lrms),
        )?;
        let resources: Vec<Sample> = (self.resources.iter())
            .map(|[node, request_state, sid, state]| {
                let set = labels([
                    ("node", node),
                    ("request_state", request_state),
                    ("sid", sid),
                    ("state", state),
                ]);
                (set, 1.0)
            })
            .collect();
        gauge_family(
            encoder,
            "proxmox_ha_resource_state",
            "An HA-managed resource (`sid` such as vm:100) with its state (started, stopped, \
             error, fence, recovery, migrate, …) and requested state as labels; always 1.",
            resources,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::state_in;

    #[test]
    fn states_from_status_texts() {
        assert_eq!(
            state_in("pve1 (active, Wed Nov 26 10:00:00 2026)"),
            "active"
        );
        assert_eq!(
            state_in("pve2 (maintenance mode, Wed Nov 26 10:00:00 2026)"),
            "maintenance"
        );
        assert_eq!(
            state_in("pve3 (old timestamp - dead?, Wed Nov 26 09:00:00 2026)"),
            "dead"
        );
        assert_eq!(state_in("pve3 (unable to read lrm status)"), "unknown");
        assert_eq!(
            state_in("pve1 (wait_for_agent_lock, Wed Nov 26 10:00:00 2026)"),
            "wait_for_agent_lock"
        );
        assert_eq!(
            state_in("pve1 (idle, Wed Nov 26 10:00:00 2026) - static load CRS"),
            "idle"
        );
        assert_eq!(state_in("garbage"), "unknown");
    }
}
