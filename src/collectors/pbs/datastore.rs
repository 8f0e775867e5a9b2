//! `pbs_datastore`: every datastore's size, use, estimated full date and last garbage
//! collection's figures from `/status/datastore-usage` (one request for all datastores), and
//! its maintenance mode from `/admin/datastore`.
//!
//! - A datastore PBS cannot open (offline maintenance, being removed, not mounted) is listed
//!   with an `error` instead of its figures: it gets `proxmox_pbs_datastore_up 0` and an
//!   error series with the reason, and nothing else fails.
//! - PBS estimates the full date by a linear fit over the last month's use; `0` means no
//!   growth, a date in the past a shrinking datastore. Only a date still ahead is exported.

use std::time::Instant;

use prometheus_client::encoding::DescriptorEncoder;

use super::{get, outcome, unavailable};
use crate::collectors::{BoxFuture, Collected, Collector, Context, Cost, Families, Spec, View};
use crate::collectors::{Sample, gauge_family, labels, unix_seconds};
use crate::pbs::client::types::{
    GetAdminDatastoreResponseDataItem, GetStatusDatastoreUsageResponseDataItem,
    GetStatusDatastoreUsageResponseDataItemGcStatus as GcStatus,
};
use crate::pve::{Known, named};

pub const NAME: &str = "pbs_datastore";

pub const USAGE_PATH: &str = "/status/datastore-usage";
pub const LIST_PATH: &str = "/admin/datastore";

pub struct Datastores;
pub static COLLECTOR: Datastores = Datastores;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: true,
    operations: &["GET /status/datastore-usage", "GET /admin/datastore"],
    cost: Cost::Fixed(2),
    refresh: None,
};

pub type Usage = GetStatusDatastoreUsageResponseDataItem;
pub type Listed = GetAdminDatastoreResponseDataItem;

impl Collector for Datastores {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move {
            let started = Instant::now();
            let d = &ctx.dispatcher;
            let (usage, listed) = tokio::join!(
                get(d, USAGE_PATH, |c| async move {
                    c.get_status_datastore_usage().send().await
                }),
                get(d, LIST_PATH, |c| async move {
                    c.get_admin_datastore().send().await
                }),
            );
            let mut errors = Vec::new();
            let usage = usage.map_err(|e| errors.push(e)).map(|a| a.data);
            let listed = listed.map_err(|e| errors.push(e)).map(|a| a.data);
            let (usage, listed) = (usage.unwrap_or_default(), listed.unwrap_or_default());
            outcome(started, Box::new(Stores { usage, listed }), errors)
        })
    }
}

/// A datastore's maintenance mode (`type=offline,message="disk swap"`, or the bare type):
/// `read-only`, `offline` or `delete`.
pub fn maintenance_mode(setting: &str) -> Option<&str> {
    let mut first = None;
    for part in setting.split(',') {
        match part.split_once('=') {
            Some((key, value)) if key.trim() == "type" => return named(Some(value.trim())),
            Some(_) => {}
            None => first = first.or(named(Some(part.trim()))),
        }
    }
    first
}

#[derive(Debug)]
pub struct Stores {
    pub usage: Vec<Usage>,
    pub listed: Vec<Listed>,
}

impl Families for Stores {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let now = unix_seconds(view.taken_at);
        let store = |u: &Usage| named(u.store.known()).map(str::to_owned);
        let per_store = |pick: &dyn Fn(&Usage) -> Option<f64>| -> Vec<Sample> {
            (self.usage.iter())
                .filter(|u| named(u.error.known()).is_none())
                .filter_map(|u| Some((labels([("datastore", &store(u)?)]), pick(u)?)))
                .collect()
        };
        let bytes = |v: Option<i64>| v.map(|v| v as f64);
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_up",
            "Whether PBS could open the datastore (0: in offline maintenance, being removed, \
             not mounted, …; see proxmox_pbs_datastore_error_info).",
            (self.usage.iter())
                .filter_map(|u| {
                    let up = named(u.error.known()).is_none();
                    Some((labels([("datastore", &store(u)?)]), f64::from(u8::from(up))))
                })
                .collect(),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_error_info",
            "Why PBS could not open a datastore (reason: maintenance, removing, unmounted or \
             error); always 1.",
            (self.usage.iter())
                .filter_map(|u| {
                    let error = named(u.error.known())?;
                    let reason = unavailable(error).unwrap_or("error");
                    let set = labels([("datastore", &store(u)?), ("reason", reason)]);
                    Some((set, 1.0))
                })
                .collect(),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_size_bytes",
            "A datastore's file system size.",
            per_store(&|u| bytes(u.total.known())),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_used_bytes",
            "A datastore's file system space in use.",
            per_store(&|u| bytes(u.used.known())),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_available_bytes",
            "A datastore's file system space still available.",
            per_store(&|u| bytes(u.avail.known())),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_estimated_full_timestamp_seconds",
            "When PBS expects the datastore to be full, from a linear fit of its use over the \
             last month, as a Unix time (no series when it is not growing).",
            per_store(&|u| {
                let at = u.estimated_full_date.known()? as f64;
                (at > now).then_some(at)
            }),
        )?;
        let gc = |pick: fn(&GcStatus) -> Option<i64>| {
            per_store(&move |u| bytes(pick(u.gc_status.as_ref()?)))
        };
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_gc_disk_bytes",
            "The chunks' size on disk at the last garbage collection (what the backups take \
             after deduplication and compression).",
            gc(|g| g.disk_bytes.known()),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_gc_index_data_bytes",
            "The size of all backups' data as their indexes reference it, at the last garbage \
             collection (divided by the disk bytes: the deduplication factor).",
            gc(|g| g.index_data_bytes.known()),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_gc_pending_bytes",
            "Chunks no longer referenced but not yet removed at the last garbage collection \
             (removed by the next one).",
            gc(|g| g.pending_bytes.known()),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_gc_removed_bytes",
            "What the last garbage collection removed.",
            gc(|g| g.removed_bytes.known()),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_gc_bad_chunks",
            "Chunks the last garbage collection found bad and could not remove.",
            gc(|g| g.still_bad.known()),
        )?;
        let listed = |l: &Listed| named(l.store.known()).map(str::to_owned);
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_maintenance_info",
            "A datastore in maintenance (mode: read-only, offline or delete); always 1.",
            (self.listed.iter())
                .filter_map(|l| {
                    let mode = maintenance_mode(l.maintenance.known()?)?;
                    Some((labels([("datastore", &listed(l)?), ("mode", mode)]), 1.0))
                })
                .collect(),
        )?;
        gauge_family(
            encoder,
            "proxmox_pbs_datastore_info",
            "A datastore as configured (comment); always 1.",
            (self.listed.iter())
                .filter_map(|l| {
                    let comment = l.comment.known().unwrap_or("");
                    let set = labels([("comment", comment), ("datastore", &listed(l)?)]);
                    Some((set, 1.0))
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::maintenance_mode;

    #[test]
    fn maintenance_modes_are_read_from_the_setting() {
        assert_eq!(
            maintenance_mode("type=offline,message=\"disk swap\""),
            Some("offline")
        );
        assert_eq!(
            maintenance_mode("message=x,type=read-only"),
            Some("read-only")
        );
        assert_eq!(maintenance_mode("delete"), Some("delete"));
        assert_eq!(maintenance_mode(""), None);
    }
}
