//! Sweeps: the collectors that ask once per guest or per storage (`snapshots`, `backup`'s
//! storage contents, `guest_filesystems`) keep each target's last answer and ask each target
//! once per refresh, spread over it, instead of everything at once when the refresh is over.
//!
//! - **The first sweep** asks every target, and the collection waits for it (up to the
//!   scrape's deadline), so the first scrape shows everything. Each answer is then due again
//!   at its own moment within the next refresh: a node's targets are spread evenly over it.
//! - **After that**, each collection starts the targets that are due and does not wait for
//!   them: a scrape shows the answers kept so far, and what arrives meanwhile shows in the
//!   next one. A new target (a guest just created or migrated) is due at once.
//! - **Per node**, at most a given number of requests of all sweeps are under way at once
//!   (`--max-guest-requests-per-node`, 1 by default): each holds one of the node's three
//!   pveproxy workers, so the sweeps never take more than a third of them. Over the cluster,
//!   they take at most a third of the connections the endpoints are given ([`SHARE`]).
//! - **A target with nothing to say** ([`Reply::Silent`]: a VM without an answering guest
//!   agent) is asked again after a growing backoff: twice the refresh, then four times, up to
//!   an hour. **A failed request** is asked again in the next window, then after a growing
//!   backoff up to the refresh; its error is logged when it comes and counts against the
//!   collector until the target answers.
//! - Should the refresh be no longer than the cache window, every collection asks every
//!   target and waits for them, as the other collectors do.
//! - **Without an inventory** (`/cluster/resources` failed) nothing is asked and nothing is
//!   forgotten: the collection shows no answers, and the next one goes on from the kept ones.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::collection::{Target, before};
use super::{Collected, Context, Enabled};
use crate::lock;
use crate::pve::{ApiError, Dispatcher, ErrorKind};

/// What a target answered.
#[derive(Debug)]
pub enum Reply<T> {
    /// Something to report.
    Got(T),
    /// Nothing to report, and nothing wrong: ask again after a growing backoff.
    Silent,
}

/// The sweeps take at most one in this many of the dispatcher's connections (32 of the 96 that
/// three endpoints have by default): their requests come in a burst at each collection's start,
/// and the collection's own requests must not queue behind them.
pub const SHARE: usize = 3;

/// Sweep requests under way at once when the endpoints' connections are not limited.
const UNLIMITED_SHARE: usize = 64;

/// The longest a silent target waits before it is asked again (unless the refresh is longer).
pub const LONGEST_BACKOFF: Duration = Duration::from_secs(3600);

/// The sweeps of one cluster: each sweeping collector's targets and answers, and the turns
/// that bound their requests per node.
pub struct Sweeps {
    window: Duration,
    per_node: usize,
    /// Each enabled collector's refresh.
    refresh: HashMap<&'static str, Duration>,
    /// Each node's turns, shared by every sweep.
    turns: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Each sweep's state, by collector name (typed by the collector's target and answer).
    states: Mutex<HashMap<&'static str, Arc<dyn std::any::Any + Send + Sync>>>,
    /// Sweep requests under way over the whole cluster: a third of the dispatcher's
    /// connections, so that the other collectors' requests find the rest free.
    share: std::sync::OnceLock<Arc<Semaphore>>,
}

impl Sweeps {
    pub fn new(enabled: &[Enabled], window: Duration, per_node: usize) -> Self {
        Sweeps {
            window,
            per_node: per_node.max(1),
            refresh: enabled
                .iter()
                .map(|e| (e.collector.name(), e.refresh.unwrap_or(Duration::ZERO)))
                .collect(),
            turns: Mutex::default(),
            states: Mutex::default(),
            share: std::sync::OnceLock::new(),
        }
    }

    /// The permits of sweep requests under way over the whole cluster (see [`SHARE`]).
    fn share(&self, dispatcher: &Dispatcher) -> Arc<Semaphore> {
        self.share
            .get_or_init(|| {
                let permits = dispatcher
                    .capacity()
                    .map_or(UNLIMITED_SHARE, |all| (all / SHARE).max(2));
                Arc::new(Semaphore::new(permits))
            })
            .clone()
    }

    fn turn(&self, node: &str) -> Arc<Semaphore> {
        lock(&self.turns)
            .entry(node.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_node)))
            .clone()
    }

    fn state<T: ?Sized + Send + Sync + 'static>(&self, name: &'static str) -> Shared<T> {
        let mut states = lock(&self.states);
        if let Some(state) = states.get(name)
            && let Ok(state) = state.clone().downcast::<Mutex<State<T>>>()
        {
            return state;
        }
        let state: Shared<T> = Arc::new(Mutex::new(State {
            entries: HashMap::new(),
            started: false,
            epoch: Instant::now(),
        }));
        states.insert(name, state.clone());
        state
    }
}

type Shared<T> = Arc<Mutex<State<T>>>;

/// A sweep's answers and timing. 32 bytes a target and its key: at 50,000 guests the table
/// is a few MB. The targets themselves are not kept: each collection gives them.
struct State<T: ?Sized> {
    /// By a hash of the target's path ([`key`]): 8 bytes a target instead of its path.
    entries: HashMap<u64, Entry<T>>,
    /// The first sweep has been started.
    started: bool,
    /// What [`Entry::next`] counts from.
    epoch: Instant,
}

struct Entry<T: ?Sized> {
    answer: Option<Arc<T>>,
    /// The last request's error, and whether it has been reported (logged) yet; boxed, as
    /// most targets have none.
    error: Option<Box<(ApiError, bool)>>,
    /// When it is due again, in tenths of a second after the state's epoch ([`Tenths`]).
    next: u32,
    /// In the first sweep: when it is due again after its answer, as a share of the
    /// refresh (NaN: not in the first sweep).
    phase: f32,
    /// Silent answers in a row (up to 255).
    silent: u8,
    /// Failed requests in a row (up to 255).
    failures: u8,
    in_flight: bool,
}

/// Instants as tenths of a second after an epoch, 4 bytes instead of 16 (13 years' worth).
trait Tenths {
    fn tenths(&self, at: Instant) -> u32;
}

impl Tenths for Instant {
    fn tenths(&self, at: Instant) -> u32 {
        let tenths = at.saturating_duration_since(*self).as_millis() / 100;
        u32::try_from(tenths).unwrap_or(u32::MAX)
    }
}

/// A target's key: a hash of its path.
fn key(path: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    hasher.finish()
}

/// The wait after `n` silent answers in a row: twice the refresh, then four times, … up to
/// [`LONGEST_BACKOFF`] (or the refresh, if that is longer).
pub fn silent_backoff(refresh: Duration, n: u32) -> Duration {
    let grown = refresh.saturating_mul(1 << n.min(16));
    grown.min(LONGEST_BACKOFF.max(refresh))
}

/// The wait after `n` failed requests in a row: the window, then twice that, … up to the
/// refresh.
fn failure_backoff(window: Duration, refresh: Duration, n: u32) -> Duration {
    let grown = window.saturating_mul(1 << n.saturating_sub(1).min(16));
    grown.min(refresh)
}

/// Asks `fetch` of the due `targets` (see the module's text) and gives every target's kept
/// answer, in the order of `targets`. `name` is the collector's: its refresh and state.
pub async fn sweep<K, T, F, Fut>(
    ctx: &Context,
    name: &'static str,
    targets: Vec<K>,
    fetch: F,
) -> Collected<Vec<(K, Arc<T>)>>
where
    K: Target,
    T: ?Sized + Send + Sync + 'static,
    F: Fn(Arc<Dispatcher>, K) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply<Arc<T>>, ApiError>> + Send + 'static,
{
    let started = Instant::now();
    if !ctx.inventory.succeeded() {
        // The targets come from the inventory: without one they are unknown, not gone. The
        // kept answers wait for the next inventory instead of being dropped (and all asked
        // again at once when it comes).
        return Collected::given(Vec::new());
    }
    let sweeps = &ctx.sweeps;
    let refresh = sweeps.refresh.get(name).copied().unwrap_or_default();
    let every_time = refresh <= sweeps.window;
    let state = sweeps.state::<T>(name);
    let order: Vec<u64> = targets.iter().map(|t| key(&t.path())).collect();
    let (due, wait) = {
        let mut st = lock(&state);
        let first = !st.started;
        st.started = true;
        let now = st.epoch.tenths(Instant::now());
        let refresh_tenths = st.epoch.tenths(st.epoch + refresh);
        for key in &order {
            st.entries.entry(*key).or_insert(Entry {
                answer: None,
                error: None,
                next: now,
                phase: f32::NAN,
                silent: 0,
                failures: 0,
                in_flight: false,
            });
        }
        let current: HashSet<&u64> = order.iter().collect();
        st.entries.retain(|key, _| current.contains(key));
        st.entries.shrink_to_fit();
        // The due targets by node, each node's in the order given.
        let mut due: BTreeMap<String, VecDeque<(u64, K)>> = BTreeMap::new();
        for (target, key) in targets.iter().zip(&order) {
            let Some(entry) = st.entries.get_mut(key) else {
                continue;
            };
            if entry.in_flight || entry.next > now {
                continue;
            }
            entry.in_flight = true;
            due.entry(target.node().to_owned())
                .or_default()
                .push_back((*key, target.clone()));
        }
        // When each is due again if it answers: one refresh on; in the first sweep, a node's
        // targets spread evenly over the next refresh.
        for keys in due.values() {
            for (position, (key, _)) in keys.iter().enumerate() {
                let Some(entry) = st.entries.get_mut(key) else {
                    continue;
                };
                entry.next = if first && !every_time {
                    // Counted from its answer (a first sweep of thousands of targets takes
                    // a while): a share of the refresh, the node's targets evenly apart.
                    entry.phase = (position + 1) as f32 / keys.len() as f32;
                    now.saturating_add(refresh_tenths)
                } else {
                    let kept_phase = entry.next.saturating_add(refresh_tenths);
                    if kept_phase > now {
                        kept_phase
                    } else {
                        now.saturating_add(refresh_tenths)
                    }
                };
            }
        }
        (due, first || every_time)
    };

    let fetch = Arc::new(fetch);
    let share = sweeps.share(&ctx.dispatcher);
    let mut workers = Vec::new();
    for (node, keys) in due {
        let turn = (sweeps.turn(&node), share.clone());
        let workers_here = sweeps.per_node.min(keys.len());
        let queue = Arc::new(Mutex::new(keys));
        for _ in 0..workers_here {
            workers.push(tokio::spawn(work(
                queue.clone(),
                turn.clone(),
                state.clone(),
                ctx.dispatcher.clone(),
                fetch.clone(),
                (sweeps.window, refresh),
            )));
        }
    }
    if wait {
        // What has not answered by the deadline goes on in the background and shows later.
        before(ctx.deadline, async {
            for worker in workers {
                let _ = worker.await;
            }
        })
        .await;
    }

    let mut st = lock(&state);
    // Made to its size: grown by doubling, then shrunk, it held up to three times as much.
    let answered = (order.iter())
        .filter(|key| st.entries.get(key).is_some_and(|e| e.answer.is_some()))
        .count();
    let mut data = Vec::with_capacity(answered);
    let mut errors = Vec::new();
    let mut known = Vec::new();
    let mut unreachable = Vec::new();
    for (target, key) in targets.into_iter().zip(&order) {
        let Some(entry) = st.entries.get_mut(key) else {
            continue;
        };
        if let Some((error, reported)) = entry.error.as_deref_mut() {
            if error.kind.is_node_unreachable() {
                unreachable.push(target.node().to_owned());
            }
            if *reported {
                known.push(error.clone());
            } else {
                *reported = true;
                errors.push(error.clone());
            }
        }
        if let Some(answer) = &entry.answer {
            data.push((target, answer.clone()));
        }
    }
    unreachable.sort();
    unreachable.dedup();
    Collected {
        data,
        errors,
        known,
        duration: started.elapsed(),
        unreachable,
    }
}

/// One worker of a node: asks the node's due targets one after another, each in its turn.
async fn work<K, T, F, Fut>(
    queue: Arc<Mutex<VecDeque<(u64, K)>>>,
    (turn, share): (Arc<Semaphore>, Arc<Semaphore>),
    state: Shared<T>,
    dispatcher: Arc<Dispatcher>,
    fetch: Arc<F>,
    (window, refresh): (Duration, Duration),
) where
    K: Target,
    T: ?Sized + Send + Sync + 'static,
    F: Fn(Arc<Dispatcher>, K) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply<Arc<T>>, ApiError>> + Send + 'static,
{
    loop {
        let next = {
            let mut queue = lock(&queue);
            let next = queue.pop_front();
            // A first sweep queues every target of the node for minutes: what was asked is
            // let go as it goes (a quarter left, the rest handed back), not when it ends.
            if queue.capacity() > 16 && queue.len() < queue.capacity() / 4 {
                queue.shrink_to_fit();
            }
            next
        };
        let Some((key, target)) = next else {
            return;
        };
        // Gone from the inventory meanwhile: nothing to ask.
        if !lock(&state).entries.contains_key(&key) {
            continue;
        }
        // The node's turn first, then a share of the connections: a node waiting for its turn
        // holds none. The semaphores are never closed, so acquiring only waits.
        let _turn = turn.clone().acquire_owned().await;
        let _share = share.clone().acquire_owned().await;
        // In a task of its own: a panic costs this target's answer, not the node's sweep.
        let outcome = tokio::spawn(fetch(dispatcher.clone(), target.clone())).await;
        let mut st = lock(&state);
        let epoch = st.epoch;
        let at = |wait: Duration| epoch.tenths(Instant::now() + wait);
        let Some(entry) = st.entries.get_mut(&key) else {
            continue;
        };
        entry.in_flight = false;
        let phase = std::mem::replace(&mut entry.phase, f32::NAN);
        let failed = match outcome {
            Ok(Ok(Reply::Got(answer))) => {
                if !phase.is_nan() {
                    entry.next = at(refresh.mul_f64(f64::from(phase)));
                }
                entry.answer = Some(answer);
                entry.error = None;
                entry.silent = 0;
                entry.failures = 0;
                continue;
            }
            Ok(Ok(Reply::Silent)) => {
                entry.answer = None;
                entry.error = None;
                entry.failures = 0;
                entry.silent = entry.silent.saturating_add(1);
                entry.next = at(silent_backoff(refresh, u32::from(entry.silent)));
                continue;
            }
            Ok(Err(error)) => error,
            Err(panicked) => ApiError {
                endpoint: "-".into(),
                path: target.path(),
                kind: ErrorKind::Other(format!("collector task failed: {panicked}")),
            },
        };
        entry.answer = None;
        entry.failures = entry.failures.saturating_add(1);
        entry.error = Some(Box::new((failed, false)));
        entry.next = at(failure_backoff(window, refresh, u32::from(entry.failures)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoffs_grow_and_stop_growing() {
        let five = Duration::from_secs(300);
        let silent: Vec<u64> = (1..=5).map(|n| silent_backoff(five, n).as_secs()).collect();
        assert_eq!(silent, [600, 1200, 2400, 3600, 3600]);
        // A refresh longer than the longest backoff is kept.
        assert_eq!(silent_backoff(Duration::from_secs(7200), 3).as_secs(), 7200);
        let window = Duration::from_secs(30);
        let failed: Vec<u64> = (1..=5)
            .map(|n| failure_backoff(window, five, n).as_secs())
            .collect();
        assert_eq!(failed, [30, 60, 120, 240, 300]);
    }
}
