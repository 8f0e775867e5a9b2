//! `backup`: whether guests are backed up, and how recently.
//!
//! - `/cluster/backup-info/not-backed-up` (1 request): guests that no backup job covers.
//! - `/nodes/{node}/storage/{storage}/content?content=backup` for every storage holding
//!   backups (one request per storage; a shared storage is asked once, through one online
//!   node; PBS storages list their snapshots the same way): each guest's newest backup there,
//!   its time and size. Where backups are verified (a PBS storage, or any storage whose list
//!   carries a `verification`), also the newest backup's verification state and when the
//!   newest verified backup was made: a backup that was never verified, or failed its
//!   verification, restores nothing.
//! - `/cluster/tasks` (1 request): each node's last finished backup (vzdump) task, when it
//!   ended and whether it succeeded.
//!
//! Backups change a few times a day: all three are swept over 5 minutes by default
//! ([`super::sweep`]), each storage at its own moment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use super::cluster_resources::kind;
use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Reply, Spec};
use super::{Target, View, as_text, gauge, gauge_family, labels, sorted_family, sweep};
use crate::pve::client::types::{
    GetClusterBackupInfoNotBackedUpResponseDataItem, GetClusterTasksResponseDataItem,
    GetNodesNodeStorageStorageContentResponseDataItem,
};
use crate::pve::{ApiError, Dispatcher, Known, named};
use prometheus_client::metrics::MetricType;

pub const NAME: &str = "backup";

type Uncovered = GetClusterBackupInfoNotBackedUpResponseDataItem;
type Task = GetClusterTasksResponseDataItem;
type Volume = GetNodesNodeStorageStorageContentResponseDataItem;

pub struct Backup;
pub static COLLECTOR: Backup = Backup;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: false,
    operations: &[
        "GET /cluster/backup-info/not-backed-up",
        "GET /nodes/{node}/storage/{storage}/content",
        "GET /cluster/tasks",
    ],
    cost: Cost::BackupStorages,
    refresh: Some(Duration::from_secs(300)),
};

/// A storage holding backups, and the online node it is asked through.
#[derive(Clone, Debug)]
struct Store {
    node: String,
    storage: String,
    /// A Proxmox Backup Server storage: its backups are verified.
    pbs: bool,
}

impl Target for Store {
    fn node(&self) -> &str {
        &self.node
    }
    fn path(&self) -> String {
        format!("/nodes/{}/storage/{}/content", self.node, self.storage)
    }
}

/// The content paths this collector asks for these rows (with the `content=backup` query).
pub fn paths(rows: &super::cluster_resources::Rows, online: &[String]) -> Vec<String> {
    backup_storages(rows, online)
        .into_iter()
        .map(|s| {
            format!(
                "/nodes/{}/storage/{}/content?content=backup",
                s.node, s.storage
            )
        })
        .collect()
}

/// The storages holding backups, each once: a shared storage through the first online node
/// that lists it, a local one through each node that has it.
fn backup_storages(rows: &super::cluster_resources::Rows, online: &[String]) -> Vec<Store> {
    let mut seen_shared = std::collections::BTreeSet::new();
    let mut stores = Vec::new();
    for row in rows.iter().filter(|r| kind(r) == "storage") {
        let (Some(node), Some(storage)) = (named(row.node.known()), named(row.storage())) else {
            continue;
        };
        let holds_backups = row
            .content()
            .is_some_and(|c| c.split(',').any(|t| t.trim() == "backup"));
        if !holds_backups || !online.iter().any(|o| o == node) {
            continue;
        }
        if row.shared.known() == Some(true) && !seen_shared.insert(storage.to_owned()) {
            continue;
        }
        stores.push(Store {
            node: node.to_owned(),
            storage: storage.to_owned(),
            pbs: row.plugintype() == Some("pbs"),
        });
    }
    stores
}

/// What the collector asks: the two cluster-wide lists and each storage's backups, all
/// swept over the refresh ([`super::sweep`]).
#[derive(Clone, Debug)]
enum Asked {
    NotBackedUp,
    Tasks,
    Content(Store),
}

impl Target for Asked {
    fn node(&self) -> &str {
        match self {
            Asked::Content(store) => &store.node,
            // Cluster-wide: any endpoint answers, and they take one turn of their own.
            Asked::NotBackedUp | Asked::Tasks => "",
        }
    }
    fn path(&self) -> String {
        match self {
            Asked::NotBackedUp => "/cluster/backup-info/not-backed-up".into(),
            Asked::Tasks => "/cluster/tasks".into(),
            Asked::Content(store) => store.path(),
        }
    }
}

#[derive(Debug)]
enum Answer {
    Uncovered(Arc<Vec<Uncovered>>),
    Tasks(Arc<Vec<Task>>),
    Content(Arc<Listing>),
}

impl Collector for Backup {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move {
            let mut asked = vec![Asked::NotBackedUp, Asked::Tasks];
            let stores = backup_storages(&ctx.inventory.data, &ctx.online_nodes());
            asked.extend(stores.into_iter().map(Asked::Content));
            let fetched = sweep(ctx, NAME, asked, ask).await;
            fetched.map(|answers| {
                let mut backups = Backups::default();
                for (asked, answer) in answers {
                    match (asked, &*answer) {
                        (_, Answer::Uncovered(list)) => backups.uncovered = Some(list.clone()),
                        (_, Answer::Tasks(list)) => backups.tasks = Some(list.clone()),
                        (Asked::Content(store), Answer::Content(list)) => {
                            backups.contents.push((store, list.clone()))
                        }
                        (_, Answer::Content(_)) => {}
                    }
                }
                Box::new(backups) as Box<dyn Families>
            })
        })
    }
}

async fn ask(dispatcher: Arc<Dispatcher>, asked: Asked) -> Result<Reply<Arc<Answer>>, ApiError> {
    let path = asked.path();
    let answer = match asked {
        Asked::NotBackedUp => {
            let answer = dispatcher
                .call(&path, |c| async move {
                    c.get_cluster_backup_info_not_backed_up().send().await
                })
                .await?;
            Answer::Uncovered(Arc::new(answer.data))
        }
        Asked::Tasks => {
            let answer = dispatcher
                .call(&path, |c| async move { c.get_cluster_tasks().send().await })
                .await?;
            Answer::Tasks(Arc::new(answer.data))
        }
        Asked::Content(store) => {
            let pbs = store.pbs;
            let volumes = content(dispatcher, store).await?;
            Answer::Content(Arc::new(Listing {
                verifies: pbs || volumes.iter().any(|v| v.verification.is_some()),
                newest: newest(&volumes),
            }))
        }
    };
    Ok(Reply::Got(Arc::new(answer)))
}

async fn content(dispatcher: Arc<Dispatcher>, store: Store) -> Result<Vec<Volume>, ApiError> {
    let path = store.path();
    let answer = dispatcher
        .call(&path, |c| {
            let store = store.clone();
            async move {
                c.get_nodes_node_storage_storage_content()
                    .node(store.node)
                    .storage(store.storage)
                    .content("backup")
                    .send()
                    .await
            }
        })
        .await?;
    Ok(answer.data)
}

/// What is kept of a storage's list: each guest's newest backup, and whether the storage
/// verifies its backups.
#[derive(Debug)]
struct Listing {
    verifies: bool,
    newest: Vec<(i64, Newest)>,
}

/// A guest's newest backup on a storage: when it was made, its size, its verification, and
/// when the newest verified one was made.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Newest {
    at: i64,
    size: Option<i64>,
    verified: Verified,
    verified_at: Option<i64>,
}

/// A backup's verification, as the value written: 1 passed, 0 failed, -1 none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verified {
    Ok,
    Failed,
    Not,
}

impl Verified {
    /// PBS's verify state: `ok`, `failed`; none when the backup was never verified.
    fn of(volume: &Volume) -> Verified {
        let state = volume.verification.as_ref().and_then(|v| v.state.known());
        match state.map(str::trim) {
            Some(s) if s.eq_ignore_ascii_case("ok") => Verified::Ok,
            Some(s) if !s.is_empty() => Verified::Failed,
            _ => Verified::Not,
        }
    }

    fn value(self) -> f64 {
        match self {
            Verified::Ok => 1.0,
            Verified::Failed => 0.0,
            Verified::Not => -1.0,
        }
    }
}

/// Each guest's newest backup among `volumes`, by vmid: a few numbers a guest, not every
/// volume's fields.
fn newest(volumes: &[Volume]) -> Vec<(i64, Newest)> {
    let mut newest: BTreeMap<i64, Newest> = BTreeMap::new();
    for volume in volumes {
        let (Some(vmid), Some(ctime)) = (volume.vmid.known(), volume.ctime.known()) else {
            continue;
        };
        let verified = Verified::of(volume);
        let seen = Newest {
            at: ctime,
            size: volume.size.known(),
            verified,
            verified_at: (verified == Verified::Ok).then_some(ctime),
        };
        keep_newer(newest.entry(vmid).or_insert(NONE_YET), seen);
    }
    newest.into_iter().collect()
}

/// A guest's backups before any is seen.
const NONE_YET: Newest = Newest {
    at: i64::MIN,
    size: None,
    verified: Verified::Not,
    verified_at: None,
};

/// Keeps in `kept` whichever of it and `seen` was made later, and the later of their newest
/// verified backups.
fn keep_newer(kept: &mut Newest, seen: Newest) {
    let verified_at = kept.verified_at.max(seen.verified_at);
    if seen.at > kept.at {
        *kept = seen;
    }
    kept.verified_at = verified_at;
}

#[derive(Debug, Default)]
struct Backups {
    uncovered: Option<Arc<Vec<Uncovered>>>,
    tasks: Option<Arc<Vec<Task>>>,
    contents: Vec<(Store, Arc<Listing>)>,
}

impl Families for Backups {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        if let Some(uncovered) = &self.uncovered {
            gauge(
                encoder,
                "proxmox_backup_guests_not_covered",
                "Guests that no backup job covers.",
                uncovered.len() as f64,
            )?;
            // Borrowed from the answer and sorted by the label values (the vmid as text):
            // 40 bytes a guest instead of three owned labels.
            let mut each: Vec<(&str, &str, i64)> = (uncovered.iter())
                .filter_map(|g| {
                    let (name, kind) = (g.name.known(), g.type_.known());
                    Some((name.unwrap_or(""), kind.unwrap_or(""), g.vmid.known()?))
                })
                .collect();
            let order = |a: &(&str, &str, i64), b: &(&str, &str, i64)| {
                (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| as_text(a.2, b.2))
            };
            each.sort_by(order);
            each.dedup_by(|later, earlier| order(later, earlier).is_eq());
            sorted_family(
                encoder,
                "proxmox_backup_guest_not_covered",
                "1 for each guest that no backup job covers; other guests have no series.",
                MetricType::Gauge,
                (each.iter()).map(|&(name, kind, vmid)| {
                    (([("name", name), ("type", kind)], [("vmid", vmid)]), 1.0)
                }),
            )?;
        }
        // Each guest's newest backup on each storage, in the order of the label values
        // (storage, then the vmid as text): positions into the listings, 8 bytes a backup,
        // sorted once; a storage name listed by several nodes (`local`) counts once, its
        // listings' entries for one guest merged as they are written.
        let mut at: Vec<(u32, u32)> = Vec::with_capacity(
            (self.contents.iter())
                .map(|(_, listing)| listing.newest.len())
                .sum(),
        );
        for (s, (_, listing)) in self.contents.iter().enumerate() {
            let s = u32::try_from(s).unwrap_or(u32::MAX);
            at.extend((0..listing.newest.len()).map(|i| (s, u32::try_from(i).unwrap_or(u32::MAX))));
        }
        let entry = |&(s, i): &(u32, u32)| {
            let (store, listing) = &self.contents[s as usize];
            let (vmid, newest) = listing.newest[i as usize];
            (store.storage.as_str(), vmid, newest)
        };
        let same = |a: &(u32, u32), b: &(u32, u32)| {
            let ((sa, va, _), (sb, vb, _)) = (entry(a), entry(b));
            sa.cmp(sb).then_with(|| as_text(va, vb))
        };
        at.sort_by(same);
        let verifying: std::collections::BTreeSet<&str> = (self.contents.iter())
            .filter(|(_, listing)| listing.verifies)
            .map(|(store, _)| store.storage.as_str())
            .collect();
        // Each (storage, vmid) once, with the newest of its listings' backups.
        let newest = || {
            at.chunk_by(move |a, b| same(a, b).is_eq())
                .map(move |group| {
                    let (storage, vmid, _) = entry(&group[0]);
                    let mut kept = NONE_YET;
                    for each in group {
                        keep_newer(&mut kept, entry(each).2);
                    }
                    (storage, vmid, kept)
                })
        };
        let by_storage = |storage, vmid| ([("storage", storage)], [("vmid", vmid)]);
        sorted_family(
            encoder,
            "proxmox_backup_newest_timestamp_seconds",
            "When a guest's newest backup on a storage was made, as a Unix time.",
            MetricType::Gauge,
            newest().map(|(s, v, n)| (by_storage(s, v), n.at as f64)),
        )?;
        sorted_family(
            encoder,
            "proxmox_backup_newest_size_bytes",
            "Size of a guest's newest backup on a storage, in bytes.",
            MetricType::Gauge,
            newest().filter_map(|(s, v, n)| Some((by_storage(s, v), n.size? as f64))),
        )?;
        let verified = || newest().filter(|(storage, _, _)| verifying.contains(storage));
        sorted_family(
            encoder,
            "proxmox_backup_newest_verification_status",
            "Verification of a guest's newest backup on a storage that verifies backups (PBS): \
             1 passed, 0 failed, -1 not verified (yet).",
            MetricType::Gauge,
            verified().map(|(s, v, n)| (by_storage(s, v), n.verified.value())),
        )?;
        sorted_family(
            encoder,
            "proxmox_backup_newest_verified_timestamp_seconds",
            "When a guest's newest backup that passed verification was made, as a Unix time.",
            MetricType::Gauge,
            verified().filter_map(|(s, v, n)| Some((by_storage(s, v), n.verified_at? as f64))),
        )?;
        let Some(tasks) = &self.tasks else {
            return Ok(());
        };
        // Each node's last finished vzdump task.
        let mut last: BTreeMap<&str, (i64, bool)> = BTreeMap::new();
        for task in tasks.iter().filter(|t| t.type_.known() == Some("vzdump")) {
            let (Some(node), Some(end), Some(status)) =
                (task.node.known(), task.endtime.known(), task.status.known())
            else {
                continue; // still running
            };
            let entry = last.entry(node).or_insert((i64::MIN, false));
            if end > entry.0 {
                *entry = (end, status == "OK");
            }
        }
        gauge_family(
            encoder,
            "proxmox_backup_task_last_end_timestamp_seconds",
            "When a node's last backup (vzdump) task ended, as a Unix time.",
            last.iter()
                .map(|(node, (end, _))| (labels([("node", node)]), *end as f64))
                .collect(),
        )?;
        gauge_family(
            encoder,
            "proxmox_backup_task_last_success",
            "Whether a node's last backup (vzdump) task succeeded (1) or failed (0).",
            last.iter()
                .map(|(node, (_, ok))| (labels([("node", node)]), f64::from(u8::from(*ok))))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(vmid: i64, ctime: i64, state: Option<&str>) -> Volume {
        let verification = state.map(|s| serde_json::json!({ "state": s, "upid": "UPID:x" }));
        serde_json::from_value(serde_json::json!({
            "volid": format!("pbs:backup/vm/{vmid}/{ctime}"), "vmid": vmid, "ctime": ctime,
            "size": 1000, "verification": verification,
        }))
        .unwrap()
    }

    #[test]
    fn the_newest_backup_tells_its_verification_and_the_newest_verified_one_stays_known() {
        let volumes = [
            volume(100, 10, Some("ok")),
            volume(100, 30, Some("failed")),
            volume(100, 20, Some("ok")),
            volume(101, 10, None),
            volume(102, 40, Some("ok")),
        ];
        let newest = newest(&volumes);
        let by_vmid: BTreeMap<i64, Newest> = newest.into_iter().collect();
        assert_eq!(by_vmid[&100].at, 30);
        assert_eq!(by_vmid[&100].verified, Verified::Failed);
        assert_eq!(by_vmid[&100].verified_at, Some(20));
        assert_eq!(by_vmid[&101].verified, Verified::Not);
        assert_eq!(by_vmid[&101].verified_at, None);
        assert_eq!(by_vmid[&102].verified.value(), 1.0);
        assert_eq!(by_vmid[&102].verified_at, Some(40));
    }
}
