//! `smart`: each disk's SMART attributes, `/nodes/{node}/disks/smart?disk=DEV` for every disk
//! `disks/list` names. Off by default; refreshed hourly.
//!
//! - **What it costs.** One request per disk per refresh, and never more than one at a time
//!   on a node: each node is one target of a sweep ([`super::sweep`]), asked at its own moment
//!   of the hour, and asks its disks one after another while it holds the node's turn (shared
//!   with the other sweeps, `--max-guest-requests-per-node`). The disk list is the one
//!   `node_disks` asks in the same collection (on by default); with `node_disks` off, the
//!   node's target asks it first, once per refresh.
//! - **ATA disks** answer with their attribute table: a chosen set is exported by id and name
//!   ([`ATTRIBUTES`]: reallocated, pending and offline-uncorrectable sectors, CRC and
//!   uncorrectable errors, power-on hours, temperature, the vendors' wear indicators), each
//!   with its raw value (the leading number of smartctl's raw column), its normalized value
//!   and the threshold the normalized value must stay above.
//! - **NVMe and SAS disks** answer with smartctl's text: percentage used, available spare and
//!   its threshold, media errors, unsafe shutdowns, critical warning, temperature and power-on
//!   hours are read from it ([`parse_text`]).
//! - A disk PVE cannot read SMART from (a 500 with its reason, as for a USB bridge or a RAID
//!   volume) has no series, and is no failure.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::collection::OncePerNode;
use super::node_disks::{self, Disk};
use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Reply, Spec, Target};
use super::{View, sorted_family, sweep};
use crate::pve::client::types::GetNodesNodeDisksSmartResponseData;
use crate::pve::{ApiError, Dispatcher, ErrorKind, Known, named};
use compact_str::CompactString;

pub const NAME: &str = "smart";

/// The per-node path asked once per disk (the disk as its query, `?disk=/dev/sda`).
pub const PER_DISK: &str = "disks/smart";

pub struct Smart;
pub static COLLECTOR: Smart = Smart;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: false,
    operations: &[
        "GET /nodes/{node}/disks/smart",
        "GET /nodes/{node}/disks/list",
    ],
    cost: Cost::PerDisk,
    refresh: Some(Duration::from_secs(3600)),
};

/// The ATA attributes exported, by id, with the id as its label: the ones that predict a
/// failure or tell wear and age.
pub const ATTRIBUTES: &[(u16, &str)] = &[
    (5, "5"),     // Reallocated_Sector_Ct
    (9, "9"),     // Power_On_Hours
    (177, "177"), // Wear_Leveling_Count (Samsung)
    (187, "187"), // Reported_Uncorrect
    (190, "190"), // Airflow_Temperature_Cel / Temperature_Case
    (194, "194"), // Temperature_Celsius
    (196, "196"), // Reallocated_Event_Count
    (197, "197"), // Current_Pending_Sector
    (198, "198"), // Offline_Uncorrectable
    (199, "199"), // UDMA_CRC_Error_Count
    (202, "202"), // Percent_Lifetime_Remain (Crucial/Micron)
    (231, "231"), // SSD_Life_Left (Kingston, SandForce)
    (233, "233"), // Media_Wearout_Indicator (Intel)
];

/// The label of an exported attribute's id.
fn id_label(id: u16) -> &'static str {
    (ATTRIBUTES.iter())
        .find(|(known, _)| *known == id)
        .map_or("", |(_, label)| label)
}

impl Collector for Smart {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn shares(&self) -> Option<&'static str> {
        Some(node_disks::NAME)
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move {
            let nodes: Vec<Node> = (ctx.online_nodes().into_iter())
                .map(|name| Node {
                    name,
                    lists: ctx.disk_lists.clone(),
                })
                .collect();
            let fetched = sweep(ctx, NAME, nodes, fetch).await;
            fetched.map(|nodes| {
                let read = nodes
                    .into_iter()
                    .map(|(n, disks)| (n.name, disks))
                    .collect();
                Box::new(Read(read)) as Box<dyn Families>
            })
        })
    }
}

/// A node whose disks are asked, with the collection's shared disk lists.
#[derive(Clone)]
struct Node {
    name: String,
    lists: Arc<OncePerNode<Vec<Disk>>>,
}

impl Target for Node {
    fn node(&self) -> &str {
        &self.name
    }
    fn path(&self) -> String {
        format!("/nodes/{}/disks/smart", self.name)
    }
}

/// A disk's SMART path with its query, as the client encodes it
/// (`/nodes/pve1/disks/smart?disk=%2Fdev%2Fsda`): what the simulator and recordings key it by.
pub fn path(node: &str, devpath: &str) -> String {
    let disk: String = url::form_urlencoded::byte_serialize(devpath.as_bytes()).collect();
    format!("/nodes/{node}/{PER_DISK}?disk={disk}")
}

/// What is kept of a disk's answer.
#[derive(Debug, Default, PartialEq)]
pub struct DiskSmart {
    pub devpath: CompactString,
    /// The attributes in [`ATTRIBUTES`], by id and name.
    pub attributes: Vec<Attribute>,
    /// Read from smartctl's text (NVMe, SAS), or from the attributes (ATA).
    pub text: TextValues,
}

/// An ATA attribute as kept: 56 bytes, for some 10,000 of them at 2,000 disks (a value
/// unknown is NaN; [`Attribute::raw`] and its siblings give it as an `Option`).
#[derive(Debug, PartialEq)]
pub struct Attribute {
    pub id: u16,
    pub name: CompactString,
    values: [f64; 3],
}

impl Attribute {
    pub fn new(
        id: u16,
        name: &str,
        raw: Option<f64>,
        normalized: Option<f64>,
        threshold: Option<f64>,
    ) -> Self {
        let kept = |v: Option<f64>| v.unwrap_or(f64::NAN);
        Attribute {
            id,
            name: name.into(),
            values: [kept(raw), kept(normalized), kept(threshold)],
        }
    }

    fn value(&self, at: usize) -> Option<f64> {
        Some(self.values[at]).filter(|v| !v.is_nan())
    }

    /// The leading number of smartctl's raw column.
    pub fn raw(&self) -> Option<f64> {
        self.value(0)
    }

    /// The vendor's normalized value.
    pub fn normalized(&self) -> Option<f64> {
        self.value(1)
    }

    /// The threshold the normalized value must stay above.
    pub fn threshold(&self) -> Option<f64> {
        self.value(2)
    }
}

/// The values read from smartctl's text.
#[derive(Debug, Default, PartialEq, Clone, Copy)]
pub struct TextValues {
    pub percentage_used: Option<f64>,
    pub available_spare: Option<f64>,
    pub available_spare_threshold: Option<f64>,
    pub media_errors: Option<f64>,
    pub unsafe_shutdowns: Option<f64>,
    pub critical_warning: Option<f64>,
    pub temperature: Option<f64>,
    pub power_on_hours: Option<f64>,
}

/// A node's disks, one request after another (the caller holds the node's turn).
async fn fetch(
    dispatcher: Arc<Dispatcher>,
    node: Node,
) -> Result<Reply<Arc<[DiskSmart]>>, ApiError> {
    let list = node
        .lists
        .get(&node.name, || {
            node_disks::fetch(dispatcher.clone(), node.name.clone())
        })
        .await?;
    let mut read = Vec::new();
    let path = node.path();
    for devpath in list.iter().filter_map(|d| named(d.devpath.known())) {
        let answer = dispatcher
            .call(&path, |c| {
                let (name, disk) = (node.name.clone(), devpath.to_owned());
                async move {
                    c.get_nodes_node_disks_smart()
                        .node(name)
                        .disk(disk)
                        .send()
                        .await
                }
            })
            .await;
        match answer {
            Ok(answer) => read.push(disk_smart(devpath, &answer.data)),
            // PVE's reason (no SMART on this device): the disk's state, not a failure.
            Err(error) if matches!(error.kind, ErrorKind::Refused { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(Reply::Got(read.into()))
}

/// The leading number of smartctl's raw column: `28 (Min/Max 21/30)` → 28, `5670 (1 343)` →
/// 5670, `0/0` → 0, `1,234` → 1234.
pub fn leading_number(raw: &str) -> Option<f64> {
    let digits: String = raw
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits.parse().ok()
}

/// What a disk's answer says.
pub fn disk_smart(devpath: &str, data: &GetNodesNodeDisksSmartResponseData) -> DiskSmart {
    let mut read = DiskSmart {
        devpath: devpath.into(),
        ..DiskSmart::default()
    };
    for attribute in data.attributes.iter().flatten() {
        let Some(id) = (attribute.id.known()).and_then(|id| id.trim().parse::<u16>().ok()) else {
            continue;
        };
        if !ATTRIBUTES.iter().any(|(known, _)| *known == id) {
            continue;
        }
        let raw = attribute.raw.known().and_then(leading_number);
        let normalized = (attribute.normalized.known())
            .or(attribute.value.known())
            .map(|v| v as f64);
        let threshold = attribute.threshold.known().map(|v| v as f64);
        let name = attribute.name.known().unwrap_or("").trim();
        match id {
            9 => read.text.power_on_hours = read.text.power_on_hours.or(raw),
            194 => read.text.temperature = raw.or(read.text.temperature),
            190 => read.text.temperature = read.text.temperature.or(raw),
            _ => {}
        }
        read.attributes
            .push(Attribute::new(id, name, raw, normalized, threshold));
    }
    if let Some(text) = data.text.known() {
        let parsed = parse_text(text);
        read.text = TextValues {
            temperature: parsed.temperature.or(read.text.temperature),
            power_on_hours: parsed.power_on_hours.or(read.text.power_on_hours),
            ..parsed
        };
    }
    read.attributes
        .sort_by(|a, b| (a.id, &a.name).cmp(&(b.id, &b.name)));
    read.attributes
        .dedup_by(|later, earlier| later.id == earlier.id && later.name == earlier.name);
    read.attributes.shrink_to_fit();
    read
}

/// The values of smartctl's text for NVMe (`Percentage Used: 31%`, `Temperature: 32
/// Celsius`, `Power On Hours: 1,687`, …) and SAS (`Current Drive Temperature: 30 C`,
/// `Accumulated power on time, hours:minutes 1234:56`).
pub fn parse_text(text: &str) -> TextValues {
    let mut values = TextValues::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let number = || leading_number(value);
        let percent = || number().map(|n| n / 100.0);
        match key {
            "Percentage Used" => values.percentage_used = percent(),
            "Available Spare" => values.available_spare = percent(),
            "Available Spare Threshold" => values.available_spare_threshold = percent(),
            "Media and Data Integrity Errors" => values.media_errors = number(),
            "Unsafe Shutdowns" => values.unsafe_shutdowns = number(),
            "Temperature" | "Current Drive Temperature" => values.temperature = number(),
            "Power On Hours" => values.power_on_hours = number(),
            // `Accumulated power on time, hours:minutes 1234:56`
            "Accumulated power on time, hours" => {
                let hours = value.trim_start_matches("minutes").trim();
                values.power_on_hours = leading_number(hours);
            }
            "Critical Warning" => {
                let hex = value.trim_start_matches("0x");
                values.critical_warning = u64::from_str_radix(hex, 16).ok().map(|v| v as f64);
            }
            _ => {}
        }
    }
    values
}

/// Each node's disks as read.
#[derive(Debug)]
struct Read(Vec<(String, Arc<[DiskSmart]>)>);

impl Families for Read {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        encode(&self.0, encoder)
    }
}

/// The families of every node's disks, sorted by their labels and borrowing them.
fn encode<'a>(
    nodes: &'a [(String, Arc<[DiskSmart]>)],
    encoder: &mut DescriptorEncoder,
) -> std::fmt::Result {
    let mut disks: Vec<(&'a str, &'a DiskSmart)> = (nodes.iter())
        .flat_map(|(node, disks)| disks.iter().map(move |d| (node.as_str(), d)))
        .collect();
    disks.sort_by(|a, b| (a.1.devpath.as_str(), a.0).cmp(&(b.1.devpath.as_str(), b.0)));
    disks.dedup_by(|l, e| l.0 == e.0 && l.1.devpath == e.1.devpath);
    // Labels borrowed from the kept answers: no copy per series.
    let at =
        |&(node, d): &(&'a str, &'a DiskSmart)| [("devpath", d.devpath.as_str()), ("node", node)];
    // Every attribute, sorted once for the three families by its labels, which are made as
    // they are compared and written: 16 bytes an attribute, made to its size.
    let labels = |&(d, a): &(u32, &'a Attribute)| {
        let (node, disk) = disks[d as usize];
        [
            ("devpath", disk.devpath.as_str()),
            ("id", id_label(a.id)),
            ("name", a.name.as_str()),
            ("node", node),
        ]
    };
    let mut attributes: Vec<(u32, &Attribute)> =
        Vec::with_capacity(disks.iter().map(|(_, d)| d.attributes.len()).sum());
    for (d, (_, disk)) in disks.iter().enumerate() {
        let d = u32::try_from(d).unwrap_or(u32::MAX);
        attributes.extend(disk.attributes.iter().map(|a| (d, a)));
    }
    attributes.sort_by(|a, b| labels(a).cmp(&labels(b)));
    let per_attribute = |pick: fn(&Attribute) -> Option<f64>| {
        (attributes.iter()).filter_map(move |each| Some((labels(each), pick(each.1)?)))
    };
    for (name, help, pick) in [
        (
            "proxmox_node_disk_smart_attribute_raw",
            "An ATA SMART attribute's raw value (the leading number of smartctl's raw column).",
            Attribute::raw as fn(&Attribute) -> Option<f64>,
        ),
        (
            "proxmox_node_disk_smart_attribute_normalized",
            "An ATA SMART attribute's normalized value (the vendor's scale, usually 100 or 200 \
                 new); the disk fails it at or below the threshold.",
            Attribute::normalized,
        ),
        (
            "proxmox_node_disk_smart_attribute_threshold",
            "The threshold of an ATA SMART attribute's normalized value (0: informational only).",
            Attribute::threshold,
        ),
    ] {
        sorted_family(encoder, name, help, MetricType::Gauge, per_attribute(pick))?;
    }
    let text = |pick: fn(&TextValues) -> Option<f64>| {
        (disks.iter()).filter_map(move |d| Some((at(d), pick(&d.1.text)?)))
    };
    sorted_family(
        encoder,
        "proxmox_node_disk_temperature_celsius",
        "A disk's temperature as SMART reports it.",
        MetricType::Gauge,
        text(|t| t.temperature),
    )?;
    sorted_family(
        encoder,
        "proxmox_node_disk_power_on_seconds",
        "How long a disk has been powered on, from SMART's power-on hours.",
        MetricType::Gauge,
        text(|t| t.power_on_hours.map(|h| h * 3600.0)),
    )?;
    sorted_family(
        encoder,
        "proxmox_node_disk_nvme_percentage_used_ratio",
        "An NVMe disk's estimate of its life used (1 = the rated endurance; it may go past).",
        MetricType::Gauge,
        text(|t| t.percentage_used),
    )?;
    sorted_family(
        encoder,
        "proxmox_node_disk_nvme_available_spare_ratio",
        "An NVMe disk's spare capacity left.",
        MetricType::Gauge,
        text(|t| t.available_spare),
    )?;
    sorted_family(
        encoder,
        "proxmox_node_disk_nvme_available_spare_threshold_ratio",
        "The spare capacity below which an NVMe disk warns.",
        MetricType::Gauge,
        text(|t| t.available_spare_threshold),
    )?;
    sorted_family(
        encoder,
        "proxmox_node_disk_nvme_media_errors",
        "Unrecovered data integrity errors an NVMe disk has counted over its life.",
        MetricType::Counter,
        text(|t| t.media_errors),
    )?;
    sorted_family(
        encoder,
        "proxmox_node_disk_nvme_unsafe_shutdowns",
        "Power losses without a clean shutdown an NVMe disk has counted over its life.",
        MetricType::Counter,
        text(|t| t.unsafe_shutdowns),
    )?;
    sorted_family(
        encoder,
        "proxmox_node_disk_nvme_critical_warning",
        "An NVMe disk's critical warning bits (0: none; 1 spare low, 2 temperature, 4 \
             reliability degraded, 8 read-only, 16 volatile backup failed).",
        MetricType::Gauge,
        text(|t| t.critical_warning),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_are_their_leading_number() {
        assert_eq!(leading_number("0"), Some(0.0));
        assert_eq!(leading_number("28 (Min/Max 21/30)"), Some(28.0));
        assert_eq!(leading_number("5670 (1 343)"), Some(5670.0));
        assert_eq!(leading_number("0/0"), Some(0.0));
        assert_eq!(leading_number("1,299,288 [665 GB]"), Some(1_299_288.0));
        assert_eq!(leading_number("N/A"), None);
    }

    #[test]
    fn nvme_and_sas_text_gives_wear_errors_temperature_and_age() {
        let nvme = "\nSMART/Health Information (NVMe Log 0x02, NSID 0xffffffff)\n\
            Critical Warning:                   0x04\n\
            Temperature:                        32 Celsius\n\
            Available Spare:                    97%\n\
            Available Spare Threshold:          10%\n\
            Percentage Used:                    31%\n\
            Data Units Read:                    1,299,288 [665 GB]\n\
            Power On Hours:                     1,687\n\
            Unsafe Shutdowns:                   21\n\
            Media and Data Integrity Errors:    2\n";
        let read = parse_text(nvme);
        assert_eq!(read.percentage_used, Some(0.31));
        assert_eq!(read.available_spare, Some(0.97));
        assert_eq!(read.available_spare_threshold, Some(0.1));
        assert_eq!(read.media_errors, Some(2.0));
        assert_eq!(read.unsafe_shutdowns, Some(21.0));
        assert_eq!(read.critical_warning, Some(4.0));
        assert_eq!(read.temperature, Some(32.0));
        assert_eq!(read.power_on_hours, Some(1687.0));
        let sas = "SMART Health Status: OK\nCurrent Drive Temperature:     30 C\n\
                   Accumulated power on time, hours:minutes 1234:56\n";
        let read = parse_text(sas);
        assert_eq!(
            (read.temperature, read.power_on_hours),
            (Some(30.0), Some(1234.0))
        );
        assert_eq!(read.percentage_used, None);
    }

    #[test]
    fn ata_attributes_are_chosen_by_id_and_read_leniently() {
        let data: GetNodesNodeDisksSmartResponseData = serde_json::from_value(serde_json::json!({
            "health": "PASSED", "type": "ata", "attributes": [
                { "id": "  5", "name": "Reallocated_Sector_Ct", "value": 100, "normalized": 100,
                  "threshold": 10, "raw": "8", "fail": "-" },
                { "id": " 12", "name": "Power_Cycle_Count", "value": 100, "threshold": 0,
                  "raw": "191" },
                { "id": "190", "name": "Temperature_Case", "value": "72", "threshold": "0",
                  "raw": "28 (Min/Max 21/30)" },
                { "id": "194", "name": "Temperature_Internal", "value": 100, "threshold": 0,
                  "raw": "29" },
                { "id": "  9", "name": "Power_On_Hours", "value": 100, "threshold": 0,
                  "raw": "1259" },
            ]
        }))
        .unwrap();
        let read = disk_smart("/dev/sdb", &data);
        let ids: Vec<u16> = read.attributes.iter().map(|a| a.id).collect();
        assert_eq!(
            ids,
            [5, 9, 190, 194],
            "Power_Cycle_Count is not among those kept"
        );
        assert_eq!(read.attributes[0].raw(), Some(8.0));
        assert_eq!(read.attributes[0].threshold(), Some(10.0));
        assert_eq!(read.attributes[2].normalized(), Some(72.0));
        assert_eq!(std::mem::size_of::<Attribute>(), 56);
        assert_eq!(read.text.temperature, Some(29.0), "194 before 190");
        assert_eq!(read.text.power_on_hours, Some(1259.0));
    }
}
