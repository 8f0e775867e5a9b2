//! `storage`: each storage's state on each node, from the inventory's storage rows, at no
//! extra request. PVE lists a storage once per node that may use it, with `status`
//! `available` or `unknown` (the node cannot reach it: an NFS server down, a Ceph pool
//! unreachable, a disabled storage), and its configuration: `shared`, `content` and the
//! plugin type.
//!
//! - **Available** per node and storage: 1 or 0. A storage whose row says nothing of its
//!   status makes no series.
//! - **Info** per storage (its configuration is the cluster's, not a node's): plugin type,
//!   `shared`, and `content` sorted, so that reordering the content types in the GUI makes no
//!   new series.
//!
//! `/nodes/{node}/storage` would add `enabled` and `active`, at one request per node: an
//! unreachable storage already shows here as `unknown`, and a disabled one is not listed at
//! all, so it is not asked.

use prometheus_client::encoding::DescriptorEncoder;

use super::cluster_resources::{from_inventory, kind, storage_name};
use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Sample, Spec, View};
use super::{gauge_family, labels};
use crate::pve::{Known, named};

pub const NAME: &str = "storage";

pub struct Storage;
pub static COLLECTOR: Storage = Storage;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: false,
    // It reads the inventory.
    operations: &[],
    cost: Cost::Nothing,
    refresh: None,
};

impl Collector for Storage {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move { from_inventory(ctx, Box::new(States)) })
    }
}

#[derive(Debug)]
struct States;

/// PVE's content types (`images,rootdir,backup`), sorted and joined with `,`.
pub fn sorted_content(content: Option<&str>) -> String {
    super::encode::sorted_list(content, &[','], ",")
}

impl Families for States {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        if !view.inventory.succeeded() {
            return Ok(());
        }
        let mut available: Vec<Sample> = Vec::new();
        let mut info: Vec<Sample> = Vec::new();
        for row in view.inventory.data.iter().filter(|r| kind(r) == "storage") {
            let (Some(storage), Some(node)) = (storage_name(row), named(row.node.known())) else {
                continue;
            };
            if let Some(status) = named(row.status.known()) {
                let up = status.eq_ignore_ascii_case("available");
                available.push((
                    labels([("node", node), ("storage", storage)]),
                    f64::from(u8::from(up)),
                ));
            }
            let shared = match row.shared.known() {
                Some(true) => "1",
                Some(false) => "0",
                None => "",
            };
            info.push((
                labels([
                    ("content", &sorted_content(row.content())),
                    ("shared", shared),
                    ("storage", storage),
                    ("type", row.plugintype().unwrap_or("")),
                ]),
                1.0,
            ));
        }
        gauge_family(
            encoder,
            "proxmox_storage_available",
            "1 while a node reaches a storage (PVE's status `available`), 0 when PVE reports it \
             `unknown` there.",
            available,
        )?;
        gauge_family(
            encoder,
            "proxmox_storage_info",
            "A storage's configuration: its plugin type, whether it is shared, and the content \
             types it holds (sorted).",
            info,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::sorted_content;

    #[test]
    fn content_types_sort_so_a_reordering_makes_no_new_series() {
        assert_eq!(
            sorted_content(Some("rootdir,images, backup")),
            "backup,images,rootdir"
        );
        assert_eq!(
            sorted_content(Some("images,rootdir,backup")),
            "backup,images,rootdir"
        );
        assert_eq!(sorted_content(Some("")), "");
        assert_eq!(sorted_content(None), "");
    }
}
