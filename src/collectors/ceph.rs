//! `ceph`: `/cluster/ceph/status`, one request for the whole cluster: overall health, OSDs
//! total, up and in, placement groups by state, space used and total, monitors in quorum.
//!
//! A cluster without Ceph answers with PVE's error `binary not installed: /usr/bin/ceph-mon`
//! (Ceph not installed) or `pveceph configuration not initialized` (installed, never set up):
//! those two exact answers mean "no Ceph here", so the collector exports nothing and still
//! succeeds. Every other failure is a failure.

use prometheus_client::encoding::DescriptorEncoder;

use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Spec, View};
use super::{cluster_wide_unless, gauge, gauge_family, labels};
use crate::pve::client::types::GetClusterCephStatusResponseData;
use crate::pve::{ErrorKind, Known};

pub const NAME: &str = "ceph";
const PATH: &str = "/cluster/ceph/status";

pub type Status = GetClusterCephStatusResponseData;

pub struct Ceph;
pub static COLLECTOR: Ceph = Ceph;

pub static SPEC: Spec = Spec {
    name: NAME,
    // One request a window would allow it, but the seed's default output stays as it is.
    enabled_by_default: false,
    operations: &["GET /cluster/ceph/status"],
    cost: Cost::One,
    refresh: None,
};

/// PVE's answers for a cluster that has no Ceph: not installed, or installed but not set up.
pub fn means_no_ceph(kind: &ErrorKind) -> bool {
    match kind {
        ErrorKind::Refused { reason, .. } => {
            reason.starts_with("binary not installed: ")
                || reason == "pveceph configuration not initialized"
        }
        _ => false,
    }
}

impl Collector for Ceph {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(cluster_wide_unless(
            ctx,
            PATH,
            |c| async move { c.get_cluster_ceph_status().send().await },
            |answer| Box::new(Health(answer.data)),
            means_no_ceph,
        ))
    }
}

#[derive(Debug)]
struct Health(Status);

/// Ceph's health as a number, as Ceph's own exporter gives it: 0 OK, 1 WARN, 2 ERR.
pub fn health_value(status: &str) -> Option<f64> {
    match status.trim() {
        "HEALTH_OK" => Some(0.0),
        "HEALTH_WARN" => Some(1.0),
        "HEALTH_ERR" => Some(2.0),
        _ => None,
    }
}

impl Families for Health {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let status = s.health.as_ref().and_then(|h| h.status.known());
        if let Some(value) = status.and_then(health_value) {
            gauge(
                encoder,
                "proxmox_ceph_health_status",
                "Ceph's overall health: 0 HEALTH_OK, 1 HEALTH_WARN, 2 HEALTH_ERR.",
                value,
            )?;
        }
        // Newer Ceph releases give the OSD counts in `osdmap`, older ones one level deeper.
        let osdmap = s.osdmap.as_ref();
        let nested = osdmap.and_then(|o| o.osdmap.as_ref());
        let osds = |flat: Option<i64>, deep: Option<i64>| flat.or(deep).map(|n| n as f64);
        let counts = [
            (
                "proxmox_ceph_osds",
                "OSDs in the Ceph cluster.",
                osds(
                    osdmap.and_then(|o| o.num_osds.known()),
                    nested.and_then(|o| o.num_osds.known()),
                ),
            ),
            (
                "proxmox_ceph_osds_up",
                "Ceph OSDs up.",
                osds(
                    osdmap.and_then(|o| o.num_up_osds.known()),
                    nested.and_then(|o| o.num_up_osds.known()),
                ),
            ),
            (
                "proxmox_ceph_osds_in",
                "Ceph OSDs in the cluster's data placement.",
                osds(
                    osdmap.and_then(|o| o.num_in_osds.known()),
                    nested.and_then(|o| o.num_in_osds.known()),
                ),
            ),
        ];
        for (name, help, value) in counts {
            if let Some(value) = value {
                gauge(encoder, name, help, value)?;
            }
        }
        let pgmap = s.pgmap.as_ref();
        let by_state = pgmap
            .and_then(|p| p.pgs_by_state.as_ref())
            .map(|states| {
                states
                    .iter()
                    .filter_map(|st| {
                        let name = st.state_name.known()?;
                        Some((labels([("state", name)]), st.count.known()? as f64))
                    })
                    .collect()
            })
            .unwrap_or_default();
        gauge_family(
            encoder,
            "proxmox_ceph_placement_groups",
            "Ceph placement groups by state (active+clean, degraded, …).",
            by_state,
        )?;
        let bytes = [
            (
                "proxmox_ceph_used_bytes",
                "Raw space used in the Ceph cluster, in bytes.",
                pgmap.and_then(|p| p.bytes_used.known()),
            ),
            (
                "proxmox_ceph_size_bytes",
                "Raw space of the Ceph cluster, in bytes.",
                pgmap.and_then(|p| p.bytes_total.known()),
            ),
            (
                "proxmox_ceph_available_bytes",
                "Raw space available in the Ceph cluster, in bytes.",
                pgmap.and_then(|p| p.bytes_avail.known()),
            ),
        ];
        for (name, help, value) in bytes {
            if let Some(value) = value {
                gauge(encoder, name, help, value as f64)?;
            }
        }
        let monmap = s.monmap.as_ref();
        let monitors = monmap
            .and_then(|m| m.num_mons.known())
            .or_else(|| Some(monmap?.mons.as_ref()?.len() as i64));
        if let Some(monitors) = monitors {
            gauge(
                encoder,
                "proxmox_ceph_monitors",
                "Ceph monitors configured.",
                monitors as f64,
            )?;
        }
        if let Some(quorum) = &s.quorum_names {
            gauge(
                encoder,
                "proxmox_ceph_monitors_in_quorum",
                "Ceph monitors in quorum.",
                quorum.len() as f64,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn only_the_no_ceph_answers_mean_no_ceph() {
        let refused = |reason: &str| ErrorKind::Refused {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            reason: reason.into(),
        };
        assert!(means_no_ceph(&refused(
            "binary not installed: /usr/bin/ceph-mon"
        )));
        assert!(means_no_ceph(&refused(
            "pveceph configuration not initialized"
        )));
        assert!(!means_no_ceph(&refused(
            "rados_connect failed - Permission denied"
        )));
        assert!(!means_no_ceph(&ErrorKind::Status(
            StatusCode::INTERNAL_SERVER_ERROR
        )));
        assert!(!means_no_ceph(&ErrorKind::Status(StatusCode::FORBIDDEN)));
    }

    #[test]
    fn health_words() {
        assert_eq!(health_value("HEALTH_OK"), Some(0.0));
        assert_eq!(health_value("HEALTH_WARN"), Some(1.0));
        assert_eq!(health_value("HEALTH_ERR"), Some(2.0));
        assert_eq!(health_value("HEALTH_UNKNOWN"), None);
    }
}
