//! The exporter's core: one target's collections, cached for the window and shared by all
//! scrapers, with their encoded expositions.
//!
//! A collection is reused for `cache_duration`: scrapes in that window cost no API request,
//! so a highly available Prometheus pair costs one set of requests per window. Scrapes that
//! arrive while a collection is under way wait for it instead of starting their own. The
//! encoded exposition is kept with the collection, once per format, when it is small enough;
//! a bigger one is encoded for each scrape while it is sent ([`body`]).
//!
//! Beside it: [`ahead`] plans collections ahead of the scrapes (`--collect-ahead`),
//! [`targets`] keeps one exporter per `/pve` and `/probe` target, and [`exposition`] writes a
//! collection in the scraper's format. Nothing here knows HTTP routes: `crate::http` serves
//! what this makes.

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::collectors::{Collectors, Enabled, Snapshot};
use crate::lock;
use crate::pve::Dispatcher;

pub mod ahead;
pub mod body;
pub mod exposition;
pub mod reloads;
pub mod targets;

pub use body::Body;
pub use exposition::{Exposition, Format, accepts_gzip, negotiate};

/// One collection and its encodings, each made on first use: the exposition in either
/// format, plain and gzipped. Scrapes within the window get these bytes as they are.
#[derive(Debug)]
pub struct Collection {
    /// When the collection finished.
    pub finished: Instant,
    /// How long it took.
    pub took: Duration,
    pub snapshot: Arc<Snapshot>,
    /// Indexed by [`Collection::slot`].
    encoded: [OnceLock<Bytes>; 4],
}

impl Collection {
    fn new(snapshot: Snapshot, started: Instant) -> Self {
        let finished = Instant::now();
        Collection {
            finished,
            took: finished.duration_since(started),
            snapshot: Arc::new(snapshot),
            encoded: Default::default(),
        }
    }

    fn slot(format: Format, gzip: bool) -> usize {
        let f = match format {
            Format::Text => 0,
            Format::OpenMetrics => 2,
        };
        f + usize::from(gzip)
    }
}

/// Collects through the dispatcher and keeps the result for the cache window.
pub struct Exporter {
    dispatcher: Arc<Dispatcher>,
    cache: quick_cache::sync::Cache<(), Arc<Collection>>,
    cache_duration: Duration,
    max_concurrent_requests: usize,
    /// Requests of the sweeping collectors under way at once on one node.
    requests_per_node: usize,
    collectors: Collectors,
    clock: fn() -> SystemTime,
    /// The last exposition's size in each [`Collection::slot`]: when it was too big to keep,
    /// the next one's chunks are not kept either.
    last_sizes: Arc<[std::sync::atomic::AtomicUsize; 4]>,
    /// When scrapes came, for collecting ahead of them.
    scrapes: Arc<std::sync::Mutex<ahead::Scrapes>>,
    /// Tells the planning loop of collecting ahead that a scrape came.
    wake: Arc<tokio::sync::Notify>,
    /// How configuration reloads went, for the exporter's own families.
    reloads: Option<Arc<reloads::Reloads>>,
}

impl Exporter {
    pub fn new(
        dispatcher: Arc<Dispatcher>,
        cache_duration: Duration,
        max_concurrent_requests: usize,
    ) -> Self {
        Exporter {
            dispatcher,
            cache: quick_cache::sync::Cache::new(4),
            cache_duration,
            max_concurrent_requests,
            requests_per_node: 1,
            collectors: Collectors::new(
                crate::collectors::defaults(),
                cache_duration,
                max_concurrent_requests,
            ),
            clock: SystemTime::now,
            last_sizes: Default::default(),
            scrapes: Arc::default(),
            wake: Arc::default(),
            reloads: None,
        }
    }

    /// Shows how configuration reloads went (`proxmox_exporter_config_last_reload_*`).
    pub fn with_reloads(mut self, reloads: Arc<reloads::Reloads>) -> Self {
        self.reloads = Some(reloads);
        self
    }

    /// Collects ahead of the scrapes from now on (`--collect-ahead`): shortly before the next
    /// scrape would find the cache stale, while scrapes keep coming; after `idle_windows`
    /// intervals without one it waits for the next scrape.
    pub fn collect_ahead(self: &Arc<Self>, idle_windows: u32) {
        tokio::spawn(run_ahead(
            Arc::downgrade(self),
            self.scrapes.clone(),
            self.wake.clone(),
            idle_windows,
        ));
    }

    /// When the next collection ahead should start, if one should.
    pub(crate) fn plan_ahead(
        &self,
        scrapes: &ahead::Scrapes,
        idle_windows: u32,
    ) -> Option<Instant> {
        let current = self.cache.get(&())?;
        let lead = ahead::lead(current.took, scrapes.interval()?);
        scrapes.next_start(
            Instant::now(),
            current.finished,
            self.cache_duration,
            lead,
            idle_windows,
        )
    }

    /// Collects now and makes the result the current collection.
    pub(crate) async fn refresh(&self) {
        self.cache.insert((), self.collect(None).await);
    }

    /// A new collection, giving up on what has not answered by `deadline`.
    async fn collect(&self, deadline: Option<tokio::time::Instant>) -> Arc<Collection> {
        let started = Instant::now();
        let snapshot = self
            .collectors
            .collect(&self.dispatcher, (self.clock)(), deadline)
            .await;
        Arc::new(Collection::new(snapshot, started))
    }

    /// Runs these collectors instead of the default ones.
    pub fn with_collectors(mut self, enabled: Vec<Enabled>) -> Self {
        self.collectors =
            Collectors::new(enabled, self.cache_duration, self.max_concurrent_requests)
                .with_requests_per_node(self.requests_per_node);
        self
    }

    /// Lets the sweeping collectors (`snapshots`, `backup`, `guest_filesystems`) have
    /// `per_node` requests under way on one node at once (`--max-guest-requests-per-node`).
    pub fn with_requests_per_node(mut self, per_node: usize) -> Self {
        self.requests_per_node = per_node;
        self.collectors = self.collectors.with_requests_per_node(per_node);
        self
    }

    /// Collects without asking `/cluster/resources` (call after [`Exporter::with_collectors`]).
    pub fn without_inventory(mut self) -> Self {
        self.collectors = self.collectors.without_inventory();
        self
    }

    /// The collectors that run.
    pub fn collectors(&self) -> &[Enabled] {
        self.collectors.enabled()
    }

    /// Uses `clock` for "now" (certificate days), so tests get stable output.
    pub fn with_clock(mut self, clock: fn() -> SystemTime) -> Self {
        self.clock = clock;
        self
    }

    /// The current collection: the cached one while it is fresh, else a new one. Concurrent
    /// callers share one collection. A new collection gives up on what has not answered by
    /// `deadline`.
    pub async fn collection(&self, deadline: Option<tokio::time::Instant>) -> Arc<Collection> {
        let asked = Instant::now();
        loop {
            match self.cache.get_value_or_guard_async(&()).await {
                // Fresh, or finished after we asked (we waited for it): use it.
                Ok(found)
                    if found.finished.elapsed() < self.cache_duration
                        || found.finished >= asked =>
                {
                    return found;
                }
                Ok(stale) => {
                    // Only this stale value: a newer one someone else just put there stays.
                    self.cache.remove_if(&(), |v| Arc::ptr_eq(v, &stale));
                }
                Err(guard) => {
                    let collection = self.collect(deadline).await;
                    let _ = guard.insert(collection.clone());
                    return collection;
                }
            }
        }
    }

    /// The exposition of the current collection in `format`, gzipped when `gzip`. It is
    /// encoded while it is sent, and kept with the collection for the window's other scrapes
    /// when it is small enough ([`body::KEPT_AT_MOST`]).
    pub async fn exposition(
        &self,
        format: Format,
        gzip: bool,
        deadline: Option<tokio::time::Instant>,
    ) -> Body {
        lock(&self.scrapes).record(Instant::now(), self.cache_duration);
        let collection = self.collection(deadline).await;
        // Planned from the collection this scrape got (none is in the cache while one runs).
        self.wake.notify_one();
        let slot = Collection::slot(format, gzip);
        if let Some(kept) = collection.encoded[slot].get() {
            return Body::Whole(kept.clone());
        }
        if gzip {
            // The plain text is kept: its gzip is too (it is smaller).
            if let Some(plain) = collection.encoded[Collection::slot(format, false)].get() {
                let body = collection.encoded[slot]
                    .get_or_init(|| gzipped(plain, flate2::Compression::fast()))
                    .clone();
                return Body::Whole(body);
            }
        }
        let exposition = Exposition {
            snapshot: collection.snapshot.clone(),
            requests: self.dispatcher.request_counts(),
            reloads: self.reloads.clone(),
        };
        let last_sizes = self.last_sizes.clone();
        let (to, chunks) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let expected = last_sizes[slot].load(std::sync::atomic::Ordering::Relaxed);
            let out = body::Chunks::new(to, body::KEPT_AT_MOST, expected + expected / 16);
            let level = gzip.then(flate2::Compression::fast);
            // Only fails when the scraper left: nothing to keep then.
            if let Ok(sent) = exposition
                .write_to(format, level, out)
                .and_then(body::Chunks::finish)
            {
                last_sizes[slot].store(sent.written, std::sync::atomic::Ordering::Relaxed);
                if let Some(kept) = sent.kept {
                    let _ = collection.encoded[slot].set(Bytes::from(kept));
                }
            }
        });
        Body::Chunks(chunks)
    }
}

/// Collecting ahead's planning loop, for as long as `exporter` exists.
async fn run_ahead(
    exporter: Weak<Exporter>,
    scrapes: Arc<std::sync::Mutex<ahead::Scrapes>>,
    wake: Arc<tokio::sync::Notify>,
    idle_windows: u32,
) {
    loop {
        let plan = {
            let Some(exporter) = exporter.upgrade() else {
                return;
            };
            exporter.plan_ahead(&lock(&scrapes), idle_windows)
        };
        match plan {
            Some(start) => {
                tokio::select! {
                    () = tokio::time::sleep_until(start.into()) => {
                        let Some(exporter) = exporter.upgrade() else {
                            return;
                        };
                        // Still due now? (Scrapes may have stopped while it slept.)
                        let due = exporter.plan_ahead(&lock(&scrapes), idle_windows);
                        if due.is_some_and(|at| at <= Instant::now()) {
                            exporter.refresh().await;
                        }
                    }
                    // A scrape may have changed the plan (a new interval, or scrapes again).
                    () = wake.notified() => {}
                }
            }
            // Nothing to plan yet, or scrapes stopped: wait for the next scrape.
            None => wake.notified().await,
        }
    }
}

/// `plain` gzipped at `level` (the exporter's own answers: fast; the simulated pveproxy's:
/// zlib's default).
pub(crate) fn gzipped(plain: &[u8], level: flate2::Compression) -> Bytes {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(plain.len() / 8), level);
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(plain);
    Bytes::from(encoder.finish().unwrap_or_default())
}
