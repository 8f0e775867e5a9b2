//! `backup`: whether guests are backed up, and how recently.
//!
//! - `/cluster/backup-info/not-backed-up` (1 request): guests that no backup job covers.
//! - `/nodes/{node}/storage/{storage}/content?content=backup` for every storage holding
//!   backups (one request per storage; a shared storage is asked once, through one online
//!   node; PBS storages list their snapshots the same way): each guest's newest backup there,
//!   its time and size.
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
use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Reply, Sample, Spec};
use super::{Target, View, gauge, gauge_family, labels, sorted_family, sweep};
use prometheus_client::metrics::MetricType;
use crate::pve::client::types::{
    GetClusterBackupInfoNotBackedUpResponseDataItem, GetClusterTasksResponseDataItem,
    GetNodesNodeStorageStorageContentResponseDataItem,
};
use crate::pve::{ApiError, Dispatcher, Known, named};

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
        .map(|(node, storage)| format!("/nodes/{node}/storage/{storage}/content?content=backup"))
        .collect()
}

/// The storages holding backups, each once: a shared storage through the first online node
/// that lists it, a local one through each node that has it.
pub fn backup_storages(
    rows: &super::cluster_resources::Rows,
    online: &[String],
) -> Vec<(String, String)> {
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
        stores.push((node.to_owned(), storage.to_owned()));
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
    Content(Arc<Vec<Newest>>),
}

impl Collector for Backup {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move {
            let mut asked = vec![Asked::NotBackedUp, Asked::Tasks];
            let stores = backup_storages(&ctx.inventory.data, &ctx.online_nodes());
            asked.extend(
                (stores.into_iter()).map(|(node, storage)| Asked::Content(Store { node, storage })),
            );
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

async fn ask(
    dispatcher: Arc<Dispatcher>,
    asked: Asked,
) -> Result<Reply<Arc<Answer>>, ApiError> {
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
            Answer::Content(Arc::new(newest(&content(dispatcher, store).await?)))
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

/// A guest's newest backup on a storage: its vmid, when it was made, its size.
type Newest = (i64, i64, Option<i64>);

/// Each guest's newest backup among `volumes`, by vmid: what is kept of a storage's list (a
/// few numbers a guest, not every volume's fields).
fn newest(volumes: &[Volume]) -> Vec<Newest> {
    let mut newest: BTreeMap<i64, (i64, Option<i64>)> = BTreeMap::new();
    for volume in volumes {
        let (Some(vmid), Some(ctime)) = (volume.vmid.known(), volume.ctime.known()) else {
            continue;
        };
        keep_newer(newest.entry(vmid).or_insert(NONE_YET), (ctime, volume.size.known()));
    }
    newest.into_iter().map(|(vmid, (at, size))| (vmid, at, size)).collect()
}

/// A backup's time and size, before any is seen.
const NONE_YET: (i64, Option<i64>) = (i64::MIN, None);

/// Keeps in `kept` whichever of it and `seen` was made later.
fn keep_newer(kept: &mut (i64, Option<i64>), seen: (i64, Option<i64>)) {
    if seen.0 > kept.0 {
        *kept = seen;
    }
}

/// A storage's name and a guest's vmid as text.
type StoredGuest<'a> = (&'a str, compact_str::CompactString);

fn by_storage<'a>((storage, vmid): &'a StoredGuest<'_>) -> [(&'static str, &'a str); 2] {
    [("storage", storage), ("vmid", vmid.as_str())]
}

#[derive(Debug, Default)]
struct Backups {
    uncovered: Option<Arc<Vec<Uncovered>>>,
    tasks: Option<Arc<Vec<Task>>>,
    contents: Vec<(Store, Arc<Vec<Newest>>)>,
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
            let each: Vec<Sample> = uncovered
                .iter()
                .filter_map(|g| {
                    let vmid = g.vmid.known()?.to_string();
                    let set = labels([
                        ("name", g.name.known().unwrap_or("")),
                        ("type", g.type_.known().unwrap_or("")),
                        ("vmid", &vmid),
                    ]);
                    Some((set, 1.0))
                })
                .collect();
            gauge_family(
                encoder,
                "proxmox_backup_guest_not_covered",
                "1 for each guest that no backup job covers; other guests have no series.",
                each,
            )?;
        }
        // Each guest's newest backup on each storage: (storage, vmid) → (time, size), in the
        // order of the label values (vmids as text), written without copying them.
        let mut newest: BTreeMap<StoredGuest<'_>, (i64, Option<i64>)> = BTreeMap::new();
        for (store, volumes) in &self.contents {
            for &(vmid, ctime, size) in volumes.iter() {
                use compact_str::ToCompactString;
                let kept = newest.entry((store.storage.as_str(), vmid.to_compact_string()));
                keep_newer(kept.or_insert(NONE_YET), (ctime, size));
            }
        }
        sorted_family(
            encoder,
            "proxmox_backup_newest_timestamp_seconds",
            "When a guest's newest backup on a storage was made, as a Unix time.",
            MetricType::Gauge,
            newest.iter().map(|(k, (at, _))| (by_storage(k), *at as f64)),
        )?;
        sorted_family(
            encoder,
            "proxmox_backup_newest_size_bytes",
            "Size of a guest's newest backup on a storage, in bytes.",
            MetricType::Gauge,
            newest
                .iter()
                .filter_map(|(k, (_, size))| Some((by_storage(k), (*size)? as f64))),
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
