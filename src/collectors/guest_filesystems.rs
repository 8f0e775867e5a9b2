//! `guest_filesystems`: the file systems inside each running VM, through the QEMU guest agent
//! (`/nodes/{node}/qemu/{vmid}/agent/get-fsinfo`). PVE cannot see inside a VM (its `disk` is
//! 0 for every VM); the agent can: size and use of each mounted file system.
//!
//! - **A VM without a working agent** is a state of the guest, not a failure: PVE answers 500
//!   with `No QEMU guest agent configured` or `QEMU guest agent is not running` (or the agent's
//!   own timeout). Such a VM has no series, the collector stays successful, and the answer is
//!   neither retried elsewhere nor held against the endpoint (PVE's reason in the status line
//!   makes it [`ErrorKind::Refused`]). It is asked again after a growing backoff (10 minutes,
//!   then 20, 40, at most an hour; see [`super::sweep`]), as is a VM whose agent hung.
//! - **One agent request per node at a time** (the sweeps' turn, shared with `snapshots` and
//!   `backup`; `--max-guest-requests-per-node`). An agent call can hold one of the node's
//!   three pveproxy workers until the agent answers; a hung agent holds it until this
//!   collector's own timeout ([`AGENT_TIMEOUT`], 4 s) and the node's turn is kept as long again
//!   for PVE's own agent timeout. Meanwhile the node's other VMs wait for their turn, not the
//!   node's other API users, and no scrape waits: after the first sweep, a scrape shows the
//!   answers kept so far.
//! - **What is reported.** File systems with a size: pseudo and read-only image file systems
//!   (`tmpfs`, `squashfs`, `overlay`, …, and anything reporting no size) are left out. A
//!   device mounted at several places (bind mounts, container runtimes, snap) is reported once,
//!   at its shortest mount point: the same bytes counted at every bind mount would alert once
//!   per mount. Windows drive letters come as the agent writes them (`C:\`).
//! - **Privileges.** PVE 7.x and 8.x ask `VM.Monitor` on the VM, PVE 9.x `VM.GuestAgent.Audit`.
//!   A 403 fails the collector with one error naming the privilege, not one per VM.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use super::cluster_resources::{Resource, Rows, kind, vmid};
use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Reply, Spec};
use super::{ByVmid, Target, View, Vmid, WithVmid, sorted_family, sweep};
use crate::pve::client::types::GetNodesNodeQemuVmidAgentGetFsinfoResponseDataResultItem;
use crate::pve::{ApiError, Dispatcher, ErrorKind, Known, named};
use compact_str::CompactString;
use prometheus_client::metrics::MetricType;

pub const NAME: &str = "guest_filesystems";

/// How long one agent request may take before the VM counts as having no answering agent:
/// below the API timeout (`--api-timeout`, 10 s by default), so that a hung agent is the
/// VM's state and not a timeout held against the endpoint.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(4);

/// File system types that hold no data of the guest's own, or a read-only image of it.
const PSEUDO: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "udf",
];

pub type FsInfo = GetNodesNodeQemuVmidAgentGetFsinfoResponseDataResultItem;

pub struct GuestFilesystems;
pub static COLLECTOR: GuestFilesystems = GuestFilesystems;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: false,
    operations: &["GET /nodes/{node}/qemu/{vmid}/agent/get-fsinfo"],
    cost: Cost::PerRunningVm,
    refresh: Some(Duration::from_secs(300)),
};

impl Collector for GuestFilesystems {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move {
            let vms = running_vms(&ctx.inventory.data, &ctx.online_nodes());
            let mut fetched = sweep(ctx, NAME, vms, fetch).await;
            one_error_per_privilege(&mut fetched.errors);
            one_error_per_privilege(&mut fetched.known);
            fetched.map(|vms| {
                let mounted = vms
                    .into_iter()
                    .map(|(vm, mounts)| (vm.vmid, mounts))
                    .collect();
                Box::new(Mounted(mounted)) as Box<dyn Families>
            })
        })
    }
}

/// A running VM whose agent is asked: what its path needs, and no more (its name comes from
/// the inventory when the families are written).
#[derive(Clone, Debug)]
pub struct Vm {
    node: CompactString,
    vmid: u32,
}

impl Target for Vm {
    fn node(&self) -> &str {
        &self.node
    }
    fn path(&self) -> String {
        format!("/nodes/{}/qemu/{}/agent/get-fsinfo", self.node, self.vmid)
    }
}

/// The running VMs (templates aside) on the `online` nodes.
fn running_vms(rows: &Rows, online: &[String]) -> Vec<Vm> {
    let online: std::collections::HashSet<&str> = online.iter().map(String::as_str).collect();
    rows.iter()
        .filter(|r| kind(r) == "qemu" && r.template.known() != Some(true))
        .filter(|r| r.status.known() == Some("running"))
        .filter_map(|r| {
            let node = named(r.node.known()).filter(|n| online.contains(n))?;
            Some(Vm {
                node: node.into(),
                vmid: vmid(r).parse().ok()?,
            })
        })
        .collect()
}

/// The agent paths this collector asks for these rows.
pub fn paths(rows: &Rows, online: &[String]) -> Vec<String> {
    running_vms(rows, online).iter().map(Target::path).collect()
}

/// Whether PVE's answer says the VM has no answering agent: its state, not a failure.
pub fn agent_absent(kind: &ErrorKind) -> bool {
    match kind {
        ErrorKind::Refused { reason, .. } => {
            let reason = reason.to_ascii_lowercase();
            reason.contains("no qemu guest agent configured")
                || reason.contains("qemu guest agent is not running")
                || reason.contains("guest-get-fsinfo' failed - got timeout")
                || reason.contains("guest agent command 'guest-get-fsinfo' not")
        }
        _ => false,
    }
}

/// A VM's file systems; [`Reply::Silent`] when it has no answering agent.
async fn fetch(dispatcher: Arc<Dispatcher>, vm: Vm) -> Result<Reply<Arc<Box<[Mount]>>>, ApiError> {
    let path = vm.path();
    let call = dispatcher.call(&path, |c| {
        let (node, vmid) = (vm.node.to_string(), u64::from(vm.vmid));
        async move {
            c.get_nodes_node_qemu_vmid_agent_get_fsinfo()
                .node(node)
                .vmid(vmid)
                .send()
                .await
        }
    });
    match tokio::time::timeout(AGENT_TIMEOUT, call).await {
        Ok(Ok(answer)) => {
            let all = answer.data.result.unwrap_or_default();
            let mounts = worth_reporting(&all).into_iter().map(Mount::from);
            Ok(Reply::Got(Arc::new(mounts.collect())))
        }
        Ok(Err(error)) if agent_absent(&error.kind) => Ok(Reply::Silent),
        // `--api-timeout` set below the agent timeout ran out first: the same hung agent.
        Ok(Err(error)) if matches!(error.kind, ErrorKind::Timeout) => hung(&path).await,
        Ok(Err(error)) => Err(error),
        Err(_) => hung(&path).await,
    }
}

/// A hung agent: the VM has no answering agent this time. The pveproxy worker that took the
/// request may still wait for the agent until PVE's own timeout: the node's turn (held by the
/// caller) is kept as long again, so that the next VM does not take a second worker.
async fn hung(path: &str) -> Result<Reply<Arc<Box<[Mount]>>>, ApiError> {
    tracing::debug!(path, "no answer from the guest agent in time");
    tokio::time::sleep(AGENT_TIMEOUT).await;
    Ok(Reply::Silent)
}

/// A missing privilege is the same for every VM: one error says it, naming the privilege.
fn one_error_per_privilege(errors: &mut Vec<ApiError>) {
    let forbidden = |e: &ApiError| matches!(&e.kind, ErrorKind::Status(s) | ErrorKind::Refused { status: s, .. } if s.as_u16() == 403);
    let Some(first) = errors.iter().position(forbidden) else {
        return;
    };
    let count = errors.iter().filter(|e| forbidden(e)).count();
    let mut error = errors.remove(first);
    errors.retain(|e| !forbidden(e));
    error.kind = ErrorKind::Other(format!(
        "HTTP 403 for {count} VM(s): the token needs VM.Monitor (PVE 7.x, 8.x) or \
         VM.GuestAgent.Audit (PVE 9.x) on /vms"
    ));
    errors.insert(first.min(errors.len()), error);
}

/// The file systems worth a series, each device once at its shortest mount point.
pub fn worth_reporting(filesystems: &[FsInfo]) -> Vec<&FsInfo> {
    let mut kept: Vec<&FsInfo> = filesystems
        .iter()
        .filter(|fs| {
            let fstype = fs.type_.known().unwrap_or("").to_ascii_lowercase();
            let sized = fs.total_bytes.known().is_some_and(|t| t > 0);
            sized
                && named(fs.mountpoint.known()).is_some()
                && !PSEUDO.contains(&fstype.as_str())
                && !fstype.starts_with("fuse.")
        })
        .collect();
    kept.sort_by_key(|fs| {
        let mountpoint = fs.mountpoint.known().unwrap_or("");
        (
            fs.name.known().unwrap_or("").to_owned(),
            mountpoint.len(),
            mountpoint.to_owned(),
        )
    });
    // A device without a name is kept at each of its mount points: nothing says they are one.
    kept.dedup_by(|later, earlier| {
        named(later.name.known()).is_some() && later.name.known() == earlier.name.known()
    });
    kept
}

/// What is kept of a reported file system: a few short strings and two numbers, not the
/// agent's whole answer (its disks, serials, bus addresses).
#[derive(Debug)]
pub struct Mount {
    fstype: CompactString,
    mountpoint: CompactString,
    total: Option<i64>,
    used: Option<i64>,
}

impl From<&FsInfo> for Mount {
    fn from(fs: &FsInfo) -> Mount {
        Mount {
            fstype: fs.type_.known().unwrap_or("").into(),
            mountpoint: fs.mountpoint.known().unwrap_or("").into(),
            total: fs.total_bytes.known(),
            used: fs.used_bytes.known(),
        }
    }
}

/// Each VM's file systems by vmid.
#[derive(Debug)]
struct Mounted(ByVmid<Arc<Box<[Mount]>>>);

/// A file system as written: its VM's inventory row and vmid, and itself (24 bytes).
type Listed<'a> = (&'a Resource, Vmid, &'a Mount);

/// A file system's labels, in their order.
fn mount_labels<'a>((row, vmid, fs): &Listed<'a>) -> WithVmid<'a, 4> {
    (
        [
            ("fstype", &fs.fstype),
            ("mountpoint", &fs.mountpoint),
            ("name", row.name.known().unwrap_or("")),
            ("node", row.node.known().unwrap_or("")),
        ],
        [("vmid", *vmid)],
    )
}

impl Families for Mounted {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        // The VMs with file systems, labelled from the inventory.
        let vms = || {
            (view.inventory.data.iter())
                .filter(|r| kind(r) == "qemu")
                .filter_map(|row| {
                    let vmid: u32 = vmid(row).parse().ok()?;
                    Some((row, Vmid(vmid), &***self.0.get(vmid)?))
                })
        };
        // Sorted by their label values once, then written without copying them. Made to its
        // size: grown by doubling it took up to twice as much.
        let mut all: Vec<Listed<'_>> =
            Vec::with_capacity(vms().map(|(_, _, mounts)| mounts.len()).sum());
        all.extend(
            vms().flat_map(|(row, vmid, mounts)| mounts.iter().map(move |fs| (row, vmid, fs))),
        );
        all.sort_by(|a, b| mount_labels(a).cmp(&mount_labels(b)));
        all.dedup_by(|later, earlier| mount_labels(later) == mount_labels(earlier));
        sorted_family(
            encoder,
            "proxmox_guest_filesystem_size_bytes",
            "Size of a file system inside a running VM, as its QEMU guest agent reports it.",
            MetricType::Gauge,
            all.iter()
                .filter_map(|each| Some((mount_labels(each), each.2.total? as f64))),
        )?;
        sorted_family(
            encoder,
            "proxmox_guest_filesystem_used_bytes",
            "Bytes in use on a file system inside a running VM, as its QEMU guest agent reports \
             it.",
            MetricType::Gauge,
            all.iter()
                .filter_map(|each| Some((mount_labels(each), each.2.used? as f64))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(name: &str, mountpoint: &str, fstype: &str, total: Option<i64>) -> FsInfo {
        serde_json::from_value(serde_json::json!({
            "name": name, "mountpoint": mountpoint, "type": fstype,
            "total-bytes": total, "used-bytes": total.map(|t| t / 2),
        }))
        .unwrap()
    }

    #[test]
    fn pseudo_file_systems_go_and_a_device_counts_once() {
        let list = [
            fs("sda1", "/", "ext4", Some(100)),
            fs(
                "sda1",
                "/var/lib/docker/overlay2/x/merged",
                "ext4",
                Some(100),
            ),
            fs("sda2", "/boot/efi", "vfat", Some(10)),
            fs("loop0", "/snap/core/1", "squashfs", Some(5)),
            fs("tmpfs", "/run", "tmpfs", Some(5)),
            fs("sdb1", "/data", "xfs", None),
            fs("\\\\?\\Volume{a}\\", "C:\\", "NTFS", Some(1000)),
            fs("", "/mnt/a", "nfs4", Some(7)),
            fs("", "/mnt/b", "nfs4", Some(7)),
        ];
        let kept: Vec<&str> = worth_reporting(&list)
            .iter()
            .map(|f| f.mountpoint.known().unwrap_or(""))
            .collect();
        assert_eq!(kept, ["/mnt/a", "/mnt/b", "C:\\", "/", "/boot/efi"]);
    }

    #[test]
    fn the_agents_absence_is_the_guests_state() {
        let refused = |reason: &str| ErrorKind::Refused {
            status: reqwest::StatusCode::INTERNAL_SERVER_ERROR,
            reason: reason.into(),
        };
        assert!(agent_absent(&refused("No QEMU guest agent configured")));
        assert!(agent_absent(&refused("QEMU guest agent is not running")));
        assert!(agent_absent(&refused(
            "VM 101 qmp command 'guest-get-fsinfo' failed - got timeout"
        )));
        assert!(!agent_absent(&refused("VM 101 not running")));
        assert!(!agent_absent(&ErrorKind::Status(
            reqwest::StatusCode::FORBIDDEN
        )));
    }

    #[test]
    fn a_missing_privilege_is_one_error() {
        let forbidden = |vmid: u32| ApiError {
            endpoint: "https://pve1:8006".into(),
            path: format!("/nodes/pve1/qemu/{vmid}/agent/get-fsinfo"),
            kind: ErrorKind::Status(reqwest::StatusCode::FORBIDDEN),
        };
        let mut errors = vec![forbidden(100), forbidden(101), forbidden(102)];
        one_error_per_privilege(&mut errors);
        assert_eq!(errors.len(), 1);
        let said = errors[0].to_string();
        assert!(
            said.contains("3 VM(s)") && said.contains("VM.GuestAgent.Audit"),
            "{said}"
        );
    }
}
