//! Collectors: each fetches what it needs from the API into a [`Snapshot`], and turns its part
//! of a snapshot into metric families. A failing collector costs only its own metrics.
//!
//! - [`cluster_resources`]: one `/cluster/resources` request; nodes, guests, storage, totals.
//! - [`node_disks`]: `/nodes/{node}/disks/list` per online node; SMART health.
//! - [`node_certificates`]: `/nodes/{node}/certificates/info` per online node; expiry.
//!
//! Per-node requests for all nodes run concurrently, bounded by `max_concurrent_requests`.

pub mod cluster_resources;
pub mod node_certificates;
pub mod node_disks;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use tokio::sync::Semaphore;

use crate::pve::{ApiError, Dispatcher};

/// What one collector fetched, what failed, and how long it took.
#[derive(Debug)]
pub struct Collected<T> {
    pub data: T,
    pub errors: Vec<ApiError>,
    pub duration: Duration,
    /// Nodes whose own requests answered 595/596: unreachable from the cluster right now.
    pub unreachable: Vec<String>,
}

impl<T> Collected<T> {
    pub fn succeeded(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Everything one collection fetched from the API.
#[derive(Debug)]
pub struct Snapshot {
    /// When the collection started; certificate days count from here.
    pub taken_at: SystemTime,
    pub resources: Collected<Vec<cluster_resources::Resource>>,
    pub disks: Collected<Vec<(String, Vec<node_disks::Disk>)>>,
    pub certificates: Collected<Vec<(String, Vec<node_certificates::Certificate>)>>,
}

/// Fetches a snapshot: the cluster's resources first, then the per-node answers for every
/// online node, all at once (bounded by `max_concurrent`). `taken_at` is the snapshot's "now".
/// What has not answered by `deadline` is given up and reported as failed.
pub async fn collect(
    dispatcher: &Arc<Dispatcher>,
    max_concurrent: usize,
    taken_at: SystemTime,
    deadline: Option<tokio::time::Instant>,
) -> Snapshot {
    let started = Instant::now();
    let resources = before(deadline, cluster_resources::fetch(dispatcher))
        .await
        .unwrap_or_else(|| Collected {
            data: Vec::new(),
            errors: vec![too_late(cluster_resources::PATH)],
            duration: started.elapsed(),
            unreachable: Vec::new(),
        });
    let nodes = cluster_resources::online_nodes(&resources.data);
    let limit = Arc::new(Semaphore::new(max_concurrent.max(1)));
    let (disks, certificates) = tokio::join!(
        per_node(dispatcher, &limit, &nodes, deadline, node_disks::fetch),
        per_node(
            dispatcher,
            &limit,
            &nodes,
            deadline,
            node_certificates::fetch
        ),
    );
    for error in resources
        .errors
        .iter()
        .chain(&disks.errors)
        .chain(&certificates.errors)
    {
        tracing::warn!(endpoint = %error.endpoint, path = %error.path, error = %error.kind, "API request failed");
    }
    Snapshot {
        taken_at,
        resources,
        disks,
        certificates,
    }
}

/// Runs `fetch` for every node in its own task, at most `limit` at a time. A task that panics
/// costs that node's answer, reported as an error, not the process.
async fn per_node<T, F, Fut>(
    dispatcher: &Arc<Dispatcher>,
    limit: &Arc<Semaphore>,
    nodes: &[String],
    deadline: Option<tokio::time::Instant>,
    fetch: F,
) -> Collected<Vec<(String, T)>>
where
    T: Send + 'static,
    F: Fn(Arc<Dispatcher>, String) -> Fut,
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut names = std::collections::HashMap::new();
    for node in nodes {
        let work = fetch(dispatcher.clone(), node.clone());
        let limit = limit.clone();
        let task = tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = limit.acquire_owned().await;
            work.await
        });
        names.insert(task.id(), node.clone());
    }
    let mut data = Vec::with_capacity(nodes.len());
    let mut errors = Vec::new();
    let mut unreachable = Vec::new();
    loop {
        let Some(next) = before(deadline, tasks.join_next_with_id()).await else {
            // The scrape's time is up: what has not answered counts as failed.
            tasks.abort_all();
            let mut late: Vec<String> = names.drain().map(|(_, node)| node).collect();
            late.sort();
            errors.extend(late.iter().map(|node| too_late(&format!("/nodes/{node}"))));
            break;
        };
        let Some(joined) = next else {
            break;
        };
        match joined {
            Ok((id, Ok(value))) => data.push((names.remove(&id).unwrap_or_default(), value)),
            Ok((id, Err(error))) => {
                let node = names.remove(&id).unwrap_or_default();
                if error.kind.is_node_unreachable() {
                    unreachable.push(node);
                }
                errors.push(error);
            }
            Err(failed) => errors.push(ApiError {
                endpoint: "-".into(),
                path: format!("/nodes/{}", names.remove(&failed.id()).unwrap_or_default()),
                kind: crate::pve::ErrorKind::Other(format!("collector task failed: {failed}")),
            }),
        }
    }
    unreachable.sort();
    data.sort_by(|a, b| a.0.cmp(&b.0));
    Collected {
        data,
        errors,
        duration: started.elapsed(),
        unreachable,
    }
}

/// `work`'s output, or `None` when `deadline` comes first.
async fn before<F: Future>(deadline: Option<tokio::time::Instant>, work: F) -> Option<F::Output> {
    match deadline {
        None => Some(work.await),
        Some(at) => tokio::time::timeout_at(at, work).await.ok(),
    }
}

fn too_late(path: &str) -> ApiError {
    ApiError {
        endpoint: "-".into(),
        path: path.to_owned(),
        kind: crate::pve::ErrorKind::Other("no answer before the scrape's deadline".into()),
    }
}

/// The exposition formats a scraper can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// The classic Prometheus text format, version 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A snapshot with the exporter's own state at the time, ready to encode.
#[derive(Debug)]
pub struct Exposition {
    pub snapshot: Arc<Snapshot>,
    /// Requests so far, as (endpoint, status, count).
    pub requests: Vec<(String, String, u64)>,
}

impl Exposition {
    pub fn render(self, format: Format) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = match format {
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        };
        out
    }
}

impl prometheus_client::collector::Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.snapshot;
        if s.resources.succeeded() {
            let unreachable: Vec<&str> = s
                .disks
                .unreachable
                .iter()
                .chain(&s.certificates.unreachable)
                .map(String::as_str)
                .collect();
            cluster_resources::encode(&s.resources.data, &unreachable, &mut encoder)?;
        }
        node_certificates::encode(&s.certificates.data, s.taken_at, &mut encoder)?;
        node_disks::encode(&s.disks.data, &mut encoder)?;

        gauge(
            &mut encoder,
            "proxmox_up",
            "Whether the last cluster-wide API request (/cluster/resources) succeeded.",
            f64::from(u8::from(s.resources.succeeded())),
        )?;
        let outcomes = [
            (
                cluster_resources::NAME,
                s.resources.succeeded(),
                s.resources.duration,
            ),
            (node_disks::NAME, s.disks.succeeded(), s.disks.duration),
            (
                node_certificates::NAME,
                s.certificates.succeeded(),
                s.certificates.duration,
            ),
        ];
        gauge_family(
            &mut encoder,
            "proxmox_exporter_collector_success",
            "Whether every API request of a collector succeeded in the last collection.",
            outcomes
                .iter()
                .map(|(name, ok, _)| (labels([("collector", name)]), f64::from(u8::from(*ok))))
                .collect(),
        )?;
        gauge_family(
            &mut encoder,
            "proxmox_exporter_collector_duration_seconds",
            "How long a collector's API requests took in the last collection, in seconds.",
            outcomes
                .iter()
                .map(|(name, _, took)| (labels([("collector", name)]), took.as_secs_f64()))
                .collect(),
        )?;
        let mut requests = encoder.encode_descriptor(
            "proxmox_exporter_api_requests",
            "Proxmox API requests made, by endpoint and HTTP status (or transport failure).",
            None,
            MetricType::Counter,
        )?;
        for (endpoint, status, count) in &self.requests {
            let set = labels([("endpoint", endpoint), ("status", status)]);
            requests
                .encode_family(&set)?
                .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(count, None)?;
        }
        let version = labels([("version", env!("CARGO_PKG_VERSION"))]);
        gauge_family(
            &mut encoder,
            "proxmox_exporter_build_info",
            "The exporter's version; always 1.",
            vec![(version, 1.0)],
        )
    }
}

/// One sample: its label pairs and its value.
pub type Sample = (Vec<(&'static str, String)>, f64);

/// Writes one gauge family with its samples sorted by label values, so output is stable.
/// A series must not repeat: of samples with equal labels the first given is kept, so a
/// collector puts the one it prefers first.
pub fn gauge_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    mut samples: Vec<Sample>,
) -> std::fmt::Result {
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    samples.dedup_by(|later, earlier| later.0 == earlier.0);
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in &samples {
        let metric = family.encode_family(labels)?;
        encode_number(metric, *value)?;
    }
    Ok(())
}

/// Writes a gauge without labels.
pub fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> std::fmt::Result {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    encode_number(metric, value)
}

/// Whole numbers are written without a fraction (`24`, not `24.0`).
fn encode_number(
    mut metric: prometheus_client::encoding::MetricEncoder,
    value: f64,
) -> std::fmt::Result {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() == 0.0 && value.abs() < EXACT {
        metric.encode_gauge(&(value as i64))
    } else {
        metric.encode_gauge(&value)
    }
}

/// Label pairs from borrowed values.
pub fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatcher() -> Arc<Dispatcher> {
        let config = crate::pve::DispatcherConfig {
            endpoints: vec![reqwest::Url::parse("http://127.0.0.1:9/").unwrap()],
            token: crate::pve::ApiToken {
                id: "a@pve!b".into(),
                secret: "c".into(),
            },
            insecure: false,
            extra_roots: Vec::new(),
            timeout: Duration::from_secs(1),
            backoff: crate::pve::Backoff::default(),
        };
        Arc::new(Dispatcher::new(&config).unwrap())
    }

    #[tokio::test]
    async fn a_panicking_node_task_costs_that_node_only() {
        let nodes = ["a", "b", "c"].map(String::from);
        let limit = Arc::new(Semaphore::new(2));
        let collected = per_node(&dispatcher(), &limit, &nodes, None, |_, node| async move {
            if node == "b" {
                panic!("a bug in a collector");
            }
            Ok(node.len())
        })
        .await;
        let answered: Vec<&str> = collected.data.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(answered, ["a", "c"]);
        assert_eq!(collected.errors.len(), 1);
        assert_eq!(collected.errors[0].path, "/nodes/b");
        assert!(
            collected.errors[0]
                .to_string()
                .contains("collector task failed")
        );
    }

    #[tokio::test]
    async fn nodes_still_out_at_the_deadline_are_reported_late() {
        let nodes = ["fast", "slow"].map(String::from);
        let limit = Arc::new(Semaphore::new(4));
        let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
        let collected = per_node(
            &dispatcher(),
            &limit,
            &nodes,
            Some(deadline),
            |_, node| async move {
                if node == "slow" {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Ok(())
            },
        )
        .await;
        assert_eq!(collected.data.len(), 1);
        assert_eq!(collected.errors[0].path, "/nodes/slow");
        assert!(collected.errors[0].to_string().contains("deadline"));
    }
}
