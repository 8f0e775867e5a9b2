//! `disks`: what `/nodes/{node}/disks/list` tells of each disk besides its SMART health
//! (`node_disks`): how much of an SSD's life is left as PVE reckons it, its size and speed,
//! and what the device is (type, model, serial, WWN). The same answer `node_disks` reads:
//! with both on it is asked once per node and collection.
//!
//! - **Wearout.** PVE's `wearout` counts *down*: 100 for a new SSD. For NVMe it is 100 minus
//!   the drive's "Percentage Used"; for SATA/SAS the normalized value of the first wear
//!   attribute it knows (`Media_Wearout_Indicator`, `SSD_Life_Left`, `Wear_Leveling_Count`,
//!   …). Here it is a ratio: 1 new, 0 worn out. `"N/A"` (spinning disks, drives that report
//!   no wear) makes no series. PVE's web UI shows the other side, `100 - wearout` as "used".
//! - **Labels that never change between scrapes**: the device's type, model, serial and WWN
//!   go into an info family; sizes and rates are values.

use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;

use super::node_disks::{Disk, disk_lists};
use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Sample, Spec, View};
use super::{each_online_node, gauge_family, labels};
use crate::pve::{Known, named};

pub const NAME: &str = "disks";

pub struct Disks;
pub static COLLECTOR: Disks = Disks;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: false,
    operations: &["GET /nodes/{node}/disks/list"],
    cost: Cost::PerNode,
    refresh: None,
};

impl Collector for Disks {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn shares(&self) -> Option<&'static str> {
        Some(super::node_disks::NAME)
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(each_online_node(ctx, disk_lists(ctx), |nodes| {
            Box::new(Listed(nodes))
        }))
    }
}

#[derive(Debug)]
struct Listed(Vec<(String, Arc<Vec<Disk>>)>);

/// PVE's wearout as the share of life left (1 new); `None` for `"N/A"` or nonsense.
pub fn life_remaining(wearout: Option<i64>) -> Option<f64> {
    wearout
        .filter(|w| (0..=100).contains(w))
        .map(|w| w as f64 / 100.0)
}

impl Families for Listed {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut life: Vec<Sample> = Vec::new();
        let mut size: Vec<Sample> = Vec::new();
        let mut rpm: Vec<Sample> = Vec::new();
        let mut info: Vec<Sample> = Vec::new();
        for (node, disks) in &self.0 {
            for disk in disks.iter() {
                let Some(devpath) = named(disk.devpath.known()) else {
                    continue;
                };
                let at = || labels([("devpath", devpath), ("node", node)]);
                if let Some(left) = life_remaining(disk.wearout.known()) {
                    life.push((at(), left));
                }
                if let Some(bytes) = disk.size.known() {
                    size.push((at(), bytes as f64));
                }
                // -1: unknown, 0: not spinning (SSD, NVMe).
                if let Some(turns) = disk.rpm.known().filter(|r| *r > 0) {
                    rpm.push((at(), turns as f64));
                }
                let text = |v: Option<&str>| v.map(str::trim).unwrap_or("").to_owned();
                let mut set = at();
                set.extend([
                    ("model", text(disk.model.known())),
                    ("serial", text(disk.serial.known())),
                    ("type", text(disk.type_.known())),
                    ("wwn", text(disk.wwn.known())),
                ]);
                set.sort();
                info.push((set, 1.0));
            }
        }
        gauge_family(
            encoder,
            "proxmox_node_disk_life_remaining_ratio",
            "Life left of an SSD as PVE's wearout reckons it: 1 new, 0 worn out (PVE's web UI \
             shows 1 minus this as wearout used). No series where PVE says N/A.",
            life,
        )?;
        gauge_family(
            encoder,
            "proxmox_node_disk_size_bytes",
            "Size of a disk as PVE lists it.",
            size,
        )?;
        gauge_family(
            encoder,
            "proxmox_node_disk_rotation_rate_rpm",
            "Rotation rate of a spinning disk; no series for SSDs and NVMe.",
            rpm,
        )?;
        gauge_family(
            encoder,
            "proxmox_node_disk_info",
            "A disk as PVE lists it: its type (hdd, ssd, nvme, usb), model, serial and WWN.",
            info,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wearout_counts_down_from_a_new_disk() {
        assert_eq!(life_remaining(Some(100)), Some(1.0));
        assert_eq!(life_remaining(Some(97)), Some(0.97));
        assert_eq!(life_remaining(Some(0)), Some(0.0));
        assert_eq!(life_remaining(None), None);
        assert_eq!(life_remaining(Some(-1)), None);
        assert_eq!(life_remaining(Some(250)), None);
    }

    #[test]
    fn wearout_comes_as_a_number_a_string_or_not_at_all() {
        let disks: Vec<Disk> = serde_json::from_value(serde_json::json!([
            { "devpath": "/dev/nvme0n1", "wearout": 99, "rpm": 0, "type": "nvme" },
            { "devpath": "/dev/sda", "wearout": "97", "rpm": -1, "type": "ssd" },
            { "devpath": "/dev/sdb", "wearout": "N/A", "rpm": "7200", "type": "hdd" },
        ]))
        .unwrap();
        let life: Vec<Option<f64>> = disks
            .iter()
            .map(|d| life_remaining(d.wearout.known()))
            .collect();
        assert_eq!(life, [Some(0.99), Some(0.97), None]);
        let rpm: Vec<Option<i64>> = disks.iter().map(|d| d.rpm.known()).collect();
        assert_eq!(rpm, [Some(0), Some(-1), Some(7200)]);
    }
}
