//! `ha`: `/cluster/ha/status/current`, one request for the whole cluster. The HA manager's
//! quorum and state, each node's local resource manager state (active, idle, maintenance, …)
//! and one series per HA-managed resource with its state as a label. Guests that HA does not
//! manage have no series.

use prometheus_client::encoding::DescriptorEncoder;

use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Sample, Spec, View};
use super::{cluster_wide, gauge, gauge_family, labels};
use crate::pve::{Known, named};
use crate::pve::client::types::GetClusterHaStatusCurrentResponseDataItem;

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
            |answer| Box::new(Status(answer.data)),
        ))
    }
}

#[derive(Debug)]
struct Status(Vec<Entry>);

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
        let entries = &self.0;
        if let Some(quorum) = entries.iter().find(|e| entry_kind(e) == "quorum")
            && let Some(quorate) = quorum.quorate.known()
        {
            gauge(
                encoder,
                "proxmox_ha_quorate",
                "Whether the node answering for HA has quorum (1) or not (0).",
                f64::from(u8::from(quorate)),
            )?;
        }
        // The manager and each node's LRM: where, and the state in their status text.
        let states = |kind: &str| -> Vec<Sample> {
            entries
                .iter()
                .filter(|e| entry_kind(e) == kind)
                // An entry without a node (`lrm:`) stands for no node at all.
                .filter_map(|e| {
                    let node = named(e.node.known())?;
                    let state = state_in(e.status.known().unwrap_or(""));
                    Some((labels([("node", node), ("state", &state)]), 1.0))
                })
                .collect()
        };
        gauge_family(
            encoder,
            "proxmox_ha_manager_info",
            "The HA cluster manager: the node it runs on and its state (active, idle, dead); \
             always 1. Absent while HA was never configured.",
            states("master"),
        )?;
        gauge_family(
            encoder,
            "proxmox_ha_node_state",
            "A node's HA local resource manager state (active, idle, maintenance, dead, …) as \
             the `state` label; always 1, one series per node.",
            states("lrm"),
        )?;
        let resources: Vec<Sample> = entries
            .iter()
            .filter(|e| entry_kind(e) == "service")
            .filter_map(|e| {
                let sid = named(e.sid.known())?;
                let set = labels([
                    ("node", e.node.known().unwrap_or("")),
                    ("request_state", e.request_state.known().unwrap_or("")),
                    ("sid", sid),
                    ("state", e.state.known().unwrap_or("")),
                ]);
                Some((set, 1.0))
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
        assert_eq!(state_in("pve1 (active, Wed Nov 26 10:00:00 2026)"), "active");
        assert_eq!(state_in("pve2 (maintenance mode, Wed Nov 26 10:00:00 2026)"), "maintenance");
        assert_eq!(state_in("pve3 (old timestamp - dead?, Wed Nov 26 09:00:00 2026)"), "dead");
        assert_eq!(state_in("pve3 (unable to read lrm status)"), "unknown");
        assert_eq!(state_in("pve1 (wait_for_agent_lock, Wed Nov 26 10:00:00 2026)"), "wait_for_agent_lock");
        assert_eq!(state_in("pve1 (idle, Wed Nov 26 10:00:00 2026) - static load CRS"), "idle");
        assert_eq!(state_in("garbage"), "unknown");
    }
}
