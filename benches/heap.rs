//! The exporter's live heap, counted by allocation rather than read from RSS: what it holds at
//! rest after each collection and the most it holds during one, for #23's setup (every
//! collector, 500 nodes / 50,000 guests, half of the running VMs with an agent, the
//! pveproxy-like simulator over TLS with 20 ms latency, three endpoints, scrapes every 15 s
//! with gzip).
//!
//! RSS moves 1.5–2.5 MB between runs of one binary (the allocator's pages, the timing of
//! thousands of answers); live bytes move far less, so a change worth 1 MB shows here when the
//! sweeps bench cannot tell it from noise. RSS is live bytes plus the allocator's holes and
//! the binary: compare live bytes with live bytes, and confirm a gain with the sweeps bench.
//!
//! ```sh
//! cargo bench --profile release --bench heap -- [--seconds 150] [--nodes 500 --guests 50000] [EXPORTER FLAGS…]
//! ```
//!
//! The simulator runs in the same process on threads of its own, whose allocations are not
//! counted; the exporter runs on the main runtime, as the binary would, on the system's
//! allocator (the count is the same under any allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::encoding::DescriptorEncoder;
use proxmox_exporter::collectors::{Snapshot, View};
use proxmox_exporter::config::Cli;
use proxmox_exporter::exporter::{Body, Exporter, Format};
use proxmox_exporter::pve::Dispatcher;
use proxmox_exporter::sim::{Answers, Behaviour, SimApi};

/// Bytes the counted threads hold now, and the most since the last reset.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations count: every thread's but the simulator's.
    static COUNTED: Cell<bool> = const { Cell::new(true) };
}

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

/// Live bytes by the size of their allocation: bucket n holds allocations of 2^n to 2^(n+1) − 1 bytes.
static BUCKETS: [std::sync::atomic::AtomicIsize; 40] =
    [const { std::sync::atomic::AtomicIsize::new(0) }; 40];

fn bucket(size: usize) -> &'static std::sync::atomic::AtomicIsize {
    &BUCKETS[(usize::BITS - size.max(1).leading_zeros() - 1) as usize]
}

fn buckets() -> Vec<isize> {
    BUCKETS.iter().map(|b| b.load(Relaxed)).collect()
}

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

fn shrank(by: usize) {
    LIVE.fetch_sub(by, Relaxed);
}

struct Counting;

// SAFETY: every call is passed on to the system's allocator unchanged; only counters move.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && counted() {
            grew(layout.size());
            bucket(layout.size()).fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && counted() {
            grew(layout.size());
            bucket(layout.size()).fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        if counted() {
            shrank(layout.size());
            bucket(layout.size()).fetch_sub(layout.size() as isize, Relaxed);
        }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() && counted() {
            bucket(layout.size()).fetch_sub(layout.size() as isize, Relaxed);
            bucket(new_size).fetch_add(new_size as isize, Relaxed);
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TOKEN_ID: &str = "bench@pve!heap";
const TOKEN_SECRET: &str = "00000000-0000-0000-0000-000000000000";
const INTERVAL: Duration = Duration::from_secs(15);

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

/// Live bytes sampled every 100 ms on a thread of its own (which allocates nothing counted).
struct Timeline(
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<Vec<(u128, usize)>>,
);

impl Timeline {
    fn start() -> Timeline {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = std::thread::spawn(move || {
            COUNTED.set(false);
            let started = Instant::now();
            let mut points = Vec::new();
            while !flag.load(Relaxed) {
                points.push((started.elapsed().as_millis(), LIVE.load(Relaxed)));
                std::thread::sleep(Duration::from_millis(100));
            }
            points
        });
        Timeline(stop, sampler)
    }

    fn stop(self) -> Vec<(u128, usize)> {
        self.0.store(true, Relaxed);
        self.1.join().unwrap_or_default()
    }
}

/// One collector's families of a snapshot, for encoding them alone.
struct One(Arc<Snapshot>, usize);

impl std::fmt::Debug for One {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("one collector")
    }
}

impl prometheus_client::collector::Collector for One {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let view = View {
            taken_at: s.taken_at,
            inventory: &s.inventory,
            unreachable: &[],
        };
        s.outcomes[self.1]
            .kept
            .collected
            .data
            .encode(&view, &mut encoder)
    }
}

/// Text that is counted and dropped.
struct Sink(usize);

impl std::fmt::Write for Sink {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// What encoding each fresh collector's families takes above what is live before it.
fn encodings(snapshot: &Arc<Snapshot>) -> Vec<(&'static str, usize)> {
    let mut each = Vec::new();
    for (i, outcome) in snapshot.outcomes.iter().enumerate() {
        if !outcome.fresh {
            continue;
        }
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(One(snapshot.clone(), i)));
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        let mut sink = Sink(0);
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut sink, &registry);
        each.push((outcome.name, PEAK.load(Relaxed).saturating_sub(before)));
    }
    each
}

fn main() {
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut take = |flag: &str, default: u64| -> u64 {
        match args.iter().position(|a| a == flag) {
            Some(at) if at + 1 < args.len() => {
                let value = args.remove(at + 1);
                args.remove(at);
                value.parse().unwrap_or(default)
            }
            _ => default,
        }
    };
    let seconds = take("--seconds", 150);
    let nodes = take("--nodes", 500) as usize;
    let guests = take("--guests", 50_000) as usize;
    let extra = args;

    // The simulator on threads of its own, not counted.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        COUNTED.set(false);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .on_thread_start(|| COUNTED.set(false))
            .enable_all()
            .build()
            .expect("simulator runtime");
        runtime.block_on(async move {
            proxmox_exporter::pve::dispatcher::install_crypto_provider();
            let mut answers = Answers::generate(nodes, guests, 1, SystemTime::now());
            answers.answer_half_of_the_agents(Duration::from_millis(20), None);
            let api = SimApi::new(answers, TOKEN_ID, TOKEN_SECRET);
            api.set_behaviour(Behaviour::pveproxy());
            api.set_latency(Duration::from_millis(20));
            let (_servers, addresses) = api.serve_tls_endpoints(3).await.expect("endpoints");
            let addresses: Vec<String> =
                addresses.iter().map(|a| format!("https://{a}/")).collect();
            tx.send(addresses).expect("addresses");
            std::future::pending::<()>().await;
        });
    });
    let addresses = rx.recv().expect("the simulator started");

    let every: Vec<String> = (proxmox_exporter::collectors::REGISTRY.iter())
        .filter(|c| !c.enabled_by_default())
        .map(|c| format!("--collector.{}", c.name()))
        .collect();
    let mut argv: Vec<String> = [
        "proxmox-exporter",
        "--proxmox-endpoints",
        &addresses.join(","),
        "--proxmox-api-insecure",
        "--proxmox-token-id",
        TOKEN_ID,
        "--proxmox-token",
        TOKEN_SECRET,
        "--cache-duration",
        &INTERVAL.as_secs().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(every);
    argv.extend(extra.iter().cloned());
    let config = match Cli::try_parse_with(argv, std::env::vars()).map_err(|e| e.to_string()) {
        Ok(cli) => cli.into_config().expect("a configuration"),
        Err(e) => panic!("{e}"),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        proxmox_exporter::pve::dispatcher::install_crypto_provider();
        let settings = config.dispatcher.as_ref().expect("endpoints given");
        let dispatcher = Arc::new(Dispatcher::new(settings).expect("a dispatcher"));
        let exporter = Exporter::new(dispatcher, config.cache_duration, config.max_concurrent_requests)
            .with_collectors(config.collectors.clone())
            .with_requests_per_node(config.max_guest_requests_per_node);
        println!("every collector{}; {nodes} nodes / {guests} guests; live heap in MB", if extra.is_empty() { String::new() } else { format!(", {}", extra.join(" ")) });
        println!(
            "| s | live before | collecting: peak | live after | encoding: peak | live after | peak until the next scrape |"
        );
        println!("|---|---|---|---|---|---|---|");
        let started = Instant::now();
        let mut highest = 0;
        // The peak since the last call, and the live bytes now; the peak starts again from them.
        let phase = || {
            let peak = PEAK.load(Relaxed);
            let now = LIVE.load(Relaxed);
            PEAK.store(now, Relaxed);
            (peak, now)
        };
        while started.elapsed() < Duration::from_secs(seconds) {
            let at = Instant::now();
            let (_, before) = phase();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            // The collection (or the cached one), then its encoding, measured apart.
            let buckets_before = buckets();
            let timeline = Timeline::start();
            let collection = exporter.collection(Some(deadline)).await;
            let timeline = timeline.stop();
            let (collecting, collected) = phase();
            // The exposition takes the same collection from the cache: this one is let go
            // first, as a scraper holds none.
            let snapshot = collection.snapshot.clone();
            drop(collection);
            let encoding_timeline = Timeline::start();
            let body = exporter.exposition(Format::Text, true, Some(deadline)).await;
            let mut bytes = 0;
            match body {
                Body::Whole(b) => bytes += b.len(),
                Body::Chunks(mut chunks) => {
                    while let Some(chunk) = chunks.recv().await {
                        bytes += chunk.len();
                    }
                }
            }
            let (encoding, encoded) = phase();
            if std::env::var_os("HEAP_BUCKETS").is_some() {
                let after = buckets();
                let moved: Vec<String> = (0..40)
                    .filter(|&n| (after[n] - buckets_before[n]).abs() > 100_000)
                    .map(|n| format!("{}B+: {:+.2}", 1usize << n, (after[n] - buckets_before[n]) as f64 / 1e6))
                    .collect();
                println!("  (after the encoding against before the collection, MB by allocation size: {})", moved.join(", "));
            }
            let encoding_timeline = encoding_timeline.stop();
            let by_collector = encodings(&snapshot);
            drop(snapshot);
            phase();
            tokio::time::sleep_until((at + INTERVAL).into()).await;
            let (between, _) = phase();
            highest = highest.max(collecting).max(encoding).max(between);
            println!(
                "| {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | ({} bytes gzipped)",
                at.duration_since(started).as_secs_f64(),
                mb(before),
                mb(collecting),
                mb(collected),
                mb(encoding),
                mb(encoded),
                mb(between),
                bytes
            );
            if std::env::var_os("HEAP_TIMELINE").is_some() && timeline.len() > 2 {
                let points: Vec<String> = (timeline.iter())
                    .map(|(ms, live)| format!("{ms}:{:.1}", mb(*live)))
                    .collect();
                println!("  (live MB every 100 ms while collecting: {})", points.join(" "));
                let points: Vec<String> = (encoding_timeline.iter())
                    .map(|(ms, live)| format!("{ms}:{:.1}", mb(*live)))
                    .collect();
                println!("  (and while encoding: {})", points.join(" "));
            }
            if !by_collector.is_empty() {
                let mut top = by_collector;
                top.sort_by_key(|b| std::cmp::Reverse(b.1));
                let top: Vec<String> = (top.iter().take(6))
                    .map(|(name, bytes)| format!("{name} {:.1}", mb(*bytes)))
                    .collect();
                println!("  (each collector's encoding above what is kept, MB: {})", top.join(", "));
            }
        }
        println!("highest live heap: {:.1} MB", mb(highest));
    });
}
