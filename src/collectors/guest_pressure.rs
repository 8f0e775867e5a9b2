//! `guest_pressure`: pressure stall information of each running guest (PVE 9 and later), from
//! the node's guest lists `/nodes/{node}/qemu` and `/nodes/{node}/lxc`: two requests per
//! online node, nothing per guest.
//!
//! PVE reads each guest's cgroup pressure files and passes on their `avg10` as it is: the share
//! of the last 10 seconds in which some (or all) of the guest's tasks were stalled waiting for
//! CPU, I/O or memory, in percent. It is exported as a ratio (0–1). Older PVE versions send no
//! such fields: the guests have no series and the collector succeeds. Containers have no
//! `full` CPU pressure.

use prometheus_client::encoding::DescriptorEncoder;

use compact_str::CompactString;
use prometheus_client::metrics::MetricType;

use super::sorted_family;
use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Spec, Target, View};
use super::{Vmid, WithVmid};
use crate::pve::{ApiError, Dispatcher, Known};

pub const NAME: &str = "guest_pressure";

pub struct GuestPressure;
pub static COLLECTOR: GuestPressure = GuestPressure;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: false,
    operations: &["GET /nodes/{node}/qemu", "GET /nodes/{node}/lxc"],
    cost: Cost::TwoPerNode,
    refresh: None,
};

impl Collector for GuestPressure {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move {
            let lists: Vec<List> = ctx
                .online_nodes()
                .into_iter()
                .flat_map(|node| {
                    [
                        List {
                            node: node.clone(),
                            kind: "qemu",
                        },
                        List { node, kind: "lxc" },
                    ]
                })
                .collect();
            let fetched = ctx.fan_out(lists, fetch).await;
            fetched.map(|lists| Box::new(Pressures(lists)) as Box<dyn Families>)
        })
    }
}

/// One node's list of VMs or of containers.
#[derive(Clone, Debug)]
struct List {
    node: String,
    kind: &'static str,
}

impl Target for List {
    fn node(&self) -> &str {
        &self.node
    }
    fn path(&self) -> String {
        format!("/nodes/{}/{}", self.node, self.kind)
    }
}

/// What the pressure families say, per resource and kind (`some`, `full`): the order of
/// [`Guest::pressures`].
const RESOURCES: [(&str, &str); 6] = [
    ("cpu", "some"),
    ("cpu", "full"),
    ("io", "some"),
    ("io", "full"),
    ("memory", "some"),
    ("memory", "full"),
];

/// A guest of a node's list with its pressures, in percent as PVE sends them.
/// Kept small (no pressure as NaN; its node and type are its list's): one per running
/// guest. Its name is the list's own, so that a failed inventory changes no series.
#[derive(Debug)]
struct Guest {
    vmid: u32,
    name: CompactString,
    pressures: [f64; 6],
}

/// A guest as written: its list and itself (16 bytes).
struct Labelled<'a> {
    list: &'a List,
    guest: &'a Guest,
}

impl<'a> Labelled<'a> {
    fn labels(&self) -> WithVmid<'a, 3> {
        (
            [
                ("name", &self.guest.name),
                ("node", &self.list.node),
                ("type", self.list.kind),
            ],
            [("vmid", Vmid(self.guest.vmid))],
        )
    }
}

async fn fetch(dispatcher: std::sync::Arc<Dispatcher>, list: List) -> Result<Vec<Guest>, ApiError> {
    let path = list.path();
    // The same fields in the VM and the container list, by different generated types.
    macro_rules! guests_by {
        ($call:ident) => {{
            let node = list.node.clone();
            let answer = dispatcher
                .call(&path, |c| {
                    let node = node.clone();
                    async move { c.$call().node(node).send().await }
                })
                .await?;
            let mut guests: Vec<Guest> = answer
                .data
                .iter()
                .filter_map(|g| {
                    let pressures = [
                        g.pressurecpusome.known(),
                        g.pressurecpufull.known(),
                        g.pressureiosome.known(),
                        g.pressureiofull.known(),
                        g.pressurememorysome.known(),
                        g.pressurememoryfull.known(),
                    ];
                    // Stopped guests, and every guest before PVE 9: nothing to keep.
                    if pressures.iter().all(Option::is_none) {
                        return None;
                    }
                    Some(Guest {
                        vmid: u32::try_from(g.vmid.known()?).ok()?,
                        name: g.name.known().unwrap_or("").into(),
                        pressures: pressures.map(|p| p.unwrap_or(f64::NAN)),
                    })
                })
                .collect();
            // Kept for the window: without the room a collect may leave.
            guests.shrink_to_fit();
            Ok(guests)
        }};
    }
    if list.kind == "qemu" {
        guests_by!(get_nodes_node_qemu)
    } else {
        guests_by!(get_nodes_node_lxc)
    }
}

/// Each list's guests, as they came (not copied into one list: at 50,000 guests that held
/// both at once).
#[derive(Debug)]
struct Pressures(Vec<(List, Vec<Guest>)>);

impl Families for Pressures {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        // Sorted by their label values once, then written without copying them: `kind`
        // first, so each family is every guest's `full`, then every guest's `some`.
        // Made to its size: grown by doubling it took up to twice as much.
        let mut guests: Vec<Labelled<'_>> =
            Vec::with_capacity(self.0.iter().map(|(_, guests)| guests.len()).sum());
        guests.extend(
            (self.0.iter())
                .flat_map(|(list, guests)| guests.iter().map(move |g| (list, g)))
                .map(|(list, guest)| Labelled { list, guest }),
        );
        guests.sort_by(|a, b| a.labels().cmp(&b.labels()));
        guests.dedup_by(|later, earlier| later.labels() == earlier.labels());
        for resource in ["cpu", "io", "memory"] {
            let samples = ["full", "some"].into_iter().flat_map(|kind| {
                let i = RESOURCES
                    .iter()
                    .position(|r| *r == (resource, kind))
                    .unwrap_or(0);
                guests.iter().filter_map(move |g| {
                    let percent = g.guest.pressures[i];
                    (!percent.is_nan()).then(|| (([("kind", kind)], g.labels()), percent / 100.0))
                })
            });
            sorted_family(
                encoder,
                &format!("proxmox_guest_pressure_{resource}_ratio"),
                &format!(
                    "Share of the last 10 seconds in which some (`kind=\"some\"`) or all \
                     (`kind=\"full\"`) of a guest's tasks stalled waiting for {resource} \
                     (PVE 9 and later)."
                ),
                MetricType::Gauge,
                samples,
            )?;
        }
        Ok(())
    }
}
