//! A collection's run: the inventory first, then every enabled collector whose answers are
//! not fresh any more, all at once, within the scrape's deadline and one limit on requests
//! under way. Collectors fan their requests out through [`Context`]; [`Collectors`] keeps
//! each collector's last answers and makes the [`Snapshot`] the exporter encodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;

use super::{
    Collected, Collector, Cost, Enabled, Families, Inventory, Nothing, Sweeps, cluster,
    cluster_resources, node_disks, registry_position,
};
use crate::lock;
use crate::pve::{ApiError, Dispatcher};

/// What a collector's fetch may use.
pub struct Context {
    pub dispatcher: Arc<Dispatcher>,
    /// Bounds the requests under way across all collectors of a collection.
    pub limit: Arc<Semaphore>,
    /// The limit's size: no fan-out starts more tasks than this at once.
    pub in_flight: usize,
    pub inventory: Arc<Inventory>,
    pub deadline: Option<tokio::time::Instant>,
    /// `/cluster/status`, asked once per collection by whichever collector needs it first.
    pub cluster_status: Arc<tokio::sync::OnceCell<Result<Arc<Vec<cluster::Entry>>, ApiError>>>,
    /// The sweeps' kept answers and per-node turns (see [`super::sweep`]).
    pub sweeps: Arc<Sweeps>,
    /// Each node's `disks/list`, asked once per collection for `node_disks`, `disks` and `smart`.
    pub disk_lists: Arc<OncePerNode<Vec<node_disks::Disk>>>,
}

/// A per-node answer that several collectors read, asked at most once per collection by
/// whichever asks first; the others wait for it.
pub struct OncePerNode<T> {
    cells: Mutex<HashMap<String, Arc<AnswerCell<T>>>>,
}

type AnswerCell<T> = tokio::sync::OnceCell<Result<Arc<T>, ApiError>>;

impl<T> Default for OncePerNode<T> {
    fn default() -> Self {
        OncePerNode {
            cells: Mutex::default(),
        }
    }
}

impl<T> OncePerNode<T> {
    /// `node`'s answer: `fetch`ed now if no collector asked for it yet in this collection.
    pub async fn get<F, Fut>(&self, node: &str, fetch: F) -> Result<Arc<T>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let cell = lock(&self.cells)
            .entry(node.to_owned())
            .or_default()
            .clone();
        cell.get_or_init(|| async { fetch().await.map(Arc::new) })
            .await
            .clone()
    }
}

impl Context {
    /// `/cluster/status`: asked at most once per collection, shared by the collectors.
    pub async fn cluster_status(&self) -> Result<Arc<Vec<cluster::Entry>>, ApiError> {
        self.cluster_status
            .get_or_init(|| async {
                self.dispatcher
                    .call(cluster::PATH, |c| async move {
                        c.get_cluster_status().send().await
                    })
                    .await
                    .map(|answer| Arc::new(answer.data))
            })
            .await
            .clone()
    }

    /// The nodes listed online: the ones worth asking for their own details.
    pub fn online_nodes(&self) -> Vec<String> {
        cluster_resources::online_nodes(&self.inventory.data)
    }

    /// [`fan_out`] with this context's dispatcher, limit and deadline.
    pub async fn fan_out<K, T, F, Fut>(&self, targets: Vec<K>, fetch: F) -> Collected<Vec<(K, T)>>
    where
        K: Target,
        T: Send + 'static,
        F: Fn(Arc<Dispatcher>, K) -> Fut,
        Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let limit = (&self.limit, self.in_flight);
        fan_out(&self.dispatcher, limit, targets, self.deadline, fetch).await
    }
}

/// Answers by node name.
pub type PerNode<T> = Vec<(String, T)>;

/// Asks `fetch` of every online node at once and keeps the answers as `families`.
pub async fn each_online_node<T, F, Fut>(
    ctx: &Context,
    fetch: F,
    families: fn(PerNode<T>) -> Box<dyn Families>,
) -> Collected<Box<dyn Families>>
where
    T: Send + 'static,
    F: Fn(Arc<Dispatcher>, String) -> Fut,
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
{
    ctx.fan_out(ctx.online_nodes(), fetch).await.map(families)
}

/// One cluster-wide request, its answer kept as `families` (nothing when it failed).
pub async fn cluster_wide<T, F, Fut>(
    ctx: &Context,
    path: &str,
    op: F,
    families: fn(T) -> Box<dyn Families>,
) -> Collected<Box<dyn Families>>
where
    F: Fn(Arc<crate::pve::client::Client>) -> Fut,
    Fut: Future<Output = Result<progenitor_client::ResponseValue<T>, progenitor_client::Error<()>>>,
{
    cluster_wide_unless(ctx, path, op, families, |_| false).await
}

/// [`cluster_wide`], where an error for which `absent` holds means there is nothing to report
/// (Ceph not installed): no families, and no failure.
pub async fn cluster_wide_unless<T, F, Fut>(
    ctx: &Context,
    path: &str,
    op: F,
    families: fn(T) -> Box<dyn Families>,
    absent: fn(&crate::pve::ErrorKind) -> bool,
) -> Collected<Box<dyn Families>>
where
    F: Fn(Arc<crate::pve::client::Client>) -> Fut,
    Fut: Future<Output = Result<progenitor_client::ResponseValue<T>, progenitor_client::Error<()>>>,
{
    let started = Instant::now();
    let (data, errors) = match ctx.dispatcher.call(path, op).await {
        Ok(answer) => (families(answer), Vec::new()),
        Err(error) if absent(&error.kind) => (Box::new(Nothing) as Box<dyn Families>, Vec::new()),
        Err(error) => (Box::new(Nothing) as Box<dyn Families>, vec![error]),
    };
    Collected {
        data,
        errors,
        known: Vec::new(),
        duration: started.elapsed(),
        unreachable: Vec::new(),
    }
}

/// A collector's answers as last fetched.
#[derive(Debug)]
pub struct Kept {
    pub collected: Collected<Box<dyn Families>>,
    pub fetched_at: Instant,
}

/// One enabled collector's part of a snapshot.
#[derive(Debug)]
pub struct Outcome {
    pub name: &'static str,
    pub kept: Arc<Kept>,
    /// Fetched in this collection (not reused from an earlier one).
    pub fresh: bool,
    /// When its answers were last fetched without error, shown for collectors whose answers
    /// outlive one cache window.
    pub last_success: Option<SystemTime>,
    pub outlives_window: bool,
}

impl Outcome {
    /// A collector's answers fetched just now.
    pub fn fresh(name: &'static str, collected: Collected<Box<dyn Families>>) -> Outcome {
        Outcome {
            name,
            kept: Arc::new(Kept {
                collected,
                fetched_at: Instant::now(),
            }),
            fresh: true,
            last_success: None,
            outlives_window: false,
        }
    }
}

/// Everything one collection has to show.
#[derive(Debug)]
pub struct Snapshot {
    /// When the collection started; certificate days and snapshot ages count from here.
    pub taken_at: SystemTime,
    pub inventory: Arc<Inventory>,
    /// Whether the inventory was asked for (see [`Collectors::without_inventory`]).
    pub inventory_asked: bool,
    /// The enabled collectors' parts, in registry order.
    pub outcomes: Vec<Outcome>,
}

/// The enabled collectors and what they fetched last.
#[allow(clippy::type_complexity)]
pub struct Collectors {
    enabled: Vec<Enabled>,
    window: Duration,
    max_concurrent: usize,
    /// When each collector's answers last came without error, and its answers as last
    /// fetched if they are reused in later windows (the others' are not held on to while the
    /// next collection fetches theirs anew).
    kept: Mutex<HashMap<&'static str, (Option<Arc<Kept>>, Option<SystemTime>)>>,
    /// Ask `/cluster/resources` first (all collectors but some of `/pve`'s need it).
    inventory: bool,
    /// The node rows of the last inventory that came without error: the per-node collectors
    /// start on them while the next inventory is on its way.
    last_nodes: Mutex<Option<Arc<Inventory>>>,
    /// The sweeping collectors' kept answers (see [`super::sweep`]).
    sweeps: Arc<Sweeps>,
}

impl Collectors {
    /// `enabled` in any order (they run and are written in registry order); `window`: the
    /// cache duration; `max_concurrent`: API requests under way at once.
    pub fn new(mut enabled: Vec<Enabled>, window: Duration, max_concurrent: usize) -> Self {
        // Collectors outside the registry (`/pve`'s parts) keep the order given.
        enabled.sort_by_key(|e| registry_position(e.collector).unwrap_or(usize::MAX));
        enabled.dedup_by_key(|e| e.collector.name());
        Collectors {
            sweeps: Arc::new(Sweeps::new(&enabled, window, 1)),
            enabled,
            window,
            max_concurrent: max_concurrent.max(1),
            kept: Mutex::new(HashMap::new()),
            inventory: true,
            last_nodes: Mutex::new(None),
        }
    }

    /// Collects without asking `/cluster/resources`: for collectors that never read it.
    pub fn without_inventory(mut self) -> Self {
        self.inventory = false;
        self
    }

    /// Lets the sweeps have `per_node` requests under way on one node at once (1 without).
    pub fn with_requests_per_node(mut self, per_node: usize) -> Self {
        self.sweeps = Arc::new(Sweeps::new(&self.enabled, self.window, per_node));
        self
    }

    pub fn enabled(&self) -> &[Enabled] {
        &self.enabled
    }

    /// Whether `e`'s answers are reused across windows.
    fn outlives_window(&self, e: &Enabled) -> bool {
        e.refresh.is_some_and(|every| every > self.window)
    }

    /// Fetches a snapshot: the inventory first, then every enabled collector whose answers
    /// are not fresh any more, all at once. `taken_at` is the snapshot's "now". What has not
    /// answered by `deadline` is given up and reported as failed.
    pub async fn collect(
        &self,
        dispatcher: &Arc<Dispatcher>,
        taken_at: SystemTime,
        deadline: Option<tokio::time::Instant>,
    ) -> Snapshot {
        let started = Instant::now();
        // Shared by every context of this collection: the limit on requests under way, and
        // `/cluster/status` and each node's `disks/list` asked once.
        let limit = Arc::new(Semaphore::new(self.max_concurrent));
        let cluster_status = Arc::new(tokio::sync::OnceCell::new());
        let disk_lists = Arc::new(OncePerNode::default());
        let context = |inventory: Arc<Inventory>| {
            Arc::new(Context {
                dispatcher: dispatcher.clone(),
                limit: limit.clone(),
                in_flight: self.max_concurrent,
                inventory,
                deadline,
                cluster_status: cluster_status.clone(),
                sweeps: self.sweeps.clone(),
                disk_lists: disk_lists.clone(),
            })
        };

        // The collectors to ask this window; the others' answers are still fresh.
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(self.enabled.len());
        let mut to_fetch = Vec::new();
        for (index, e) in self.enabled.iter().enumerate() {
            let name = e.collector.name();
            let outlives_window = self.outlives_window(e);
            let previous = lock(&self.kept).get(name).cloned();
            // A sweep is asked in every collection: it asks only the targets due.
            if let (Some(every), Some((Some(kept), last_success))) = (e.refresh, &previous)
                && outlives_window
                && !e.collector.cost().sweeps()
                && kept.collected.succeeded()
                && kept.fetched_at.elapsed() < every
            {
                outcomes.push(Some(Outcome {
                    name,
                    kept: kept.clone(),
                    fresh: false,
                    last_success: *last_success,
                    outlives_window,
                }));
                continue;
            }
            outcomes.push(None);
            to_fetch.push((index, e.collector));
        }

        // The per-node collectors need nothing of the inventory but its online nodes: they
        // start at once on the last collection's nodes, while `/cluster/resources` comes
        // (100 ms at 50,000 guests). Should the nodes have changed, they are stopped and
        // asked again on the new ones.
        let per_node = |c: &&'static dyn Collector| {
            c.cost() == Cost::PerNode && registry_position(*c).is_some()
        };
        let last_nodes = if self.inventory {
            lock(&self.last_nodes).clone()
        } else {
            None
        };
        let mut early = tokio::task::JoinSet::new();
        if let Some(last) = &last_nodes {
            let ctx = context(last.clone());
            for (index, collector) in to_fetch.iter().filter(|(_, c)| per_node(c)) {
                spawn_fetch(&mut early, *index, *collector, ctx.clone());
            }
        }

        let inventory = if !self.inventory {
            Collected::given(cluster_resources::Rows::default())
        } else {
            before(deadline, cluster_resources::fetch(dispatcher))
                .await
                .unwrap_or_else(|| {
                    let late = too_late(cluster_resources::PATH);
                    Collected::failed(cluster_resources::Rows::default(), late, started.elapsed())
                })
        };
        log(&inventory.errors);
        let ctx = context(Arc::new(inventory));
        let nodes_kept = match &last_nodes {
            Some(last) => {
                let same = ctx.online_nodes() == cluster_resources::online_nodes(&last.data);
                if !same {
                    // Their answers would be the wrong nodes'.
                    early.shutdown().await;
                }
                same
            }
            None => false,
        };
        // After a failed inventory the next collection waits for its own: a cluster whose
        // `/cluster/resources` keeps failing is not asked per node for nothing every window.
        if self.inventory {
            let nodes = ctx.inventory.succeeded().then(|| {
                let rows = ctx.inventory.data.iter();
                let nodes = rows.filter(|r| cluster_resources::kind(r) == "node");
                Arc::new(Collected::given(nodes.cloned().collect()))
            });
            *lock(&self.last_nodes) = nodes;
        }

        let mut tasks = tokio::task::JoinSet::new();
        for (index, collector) in to_fetch {
            if !(nodes_kept && per_node(&collector)) {
                spawn_fetch(&mut tasks, index, collector, ctx.clone());
            }
        }
        let mut fetched: HashMap<usize, Collected<Box<dyn Families>>> = HashMap::new();
        for set in [&mut early, &mut tasks] {
            while let Some(joined) = set.join_next().await {
                // A collector task that panicked shows as that collector missing below.
                if let Ok((index, collected)) = joined {
                    fetched.insert(index, collected);
                }
            }
        }
        let mut done = Vec::with_capacity(outcomes.len());
        for (index, (slot, e)) in outcomes.into_iter().zip(&self.enabled).enumerate() {
            if let Some(reused) = slot {
                done.push(reused);
                continue;
            }
            let name = e.collector.name();
            let collected = fetched.remove(&index).unwrap_or_else(|| {
                let failed = ApiError {
                    endpoint: "-".into(),
                    path: format!("(collector {name})"),
                    kind: crate::pve::ErrorKind::Other("collector task failed".into()),
                };
                Collected::failed(Box::new(Nothing), failed, Duration::ZERO)
            });
            // The inventory's own errors were logged above.
            log(collected
                .errors
                .iter()
                .filter(|e| e.path != cluster_resources::PATH));
            let succeeded = collected.succeeded();
            let kept = Arc::new(Kept {
                collected,
                fetched_at: Instant::now(),
            });
            let mut all = lock(&self.kept);
            let last_success = if succeeded {
                Some(taken_at)
            } else {
                all.get(name).and_then(|(_, at)| *at)
            };
            let outlives_window = self.outlives_window(e);
            let reusable = outlives_window.then(|| kept.clone());
            all.insert(name, (reusable, last_success));
            done.push(Outcome {
                name,
                kept,
                fresh: true,
                last_success,
                outlives_window,
            });
        }
        Snapshot {
            taken_at,
            inventory: ctx.inventory.clone(),
            inventory_asked: self.inventory,
            outcomes: done,
        }
    }
}

/// Runs `collector`'s fetch on `ctx` in its own task, given up at the context's deadline.
fn spawn_fetch(
    tasks: &mut tokio::task::JoinSet<(usize, Collected<Box<dyn Families>>)>,
    index: usize,
    collector: &'static dyn Collector,
    ctx: Arc<Context>,
) {
    tasks.spawn(async move {
        let started = Instant::now();
        let collected = before(ctx.deadline, collector.fetch(&ctx))
            .await
            .unwrap_or_else(|| {
                let late = too_late(&format!("(collector {})", collector.name()));
                Collected::failed(Box::new(Nothing), late, started.elapsed())
            });
        (index, collected)
    });
}

fn log<'a>(errors: impl IntoIterator<Item = &'a ApiError>) {
    for error in errors {
        tracing::warn!(endpoint = %error.endpoint, path = %error.path, error = %error.kind, "API request failed");
    }
}

/// What a fan-out request is about: a node, or a guest on a node.
pub trait Target: Clone + Send + Sync + 'static {
    /// The node whose API answers for it.
    fn node(&self) -> &str;
    /// The API path below which it is asked, for errors.
    fn path(&self) -> String;
}

impl Target for String {
    fn node(&self) -> &str {
        self
    }
    fn path(&self) -> String {
        format!("/nodes/{self}")
    }
}

/// Runs `fetch` for every target in its own task, at most `limit` at a time. A task that
/// panics costs that target's answer, reported as an error, not the process.
pub async fn fan_out<K, T, F, Fut>(
    dispatcher: &Arc<Dispatcher>,
    (limit, in_flight): (&Arc<Semaphore>, usize),
    targets: Vec<K>,
    deadline: Option<tokio::time::Instant>,
    fetch: F,
) -> Collected<Vec<(K, T)>>
where
    K: Target,
    T: Send + 'static,
    F: Fn(Arc<Dispatcher>, K) -> Fut,
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
{
    let started = Instant::now();
    // Tasks are started as earlier ones finish, never more at once than the limit allows in
    // all (`in_flight`): a sweep over thousands of guests holds a bounded number of requests
    // in memory.
    let in_flight = in_flight.max(1);
    let mut waiting = targets.into_iter().enumerate().peekable();
    let mut tasks = tokio::task::JoinSet::new();
    let mut pending: HashMap<tokio::task::Id, (usize, K)> = HashMap::new();
    let mut data = Vec::new();
    let mut errors = Vec::new();
    let mut unreachable = Vec::new();
    /// What the loop waits for: a permit to start the next target, or a target's answer.
    enum Event<P, J> {
        Permit(P),
        Joined(J),
    }
    loop {
        // A task is made only once it may run: every collector of a collection shares the
        // limit, and a task waiting for its turn would hold its whole request (kilobytes)
        // for nothing, thousands of them at 50,000 guests.
        let start = waiting.peek().is_some() && tasks.len() < in_flight;
        let event = before(deadline, async {
            tokio::select! {
                // The semaphore is never closed, so acquiring only waits.
                Ok(permit) = limit.clone().acquire_owned(), if start => Event::Permit(permit),
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    Event::Joined(Some(joined))
                }
                // Nothing to start and nothing under way: every target answered.
                else => Event::Joined(None),
            }
        })
        .await;
        let next = match event {
            Some(Event::Permit(permit)) => {
                if let Some((position, target)) = waiting.next() {
                    let work = fetch(dispatcher.clone(), target.clone());
                    let task = tasks.spawn(async move {
                        let _permit = permit;
                        work.await
                    });
                    pending.insert(task.id(), (position, target));
                }
                continue;
            }
            Some(Event::Joined(joined)) => Some(joined),
            None => None,
        };
        let Some(next) = next else {
            // The scrape's time is up: what has not answered, or not started, counts as failed.
            tasks.abort_all();
            let mut late: Vec<(usize, K)> = pending.drain().map(|(_, late)| late).collect();
            late.extend(waiting.by_ref());
            late.sort_by_key(|(position, _)| *position);
            errors.extend(late.iter().map(|(_, target)| too_late(&target.path())));
            break;
        };
        let Some(joined) = next else {
            break; // every target answered
        };
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(failed) => failed.id(),
        };
        let Some((position, target)) = pending.remove(&id) else {
            continue;
        };
        match joined {
            Ok((_, Ok(value))) => data.push((position, target, value)),
            Ok((_, Err(error))) => {
                if error.kind.is_node_unreachable() {
                    unreachable.push(target.node().to_owned());
                }
                errors.push(error);
            }
            Err(failed) => errors.push(ApiError {
                endpoint: "-".into(),
                path: target.path(),
                kind: crate::pve::ErrorKind::Other(format!("collector task failed: {failed}")),
            }),
        }
    }
    unreachable.sort();
    unreachable.dedup();
    data.sort_by_key(|(position, _, _)| *position);
    Collected {
        data: data.into_iter().map(|(_, k, v)| (k, v)).collect(),
        errors,
        known: Vec::new(),
        duration: started.elapsed(),
        unreachable,
    }
}

/// `work`'s output, or `None` when `deadline` comes first.
pub(crate) async fn before<F: Future>(
    deadline: Option<tokio::time::Instant>,
    work: F,
) -> Option<F::Output> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatcher() -> Arc<Dispatcher> {
        let config = crate::pve::DispatcherConfig {
            endpoints: vec![reqwest::Url::parse("http://127.0.0.1:9/").unwrap()],
            credentials: crate::pve::ApiToken {
                id: "a@pve!b".into(),
                secret: "c".into(),
            }
            .into(),
            product: Default::default(),
            insecure: false,
            extra_roots: Vec::new(),
            timeout: Duration::from_secs(1),
            backoff: crate::pve::Backoff::default(),
            max_connections_per_endpoint: None,
            gzip: false,
            secret_file: None,
        };
        Arc::new(Dispatcher::new(&config).unwrap())
    }

    #[tokio::test]
    async fn a_panicking_node_task_costs_that_node_only() {
        let nodes = ["a", "b", "c"].map(String::from);
        let limit = Arc::new(Semaphore::new(2));
        let collected = fan_out(
            &dispatcher(),
            (&limit, 4),
            nodes.to_vec(),
            None,
            |_, node| async move {
                if node == "b" {
                    panic!("a bug in a collector");
                }
                Ok(node.len())
            },
        )
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
        let collected = fan_out(
            &dispatcher(),
            (&limit, 4),
            nodes.to_vec(),
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

    #[tokio::test]
    async fn a_fan_out_holds_no_more_requests_than_the_limit() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let alive = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let targets: Vec<String> = (0..50).map(|i| format!("n{i}")).collect();
        let limit = Arc::new(Semaphore::new(3));
        let collected = fan_out(&dispatcher(), (&limit, 3), targets, None, |_, node| {
            // Counted from the moment the request exists, not from when it runs.
            let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let alive = alive.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                alive.fetch_sub(1, Ordering::SeqCst);
                Ok(node)
            }
        })
        .await;
        assert_eq!(collected.data.len(), 50);
        assert!(collected.data.iter().all(|(k, v)| k == v));
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn targets_not_started_by_the_deadline_are_reported_late_too() {
        let targets: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        let limit = Arc::new(Semaphore::new(2));
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        let collected = fan_out(
            &dispatcher(),
            (&limit, 2),
            targets,
            Some(deadline),
            |_, _| async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            },
        )
        .await;
        assert!(collected.data.is_empty());
        let late: Vec<&str> = collected.errors.iter().map(|e| e.path.as_str()).collect();
        let expected: Vec<String> = (0..10).map(|i| format!("/nodes/n{i}")).collect();
        assert_eq!(late, expected);
    }
}
