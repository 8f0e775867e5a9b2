//! `guest`: what `/cluster/resources` says of each guest's use of its resources, at no extra
//! request. Off by default: a guest's memory as PVE sees it counts the guest's page cache, so
//! these numbers mislead where a node_exporter inside the guest is right.
//!
//! Templates do not run: they have only `proxmox_guest_info` (with `template="1"`).

use std::borrow::Cow;

use prometheus_client::encoding::DescriptorEncoder;

use super::cluster_resources::{Resource, from_inventory, is_guest, kind, vmid};
use prometheus_client::metrics::MetricType;

use super::sorted_family;
use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Spec, View, Vmid, WithVmid};
use crate::pve::Known;

pub const NAME: &str = "guest";

pub struct Guest;
pub static COLLECTOR: Guest = Guest;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: false,
    // It reads the inventory.
    operations: &[],
    cost: Cost::Nothing,
    refresh: None,
};

impl Collector for Guest {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move { from_inventory(ctx, Box::new(Usage)) })
    }
}

#[derive(Debug)]
pub struct Usage;

/// PVE's tags (`b;a`, `b,a` or `b a`), sorted and joined with `;`, so that reordering them
/// in the GUI does not make new series.
pub fn sorted_tags(tags: Option<&str>) -> String {
    super::encode::sorted_list(tags, &[';', ',', ' '], ";")
}

/// A guest's identifying labels, borrowed from its row: `name`, `node`, `type`, `vmid`.
fn names(r: &Resource, vmid: Vmid) -> WithVmid<'_, 3> {
    (
        [
            ("name", r.name.known().unwrap_or("")),
            ("node", r.node.known().unwrap_or("")),
            ("type", kind(r)),
        ],
        [("vmid", vmid)],
    )
}

impl Families for Usage {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        if !view.inventory.succeeded() {
            return Ok(());
        }
        // Every family has a series per guest: sorted by their label values once, the labels
        // borrowed from the rows as each series is written. One list made to its size (a row
        // and its vmid: 16 bytes a guest).
        let rows = || {
            (view.inventory.data.iter())
                .filter(|r| matches!(kind(r), "qemu" | "lxc"))
                .filter_map(|r| Some((r, Vmid(vmid(r).parse().ok()?))))
        };
        let mut all: Vec<(&Resource, Vmid)> = Vec::with_capacity(rows().count());
        all.extend(rows());
        all.sort_by(|a, b| names(a.0, a.1).cmp(&names(b.0, b.1)));
        all.dedup_by(|later, earlier| names(later.0, later.1) == names(earlier.0, earlier.1));
        let guests = || all.iter().filter(|(r, _)| is_guest(r));
        let mut family =
            |name: &str, help: &str, kind: MetricType, value: &dyn Fn(&Resource) -> Option<f64>| {
                let samples = guests().filter_map(|(r, id)| Some((names(r, *id), value(r)?)));
                sorted_family(encoder, name, help, kind, samples)
            };
        let bytes = |v: Option<i64>| v.map(|v| v as f64);
        let gauge = MetricType::Gauge;
        family(
            "proxmox_guest_cpu_usage_ratio",
            "Share of a guest's vCPUs in use, 0 to 1.",
            gauge,
            &|r| r.cpu.known(),
        )?;
        family("proxmox_guest_cpus", "vCPUs of a guest.", gauge, &|r| {
            r.maxcpu.known()
        })?;
        family(
            "proxmox_guest_memory_used_bytes",
            "Memory a guest uses as PVE sees it (page cache included), in bytes.",
            gauge,
            &|r| bytes(r.mem.known()),
        )?;
        family(
            "proxmox_guest_memory_host_bytes",
            "Memory a running VM takes on its host, in bytes (PVE 9 and later; KSM sharing not \
             counted).",
            gauge,
            &|r| bytes(r.memhost.known()).filter(|_| kind(r) == "qemu"),
        )?;
        family(
            "proxmox_guest_memory_size_bytes",
            "Memory allocated to a guest, in bytes.",
            gauge,
            &|r| bytes(r.maxmem.known()),
        )?;
        family(
            "proxmox_guest_disk_used_bytes",
            "Space used on a container's root disk, in bytes (VMs report none).",
            gauge,
            // PVE reports 0 for every VM: it cannot see inside their disks.
            &|r| bytes(r.disk.known()).filter(|_| kind(r) == "lxc"),
        )?;
        family(
            "proxmox_guest_disk_size_bytes",
            "Size of a guest's root disk, in bytes.",
            gauge,
            &|r| bytes(r.maxdisk.known()),
        )?;
        family(
            "proxmox_guest_uptime_seconds",
            "Seconds since a guest started; 0 while it is stopped.",
            gauge,
            &|r| bytes(r.uptime.known()),
        )?;
        let counter = |v: Option<i64>| v.filter(|v| *v >= 0).map(|v| v as f64);
        family(
            "proxmox_guest_disk_read_bytes",
            "Bytes a guest read from its disks since it started.",
            MetricType::Counter,
            &|r| counter(r.diskread.known()),
        )?;
        family(
            "proxmox_guest_disk_written_bytes",
            "Bytes a guest wrote to its disks since it started.",
            MetricType::Counter,
            &|r| counter(r.diskwrite.known()),
        )?;
        family(
            "proxmox_guest_network_receive_bytes",
            "Bytes a guest received over its network interfaces since it started.",
            MetricType::Counter,
            &|r| counter(r.netin.known()),
        )?;
        family(
            "proxmox_guest_network_transmit_bytes",
            "Bytes a guest sent over its network interfaces since it started.",
            MetricType::Counter,
            &|r| counter(r.netout.known()),
        )?;
        let locks = guests().filter_map(|(r, id)| {
            let lock = r.lock().filter(|l| !l.is_empty())?;
            Some(((names(r, *id), [("lock", lock)]), 1.0))
        });
        sorted_family(
            encoder,
            "proxmox_guest_lock",
            "1 while a guest's configuration is locked (backup, migrate, snapshot, …); the \
             lock's kind is the `lock` label. Guests without a lock have no series.",
            gauge,
            locks,
        )?;
        let infos = all.iter().map(|(r, id)| {
            let tags = sorted_tags(r.tags());
            let template = if r.template.known() == Some(true) {
                "1"
            } else {
                "0"
            };
            let extra = [
                ("pool", Cow::Borrowed(r.pool().unwrap_or(""))),
                ("tags", Cow::Owned(tags)),
                ("template", Cow::Borrowed(template)),
            ];
            ((names(r, *id), extra), 1.0)
        });
        sorted_family(
            encoder,
            "proxmox_guest_info",
            "A guest's pool, tags (sorted, `;`-separated) and whether it is a template; always 1.",
            gauge,
            infos,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::sorted_tags;

    #[test]
    fn tags_are_sorted_whatever_the_separator() {
        assert_eq!(sorted_tags(Some("prod;db;eu")), "db;eu;prod");
        assert_eq!(sorted_tags(Some("eu,db prod;db")), "db;eu;prod");
        assert_eq!(sorted_tags(Some("")), "");
        assert_eq!(sorted_tags(None), "");
    }
}
