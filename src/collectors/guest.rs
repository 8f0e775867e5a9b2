//! `guest`: what `/cluster/resources` says of each guest's use of its resources, at no extra
//! request. Off by default: a guest's memory as PVE sees it counts the guest's page cache, so
//! these numbers mislead where a node_exporter inside the guest is right.
//!
//! Templates do not run: they have only `proxmox_guest_info` (with `template="1"`).

use prometheus_client::encoding::DescriptorEncoder;

use super::cluster_resources::{Resource, from_inventory, is_guest, kind, vmid};
use super::{BoxFuture, Collected, Collector, Context, Families, Sample, View};
use super::{counter_family, gauge_family};
use crate::pve::Known;

pub const NAME: &str = "guest";

pub struct Guest;
pub static COLLECTOR: Guest = Guest;

impl Collector for Guest {
    fn name(&self) -> &'static str {
        NAME
    }
    fn enabled_by_default(&self) -> bool {
        false
    }
    fn operations(&self) -> &'static [&'static str] {
        &[] // the inventory's rows
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move { from_inventory(ctx, Box::new(Usage)) })
    }
}

#[derive(Debug)]
pub struct Usage;

/// The labels that name a guest: `node`, `type`, `name`, `vmid`.
pub fn guest_labels(row: &Resource) -> Vec<(&'static str, String)> {
    vec![
        ("name", row.name.known().unwrap_or("").to_owned()),
        ("node", row.node.known().unwrap_or("").to_owned()),
        ("type", kind(row).to_owned()),
        ("vmid", vmid(row)),
    ]
}

/// PVE's tags (`b;a`, `b,a` or `b a`), sorted and joined with `;`, so that reordering them
/// in the GUI does not make new series.
pub fn sorted_tags(tags: Option<&str>) -> String {
    let mut all: Vec<&str> = tags
        .unwrap_or("")
        .split([';', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    all.sort_unstable();
    all.dedup();
    all.join(";")
}

impl Families for Usage {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        if !view.inventory.succeeded() {
            return Ok(());
        }
        let rows = &view.inventory.data;
        let guests: Vec<&Resource> = rows.iter().filter(|r| is_guest(r)).collect();
        let gauges = |value: &dyn Fn(&Resource) -> Option<f64>| -> Vec<Sample> {
            guests
                .iter()
                .filter_map(|r| Some((guest_labels(r), value(r)?)))
                .collect()
        };
        let counters = |value: &dyn Fn(&Resource) -> Option<i64>| {
            guests
                .iter()
                .filter_map(|r| Some((guest_labels(r), u64::try_from(value(r)?).ok()?)))
                .collect()
        };
        let bytes = |v: Option<i64>| v.map(|v| v as f64);
        gauge_family(
            encoder,
            "proxmox_guest_cpu_usage_ratio",
            "Share of a guest's vCPUs in use, 0 to 1.",
            gauges(&|r| r.cpu.known()),
        )?;
        gauge_family(
            encoder,
            "proxmox_guest_cpus",
            "vCPUs of a guest.",
            gauges(&|r| r.maxcpu.known()),
        )?;
        gauge_family(
            encoder,
            "proxmox_guest_memory_used_bytes",
            "Memory a guest uses as PVE sees it (page cache included), in bytes.",
            gauges(&|r| bytes(r.mem.known())),
        )?;
        gauge_family(
            encoder,
            "proxmox_guest_memory_size_bytes",
            "Memory allocated to a guest, in bytes.",
            gauges(&|r| bytes(r.maxmem.known())),
        )?;
        gauge_family(
            encoder,
            "proxmox_guest_disk_used_bytes",
            "Space used on a container's root disk, in bytes (VMs report none).",
            // PVE reports 0 for every VM: it cannot see inside their disks.
            gauges(&|r| bytes(r.disk.known()).filter(|_| kind(r) == "lxc")),
        )?;
        gauge_family(
            encoder,
            "proxmox_guest_disk_size_bytes",
            "Size of a guest's root disk, in bytes.",
            gauges(&|r| bytes(r.maxdisk.known())),
        )?;
        gauge_family(
            encoder,
            "proxmox_guest_uptime_seconds",
            "Seconds since a guest started; 0 while it is stopped.",
            gauges(&|r| bytes(r.uptime.known())),
        )?;
        counter_family(
            encoder,
            "proxmox_guest_disk_read_bytes",
            "Bytes a guest read from its disks since it started.",
            counters(&|r| r.diskread.known()),
        )?;
        counter_family(
            encoder,
            "proxmox_guest_disk_written_bytes",
            "Bytes a guest wrote to its disks since it started.",
            counters(&|r| r.diskwrite.known()),
        )?;
        counter_family(
            encoder,
            "proxmox_guest_network_receive_bytes",
            "Bytes a guest received over its network interfaces since it started.",
            counters(&|r| r.netin.known()),
        )?;
        counter_family(
            encoder,
            "proxmox_guest_network_transmit_bytes",
            "Bytes a guest sent over its network interfaces since it started.",
            counters(&|r| r.netout.known()),
        )?;
        let locks: Vec<Sample> = guests
            .iter()
            .filter_map(|r| {
                let lock = r.lock.known().filter(|l| !l.is_empty())?;
                let mut set = guest_labels(r);
                set.insert(0, ("lock", lock.to_owned()));
                Some((set, 1.0))
            })
            .collect();
        gauge_family(
            encoder,
            "proxmox_guest_lock",
            "1 while a guest's configuration is locked (backup, migrate, snapshot, …); the \
             lock's kind is the `lock` label. Guests without a lock have no series.",
            locks,
        )?;
        let infos: Vec<Sample> = rows
            .iter()
            .filter(|r| matches!(kind(r), "qemu" | "lxc"))
            .map(|r| {
                let mut set = guest_labels(r);
                set.push(("pool", r.pool.known().unwrap_or("").to_owned()));
                set.push(("tags", sorted_tags(r.tags.known())));
                let template = r.template.known() == Some(true);
                set.push(("template", u8::from(template).to_string()));
                (set, 1.0)
            })
            .collect();
        gauge_family(
            encoder,
            "proxmox_guest_info",
            "A guest's pool, tags (sorted, `;`-separated) and whether it is a template; always 1.",
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
