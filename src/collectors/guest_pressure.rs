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

use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Sample, Spec, Target, View};
use super::{gauge_family, labels};
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
            fetched.map(|lists| {
                let guests = lists.into_iter().flat_map(|(_, guests)| guests).collect();
                Box::new(Pressures(guests)) as Box<dyn Families>
            })
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
#[derive(Debug)]
struct Guest {
    node: String,
    kind: &'static str,
    vmid: i64,
    name: String,
    pressures: [Option<f64>; 6],
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
            Ok(answer
                .data
                .iter()
                .filter_map(|g| {
                    Some(Guest {
                        node: list.node.clone(),
                        kind: list.kind,
                        vmid: g.vmid.known()?,
                        name: g.name.known().unwrap_or("").to_owned(),
                        pressures: [
                            g.pressurecpusome.known(),
                            g.pressurecpufull.known(),
                            g.pressureiosome.known(),
                            g.pressureiofull.known(),
                            g.pressurememorysome.known(),
                            g.pressurememoryfull.known(),
                        ],
                    })
                })
                .collect())
        }};
    }
    if list.kind == "qemu" {
        guests_by!(get_nodes_node_qemu)
    } else {
        guests_by!(get_nodes_node_lxc)
    }
}

#[derive(Debug)]
struct Pressures(Vec<Guest>);

impl Families for Pressures {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        for resource in ["cpu", "io", "memory"] {
            let mut samples: Vec<Sample> = Vec::new();
            for guest in &self.0 {
                for (i, (r, kind)) in RESOURCES.iter().enumerate() {
                    let Some(percent) = guest.pressures[i].filter(|_| *r == resource) else {
                        continue;
                    };
                    let set = labels([
                        ("kind", kind),
                        ("name", &guest.name),
                        ("node", &guest.node),
                        ("type", guest.kind),
                        ("vmid", &guest.vmid.to_string()),
                    ]);
                    samples.push((set, percent / 100.0));
                }
            }
            gauge_family(
                encoder,
                &format!("proxmox_guest_pressure_{resource}_ratio"),
                &format!(
                    "Share of the last 10 seconds in which some (`kind=\"some\"`) or all \
                     (`kind=\"full\"`) of a guest's tasks stalled waiting for {resource} \
                     (PVE 9 and later)."
                ),
                samples,
            )?;
        }
        Ok(())
    }
}
