//! `pbs_groups`: each backup group's snapshot count and last backup, per datastore and
//! namespace, kept for 5 minutes. A refresh asks `/admin/datastore` (the datastores and their
//! maintenance mode), `/admin/datastore/{store}/namespace` per datastore and
//! `/admin/datastore/{store}/groups?ns=NS` per namespace: PBS answers these from its group
//! directories. `/admin/datastore/{store}/snapshots` is never asked: PBS reads every
//! snapshot's manifest from disk for it.
//!
//! A datastore in offline maintenance or being removed is not asked; one PBS refuses to
//! open for such a reason in the meantime (`400 datastore is being deleted`) has no series,
//! and costs no failure.

use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::datastore::{LIST_PATH, maintenance_mode};
use super::{get, outcome, unavailable};
use crate::collectors::{BoxFuture, Collected, Collector, Context, Cost, Families, Spec, View};
use crate::collectors::{Target, sorted_family};
use crate::pve::{ApiError, Dispatcher, ErrorKind, Known, named};

pub const NAME: &str = "pbs_groups";

pub struct Groups;
pub static COLLECTOR: Groups = Groups;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: true,
    operations: &[
        "GET /admin/datastore",
        "GET /admin/datastore/{store}/namespace",
        "GET /admin/datastore/{store}/groups",
    ],
    cost: Cost::PerNamespace,
    refresh: Some(Duration::from_secs(300)),
};

/// A datastore, or one of its namespaces (`""`: the root).
#[derive(Clone, Debug)]
struct Place {
    store: Arc<str>,
    ns: CompactString,
}

impl Target for Place {
    fn node(&self) -> &str {
        super::NODE
    }
    fn path(&self) -> String {
        format!("/admin/datastore/{}", self.store)
    }
}

/// A backup group as kept.
#[derive(Debug, PartialEq)]
pub struct Group {
    pub kind: CompactString,
    pub id: CompactString,
    pub snapshots: i64,
    pub last_backup: Option<i64>,
    pub comment: CompactString,
    pub owner: CompactString,
}

/// A datastore's state that is no failure: offline maintenance, being removed, unmounted.
fn unavailable_store(error: &ApiError) -> bool {
    matches!(&error.kind, ErrorKind::Refused { status, reason }
        if status.is_client_error() && unavailable(reason).is_some())
}

/// `answer`, with a datastore PBS cannot open for its state read as nothing.
fn unless_unavailable<T>(answer: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match answer {
        Ok(answer) => Ok(Some(answer)),
        Err(error) if unavailable_store(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

async fn namespaces(d: Arc<Dispatcher>, place: Place) -> Result<Vec<CompactString>, ApiError> {
    let path = format!("/admin/datastore/{}/namespace", place.store);
    let answer = get(&d, &path, |c| {
        let store = place.store.to_string();
        async move {
            c.get_admin_datastore_store_namespace()
                .store(store)
                .send()
                .await
        }
    })
    .await;
    Ok(unless_unavailable(answer)?
        .map(|a| {
            a.data
                .iter()
                .map(|n| n.ns.known().unwrap_or("").into())
                .collect()
        })
        .unwrap_or_default())
}

async fn groups(d: Arc<Dispatcher>, place: Place) -> Result<Vec<Group>, ApiError> {
    let path = format!("/admin/datastore/{}/groups", place.store);
    let answer = get(&d, &path, |c| {
        let (store, ns) = (place.store.to_string(), place.ns.to_string());
        async move {
            let call = c.get_admin_datastore_store_groups().store(store);
            // The root namespace is asked without `ns`, as PBS before 2.2 knows no namespaces.
            let call = if ns.is_empty() { call } else { call.ns(ns) };
            call.send().await
        }
    })
    .await;
    let Some(answer) = unless_unavailable(answer)? else {
        return Ok(Vec::new());
    };
    let mut kept: Vec<Group> = (answer.data.iter())
        .filter_map(|g| {
            Some(Group {
                kind: named(g.backup_type.known())?.into(),
                id: named(g.backup_id.known())?.into(),
                snapshots: g.backup_count.known().unwrap_or(0),
                last_backup: g.last_backup.known(),
                comment: g.comment.known().unwrap_or("").into(),
                owner: g.owner.known().unwrap_or("").into(),
            })
        })
        .collect();
    kept.shrink_to_fit();
    Ok(kept)
}

impl Collector for Groups {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let listed = get(&ctx.dispatcher, LIST_PATH, |c| async move {
                c.get_admin_datastore().send().await
            })
            .await;
            let listed = match listed {
                Ok(listed) => listed.data,
                Err(error) => {
                    return Collected::failed(
                        Box::new(Read(Vec::new())) as Box<dyn Families>,
                        error,
                        started.elapsed(),
                    );
                }
            };
            // Offline or being removed: PBS would refuse every request for it.
            let stores: Vec<Place> = (listed.iter())
                .filter(|l| {
                    let mode = l.maintenance.known().and_then(maintenance_mode);
                    !matches!(mode, Some("offline" | "delete"))
                })
                .filter_map(|l| named(l.store.known()))
                .map(|store| Place {
                    store: store.into(),
                    ns: CompactString::default(),
                })
                .collect();
            let found = ctx.fan_out(stores, namespaces).await;
            let places: Vec<Place> = (found.data.iter())
                .flat_map(|(store, list)| {
                    list.iter().map(|ns| Place {
                        store: store.store.clone(),
                        ns: ns.clone(),
                    })
                })
                .collect();
            let asked = ctx.fan_out(places, groups).await;
            let mut errors = found.errors;
            errors.extend(asked.errors);
            let mut read: Vec<(Place, Vec<Group>)> = asked.data;
            read.sort_by(|a, b| (&a.0.store, &a.0.ns).cmp(&(&b.0.store, &b.0.ns)));
            outcome(started, Box::new(Read(read)), errors)
        })
    }
}

#[derive(Debug)]
struct Read(Vec<(Place, Vec<Group>)>);

impl Families for Read {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        // Places are sorted by (datastore, namespace); groups within one by (type, id).
        let mut all: Vec<([(&str, &str); 4], &Group)> = (self.0.iter())
            .flat_map(|(place, groups)| {
                groups.iter().map(move |g| {
                    let labels = [
                        ("datastore", &*place.store),
                        ("id", g.id.as_str()),
                        ("namespace", place.ns.as_str()),
                        ("type", g.kind.as_str()),
                    ];
                    (labels, g)
                })
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.dedup_by(|later, earlier| later.0 == earlier.0);
        sorted_family(
            encoder,
            "proxmox_pbs_group_snapshots",
            "Backup snapshots a group (type vm, ct or host, and id) holds in a datastore's \
             namespace.",
            MetricType::Gauge,
            all.iter().map(|(l, g)| (*l, g.snapshots as f64)),
        )?;
        sorted_family(
            encoder,
            "proxmox_pbs_group_last_backup_timestamp_seconds",
            "When a group's last backup snapshot was taken, as a Unix time.",
            MetricType::Gauge,
            (all.iter()).filter_map(|(l, g)| Some((*l, g.last_backup? as f64))),
        )?;
        sorted_family(
            encoder,
            "proxmox_pbs_group_info",
            "A backup group's comment (usually the guest's name) and owner; always 1.",
            MetricType::Gauge,
            all.iter().map(|(l, g)| {
                let [datastore, id, namespace, kind] = *l;
                let set = [
                    ("comment", g.comment.as_str()),
                    datastore,
                    id,
                    namespace,
                    ("owner", g.owner.as_str()),
                    kind,
                ];
                (set, 1.0)
            }),
        )
    }
}
