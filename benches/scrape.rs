//! Scrape benchmark: the exporter (as its own process) against the simulated PVE over TLS, for
//! several cluster sizes and API latencies, and prometheus-pve-exporter against the same
//! simulator when `--pve-exporter PATH` is given. Prints a Markdown table.
//!
//! `--pve` measures our `/pve` (prometheus-pve-exporter's series, the same `pve.yml`) instead of
//! `/metrics`, so both exporters answer the same question; it also checks that both produce the
//! same `pve_*` series.
//!
//! `benches/run.sh` installs prometheus-pve-exporter and runs this; see BENCHMARKS.md.
//! Everything listens on 127.0.0.1 and every loop is bounded.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use proxmox_exporter::sim::{Answers, Behaviour, SimApi, Stats};

const TOKEN_ID: &str = "monitoring@pve!exporter";
const TOKEN_SECRET: &str = "bench-secret";
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

struct Options {
    pve_exporter: Option<PathBuf>,
    sizes: Vec<(usize, usize)>,
    latencies: Vec<u64>,
    cold_runs: usize,
    warm_runs: usize,
    other_runs: usize,
    /// Extra arguments for our exporter (collectors), split on spaces.
    exporter_args: Vec<String>,
    /// Compare `/cluster/metrics/export` with per-node `/nodes/{node}/status` instead.
    node_source: bool,
    /// Scrape our `/pve?target=…&cluster=1&node=1` instead of `/metrics`.
    pve: bool,
    /// The cluster's side: a pveproxy-like simulator, every scrape starting without an open
    /// connection (as 30 s apart); see [`realistic`].
    realistic: bool,
    /// With --realistic: bytes per second each endpoint's answers share (a WAN link).
    bandwidth: Option<u64>,
    /// With --realistic: only our default-collector row (for sweeps of one setting).
    only_defaults: bool,
    /// With --realistic: how many of the cluster's nodes the exporter is given as endpoints.
    endpoints: usize,
    /// With --realistic: scrape this many milliseconds apart, the exporter keeping answers for
    /// `cache_seconds` (instead of collecting on every scrape), for `--collect-ahead`.
    interval_ms: Option<u64>,
    cache_seconds: u64,
    /// The scale goals: the exporter alone, every scrape cold, one and three endpoints; see
    /// [`scale`].
    scale: bool,
    /// The sweeps' goals: every collector, half of the running VMs with an agent, pveproxy's
    /// workers watched per node; see [`sweeps`].
    sweeps: bool,
    /// With --sweeps: how long each run scrapes, in seconds.
    seconds: u64,
    /// A backup server: `--sizes D/G` are datastores and groups per datastore; see [`pbs`].
    pbs: bool,
}

fn options() -> Options {
    let mut o = Options {
        pve_exporter: None,
        sizes: vec![(3, 30), (20, 1_000), (50, 5_000), (200, 20_000)],
        latencies: vec![0, 20],
        cold_runs: 10,
        warm_runs: 300,
        other_runs: 3,
        exporter_args: Vec::new(),
        node_source: false,
        pve: false,
        realistic: false,
        bandwidth: None,
        only_defaults: false,
        endpoints: 3,
        interval_ms: None,
        cache_seconds: 2,
        scale: false,
        sweeps: false,
        seconds: 300,
        pbs: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--pve-exporter" => o.pve_exporter = args.next().map(PathBuf::from),
            "--quick" => {
                o.sizes.truncate(2);
                o.cold_runs = 3;
                o.warm_runs = 50;
                o.other_runs = 1;
            }
            "--sizes" => {
                o.sizes = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.split_once('/'))
                    .filter_map(|(n, g)| Some((n.parse().ok()?, g.parse().ok()?)))
                    .collect();
            }
            "--exporter-args" => {
                o.exporter_args = args
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
            }
            "--node-source" => o.node_source = true,
            "--pve" => o.pve = true,
            "--realistic" => o.realistic = true,
            "--scale" => o.scale = true,
            "--sweeps" => o.sweeps = true,
            "--pbs" => o.pbs = true,
            "--seconds" => o.seconds = args.next().and_then(|n| n.parse().ok()).unwrap_or(300),
            "--bandwidth" => o.bandwidth = args.next().and_then(|n| n.parse().ok()),
            "--only-defaults" => o.only_defaults = true,
            "--interval-ms" => o.interval_ms = args.next().and_then(|n| n.parse().ok()),
            "--cache-seconds" => {
                o.cache_seconds = args.next().and_then(|n| n.parse().ok()).unwrap_or(2);
            }
            "--endpoints" => {
                o.endpoints = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);
            }
            "--latencies" => {
                o.latencies = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|n| n.parse().ok())
                    .collect();
            }
            "--cold-runs" => {
                o.cold_runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(o.cold_runs);
            }
            _ => {} // cargo bench passes --bench
        }
    }
    o
}

/// A child process that is killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

/// CPU seconds (user + system) used so far by `pid` and its children that have exited.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0 // USER_HZ is 100 on Linux
}

/// Peak resident memory of `pid`, in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// How our exporter reaches the simulated cluster.
enum Reach<'a> {
    /// `--proxmox-endpoints`, scraped on `/metrics`.
    Flags { endpoint: &'a str },
    /// A `pve.yml` module, scraped on `/pve?target=…&cluster=1&node=1`.
    Pve {
        config: &'a std::path::Path,
        target: &'a str,
    },
    /// A backup server's module (`product: pbs`), scraped on `/probe?module=pbs&target=…`.
    Pbs {
        config: &'a std::path::Path,
        target: &'a str,
    },
}

/// Starts the exporter; returns it and its scrape URL.
fn start_exporter(reach: &Reach, cache_seconds: &str, extra: &[String]) -> (Process, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_proxmox-exporter"));
    match reach {
        Reach::Flags { endpoint } => {
            command
                .args(["--proxmox-endpoints", endpoint, "--proxmox-api-insecure"])
                .args([
                    "--proxmox-token-id",
                    TOKEN_ID,
                    "--proxmox-token",
                    TOKEN_SECRET,
                ]);
        }
        Reach::Pve { config, .. } | Reach::Pbs { config, .. } => {
            command.arg("--config.file").arg(config);
        }
    }
    let mut child = command
        .args(extra)
        .args(["--server-address", "127.0.0.1", "--server-port", "0"])
        .args(["--cache-duration", cache_seconds, "--log-level", "info"])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start proxmox-exporter");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("address=") {
                let address = line[at + 8..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let _ = tx.send(address);
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the exporter did not start");
    let url = match reach {
        Reach::Flags { .. } => format!("http://{address}/metrics"),
        Reach::Pve { target, .. } => {
            format!("http://{address}/pve?target={target}&cluster=1&node=1")
        }
        Reach::Pbs { target, .. } => format!("http://{address}/probe?module=pbs&target={target}"),
    };
    (Process(child), url)
}

/// prometheus-pve-exporter's `pve.yml` for the simulator, in a directory of this run.
fn pve_yml() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pve-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("pve.yml");
    let (user, token) = TOKEN_ID.split_once('!').expect("token id");
    std::fs::write(
        &config,
        format!(
            "default:\n  user: {user}\n  token_name: {token}\n  token_value: {TOKEN_SECRET}\n  verify_ssl: false\n"
        ),
    )
    .expect("write pve.yml");
    config
}

/// Starts prometheus-pve-exporter; returns it and its scrape URL for the simulator at `target`.
fn start_pve_exporter(path: &PathBuf, target: &str) -> (Process, String) {
    let config = pve_yml();
    let port = free_port();
    let child = Command::new(path)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pve_exporter");
    let url = format!("http://127.0.0.1:{port}/pve?target={target}&cluster=1&node=1");
    // Wait until it listens (bounded).
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (Process(child), url)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// One timed scrape: milliseconds and body bytes.
async fn scrape(client: &reqwest::Client, url: &str, gzip: bool) -> (f64, usize) {
    let (ms, body) = scrape_body(client, url, gzip).await;
    (ms, body.len())
}

/// One timed scrape: milliseconds and the body as sent (compressed when asked for).
async fn scrape_body(client: &reqwest::Client, url: &str, gzip: bool) -> (f64, Vec<u8>) {
    let started = Instant::now();
    let mut request = client.get(url).header("accept", PROMETHEUS_ACCEPT);
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let response = request.send().await.expect("scrape");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    let body = response.bytes().await.expect("body");
    (started.elapsed().as_secs_f64() * 1000.0, body.to_vec())
}

/// The `pve_*` series of an exposition, as name and sorted labels (values left out: both
/// exporters scrape at different moments).
fn pve_series(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|line| line.starts_with("pve_"))
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series))
        .map(|series| match series.split_once('{') {
            Some((name, labels)) => {
                let mut pairs: Vec<&str> = labels
                    .trim_end_matches('}')
                    .split("\",")
                    .map(|p| p.trim_end_matches('"'))
                    .collect();
                pairs.sort_unstable();
                format!("{name}{{{}}}", pairs.join(","))
            }
            None => series.to_owned(),
        })
        .collect()
}

struct Measured {
    /// The first cold scrape's exposition.
    body: String,
    first_ms: f64,
    cold_ms: Vec<f64>,
    requests_per_cold: f64,
    first_requests: u64,
    cpu_ms_per_cold: f64,
    bytes: usize,
    gzip_bytes: usize,
    concurrent_requests: u64,
    warm_ms: Vec<f64>,
    rss_mb: f64,
}

async fn measure_ours(reach: &Reach<'_>, api: &SimApi, o: &Options) -> Measured {
    let client = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client");
    // Cold: no cache, so every scrape collects.
    let (cold, url) = start_exporter(reach, "0", &o.exporter_args);
    let before = api.requests();
    let (first_ms, body) = scrape_body(&client, &url, false).await;
    let bytes = body.len();
    let first_requests = api.requests() - before;
    let (cpu0, req0) = (cpu_seconds(cold.pid()), api.requests());
    let mut cold_ms = Vec::new();
    for _ in 0..o.cold_runs {
        cold_ms.push(scrape(&client, &url, false).await.0);
    }
    let cpu_ms_per_cold = (cpu_seconds(cold.pid()) - cpu0) * 1000.0 / o.cold_runs as f64;
    let requests_per_cold = (api.requests() - req0) as f64 / o.cold_runs as f64;
    // Collectors whose answers outlive a window (snapshots, subscription) make later cold
    // scrapes cheaper than the first.
    let (_, gzip_bytes) = scrape(&client, &url, true).await;
    let rss_cold = peak_rss_mb(cold.pid());
    drop(cold);

    // Four scrapers at once against a fresh exporter with the usual cache.
    let (shared, url) = start_exporter(reach, "29", &o.exporter_args);
    let before = api.requests();
    let together: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { scrape(&client, &url, false).await })
        })
        .collect();
    for scrape in together {
        scrape.await.expect("scrape task");
    }
    let concurrent_requests = api.requests() - before;

    // Warm: the cache answers, as Prometheus asks (OpenMetrics, gzip).
    let mut warm_ms = Vec::new();
    for _ in 0..o.warm_runs {
        warm_ms.push(scrape(&client, &url, true).await.0);
    }
    let rss = rss_cold.max(peak_rss_mb(shared.pid()));
    Measured {
        body: String::from_utf8_lossy(&body).into_owned(),
        first_ms,
        cold_ms: sorted(cold_ms),
        requests_per_cold,
        first_requests,
        cpu_ms_per_cold,
        bytes,
        gzip_bytes,
        concurrent_requests,
        warm_ms: sorted(warm_ms),
        rss_mb: rss,
    }
}

struct Other {
    /// The last scrape's exposition.
    body: String,
    ms: Vec<f64>,
    requests: f64,
    cpu_ms: f64,
    rss_mb: f64,
    bytes: usize,
}

/// gunicorn runs the scrape in a worker: CPU and memory are summed over the process group.
fn group_pids(leader: u32) -> Vec<u32> {
    let mut pids = vec![leader];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            if after.split_whitespace().nth(1) == Some(&leader.to_string()) {
                pids.push(pid);
            }
        }
    }
    pids
}

async fn measure_other(path: &PathBuf, target: &str, api: &SimApi, runs: usize) -> Other {
    let (process, url) = start_pve_exporter(path, target);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .no_gzip()
        .build()
        .expect("client");
    scrape(&client, &url, false).await; // start-up costs out of the way
    let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>();
    let pids = group_pids(process.pid());
    let (cpu0, req0) = (cpu(&pids), api.requests());
    let mut ms = Vec::new();
    let mut body = Vec::new();
    for _ in 0..runs {
        let (took, text) = scrape_body(&client, &url, false).await;
        ms.push(took);
        body = text;
    }
    let pids = group_pids(process.pid());
    let rss_mb = pids.iter().map(|p| peak_rss_mb(*p)).sum();
    Other {
        ms: sorted(ms),
        requests: (api.requests() - req0) as f64 / runs as f64,
        cpu_ms: (cpu(&pids) - cpu0) * 1000.0 / runs as f64,
        rss_mb,
        bytes: body.len(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Time for the node figures of the whole cluster: one `/cluster/metrics/export` request
/// (the node asked collects the others one after the other), or every node's
/// `/nodes/{node}/status` at once. Prints a Markdown table.
async fn compare_node_sources(o: &Options) {
    println!(
        "| nodes/guests | latency | metrics/export: ms p50, bytes | per-node status: ms p50, requests, bytes |"
    );
    println!("|---|---|---|---|");
    proxmox_exporter::pve::dispatcher::install_crypto_provider();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    for &(nodes, guests) in &o.sizes {
        for &latency in &o.latencies {
            let answers = Answers::generate(nodes, guests, 1, SystemTime::now());
            let api = SimApi::new(answers, TOKEN_ID, TOKEN_SECRET);
            api.set_latency(Duration::from_millis(latency));
            let (servers, addresses) = serve_endpoints(&api, 1).await;
            let address: std::net::SocketAddr = addresses[0].parse().expect("address");
            let get = |path: String| {
                let client = client.clone();
                async move {
                    let response = client
                        .get(format!("https://{address}/api2/json{path}"))
                        .header(
                            "Authorization",
                            format!("PVEAPIToken={TOKEN_ID}={TOKEN_SECRET}"),
                        )
                        .send()
                        .await
                        .expect("request");
                    response.bytes().await.expect("body").len()
                }
            };
            let runs = o.cold_runs.max(3);
            let (mut export_ms, mut export_bytes) = (Vec::new(), 0);
            let (mut status_ms, mut status_bytes) = (Vec::new(), 0);
            for _ in 0..runs {
                let started = Instant::now();
                export_bytes = get("/cluster/metrics/export".into()).await;
                export_ms.push(started.elapsed().as_secs_f64() * 1000.0);
                let started = Instant::now();
                let all: Vec<_> = (1..=nodes)
                    .map(|i| tokio::spawn(get(format!("/nodes/pve{i:02}/status"))))
                    .collect();
                status_bytes = 0;
                for one in all {
                    status_bytes += one.await.expect("task");
                }
                status_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            servers.iter().for_each(|s| s.abort());
            println!(
                "| {nodes}/{guests} | {latency} ms | {:.1} ms, {export_bytes} B | {:.1} ms, {nodes}, {status_bytes} B |",
                percentile(&sorted(export_ms), 0.5),
                percentile(&sorted(status_ms), 0.5),
            );
        }
    }
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    if o.node_source {
        runtime.block_on(compare_node_sources(&o));
        return;
    }
    if o.realistic {
        runtime.block_on(realistic(&o));
        return;
    }
    if o.scale {
        runtime.block_on(scale(&o));
        return;
    }
    if o.sweeps {
        runtime.block_on(sweeps(&o));
        return;
    }
    if o.pbs {
        runtime.block_on(pbs(&o));
        return;
    }
    println!(
        "| nodes/guests | latency | cold scrape ms (first / p50 / p99) | API requests per cold scrape | 4 scrapes at once: API requests | warm p50 / p99 ms | CPU ms per cold scrape | peak RSS MB | exposition bytes (gzip) | prometheus-pve-exporter: scrape ms p50, API requests, CPU ms, RSS MB, bytes | speed-up |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for &(nodes, guests) in &o.sizes {
        let answers = Answers::generate(nodes, guests, 1, SystemTime::now());
        for &latency in &o.latencies {
            runtime.block_on(async {
                let api = SimApi::new(answers.clone(), TOKEN_ID, TOKEN_SECRET);
                api.set_latency(Duration::from_millis(latency));
                let (servers, addresses) = serve_endpoints(&api, 1).await;
                let address = &addresses[0];
                let endpoint = format!("https://{address}/");
                let target = address.to_string();
                let config = pve_yml();
                let reach = if o.pve {
                    Reach::Pve { config: &config, target: &target }
                } else {
                    Reach::Flags { endpoint: &endpoint }
                };
                let ours = measure_ours(&reach, &api, &o).await;
                let other = match &o.pve_exporter {
                    Some(path) => {
                        Some(measure_other(path, address, &api, o.other_runs).await)
                    }
                    None => None,
                };
                servers.iter().for_each(|s| s.abort());
                let cold_p50 = percentile(&ours.cold_ms, 0.5);
                let (other_cell, speedup) = match other {
                    Some(x) => {
                        let p50 = percentile(&x.ms, 0.5);
                        let same = if o.pve {
                            let (mine, theirs) = (pve_series(&ours.body), pve_series(&x.body));
                            if mine == theirs {
                                format!(", same {} series", mine.len())
                            } else {
                                format!(
                                    ", DIFFERENT series: {} only ours, {} only theirs",
                                    mine.difference(&theirs).count(),
                                    theirs.difference(&mine).count()
                                )
                            }
                        } else {
                            String::new()
                        };
                        (
                            format!(
                                "{p50:.0} ms, {:.0} req, {:.0} ms CPU, {:.0} MB, {} B{same}",
                                x.requests, x.cpu_ms, x.rss_mb, x.bytes
                            ),
                            format!("{:.0}×", p50 / cold_p50),
                        )
                    }
                    None => ("not run".to_owned(), "–".to_owned()),
                };
                println!(
                    "| {nodes}/{guests} | {latency} ms | {:.1} / {:.1} / {:.1} | {} | {} | {:.2} / {:.2} | {:.1} | {:.1} | {} ({}) | {other_cell} | {speedup} |",
                    ours.first_ms,
                    cold_p50,
                    percentile(&ours.cold_ms, 0.99),
                    if ours.requests_per_cold as u64 == ours.first_requests {
                        ours.first_requests.to_string()
                    } else {
                        format!("{} (then {:.0})", ours.first_requests, ours.requests_per_cold)
                    },
                    ours.concurrent_requests,
                    percentile(&ours.warm_ms, 0.5),
                    percentile(&ours.warm_ms, 0.99),
                    ours.cpu_ms_per_cold,
                    ours.rss_mb,
                    ours.bytes,
                    ours.gzip_bytes,
                );
            });
        }
    }
}

/// Serves `count` of the cluster's nodes (pve01, pve02, …) as endpoints, each on its own port
/// with TLS; returns the servers and their addresses.
async fn serve_endpoints(
    api: &SimApi,
    count: usize,
) -> (
    Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    Vec<String>,
) {
    let (servers, addresses) = api.serve_tls_endpoints(count).await.expect("endpoints");
    (servers, addresses.iter().map(|a| a.to_string()).collect())
}

/// The scale goals (issue: 500 nodes / 50,000 guests, peak RSS and cold scrape time): the
/// exporter alone in its own process against a simulator that answers after the latency and
/// nothing else, every scrape cold (cache off, connections closed before it as 30 s between
/// scrapes would), with one and with three endpoints, default flags and without the
/// connection limit. The first scrape has no node list yet; later ones ask the nodes while
/// the inventory comes. Peak RSS is over all of a row's scrapes.
async fn scale(o: &Options) {
    println!(
        "| nodes/guests | latency | endpoints | flags | first scrape ms | later cold scrapes p50 / p99 ms | API requests per scrape | new connections per scrape | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &(nodes, guests) in &o.sizes {
        let answers = Answers::generate(nodes, guests, 1, SystemTime::now());
        for &latency in &o.latencies {
            for endpoints in [1, 3] {
                for flags in ["defaults", "--max-connections-per-endpoint 0"] {
                    let api = SimApi::new(answers.clone(), TOKEN_ID, TOKEN_SECRET);
                    api.set_latency(Duration::from_millis(latency));
                    let (servers, addresses) = serve_endpoints(&api, nodes.min(endpoints)).await;
                    let joined: Vec<String> =
                        addresses.iter().map(|a| format!("https://{a}/")).collect();
                    let args: Vec<String> = match flags {
                        "defaults" => Vec::new(),
                        other => other.split_whitespace().map(str::to_owned).collect(),
                    };
                    let reach = Reach::Flags {
                        endpoint: &joined.join(","),
                    };
                    let (process, url) = start_exporter(&reach, "0", &args);
                    let client = reqwest::Client::builder()
                        .timeout(Duration::from_secs(300))
                        .no_gzip()
                        .build()
                        .expect("client");
                    let all_endpoints = || Stats::total(api.cluster_stats().values());
                    let mut ms = Vec::new();
                    let mut spent = Vec::new();
                    for _ in 0..=o.cold_runs {
                        api.close_idle_connections();
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let before = all_endpoints();
                        ms.push(scrape(&client, &url, false).await.0);
                        spent.push(all_endpoints().since(&before));
                    }
                    let rss = peak_rss_mb(process.pid());
                    drop(process);
                    for server in servers {
                        server.abort();
                    }
                    let first = ms.remove(0);
                    let later = spent.last().copied().unwrap_or_default();
                    let ms = sorted(ms);
                    println!(
                        "| {nodes}/{guests} | {latency} ms | {endpoints} | {flags} | {first:.0} | {:.0} / {:.0} | {} | {} | {rss:.1} |",
                        percentile(&ms, 0.5),
                        percentile(&ms, 0.99),
                        later.requests,
                        later.connections,
                    );
                }
            }
        }
    }
}

/// Every collector, for the "all collectors" rows: `--collector.NAME` for each one the
/// registry has off by default.
fn all_collectors() -> Vec<String> {
    (proxmox_exporter::collectors::REGISTRY.iter())
        .filter(|c| !c.enabled_by_default())
        .map(|c| format!("--collector.{}", c.name()))
        .collect()
}

/// What one row of the realistic table scrapes.
enum Row {
    /// Our `/metrics` with these extra arguments.
    Ours(&'static str, Vec<String>),
    /// Our `/pve`, one target.
    OursPve,
    /// prometheus-pve-exporter's `/pve`, one target.
    Peer,
}

/// The realistic benchmark: a simulator that behaves like pveproxy with its default settings
/// (5 s idle close, 100 requests per connection, close after errors, 3 workers, the proxy hop
/// to the owning node, gzip when asked), three of the cluster's nodes as endpoints, and every
/// scrape starting as one 30 s after the last would: every connection closed (the exporter
/// collects on every scrape: cache 0). Per scrape: time, and on the cluster's side requests,
/// new connections and TLS handshakes per endpoint, bytes sent, pveproxy worker time, hops.
async fn realistic(o: &Options) {
    println!(
        "| nodes/guests | latency | scraped | scrape ms p50 / p99 | API requests: all (per endpoint) | new connections (= TLS handshakes) per endpoint | proxied to another node | bytes sent by pveproxy: all (per endpoint) | pveproxy worker ms: all nodes (the endpoints') | web UI requests meanwhile: ms p50 / p99 | exporter CPU ms | exporter peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    proxmox_exporter::pve::dispatcher::install_crypto_provider();
    for &(nodes, guests) in &o.sizes {
        let answers = Answers::generate(nodes, guests, 1, SystemTime::now());
        for &latency in &o.latencies {
            let mut rows = vec![
                Row::Ours("default collectors", o.exporter_args.clone()),
                Row::Ours(
                    "all collectors",
                    all_collectors()
                        .into_iter()
                        .chain(o.exporter_args.iter().cloned())
                        .collect(),
                ),
            ];
            if o.only_defaults {
                rows.truncate(1);
            }
            if o.pve || o.pve_exporter.is_some() {
                rows.push(Row::OursPve);
            }
            if o.pve_exporter.is_some() {
                rows.push(Row::Peer);
            }
            for row in rows {
                realistic_row(&answers, nodes, guests, latency, &row, o).await;
            }
        }
    }
}

async fn realistic_row(
    answers: &Answers,
    nodes: usize,
    guests: usize,
    latency: u64,
    row: &Row,
    o: &Options,
) {
    let api = SimApi::new(answers.clone(), TOKEN_ID, TOKEN_SECRET);
    api.set_latency(Duration::from_millis(latency));
    api.set_behaviour(Behaviour {
        bandwidth: o.bandwidth,
        ..Behaviour::pveproxy()
    });
    let (servers, addresses) = serve_endpoints(&api, nodes.min(o.endpoints.max(1))).await;
    let endpoints: Vec<String> = addresses.iter().map(|a| format!("https://{a}/")).collect();
    let joined = endpoints.join(",");
    let config = pve_yml();
    // Collecting on every scrape, or keeping answers while scrapes come `interval_ms` apart.
    let cache = match o.interval_ms {
        Some(_) => o.cache_seconds.to_string(),
        None => "0".to_owned(),
    };
    let (process, url, what) = match row {
        Row::Ours(what, args) => {
            let (p, u) = start_exporter(&Reach::Flags { endpoint: &joined }, &cache, args);
            (p, u, format!("`/metrics`, {what}"))
        }
        Row::OursPve => {
            let reach = Reach::Pve {
                config: &config,
                target: &addresses[0],
            };
            let (p, u) = start_exporter(&reach, &cache, &o.exporter_args);
            (p, u, "`/pve`, ours".to_owned())
        }
        Row::Peer => {
            let Some(path) = &o.pve_exporter else { return };
            let (p, u) = start_pve_exporter(path, &addresses[0]);
            (p, u, "`/pve`, prometheus-pve-exporter".to_owned())
        }
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .no_gzip()
        .build()
        .expect("client");
    let runs = match row {
        Row::Peer => o.other_runs,
        _ => o.cold_runs,
    };
    // One scrape first: answers kept longer than a window (subscriptions, snapshots, guest
    // configurations) are then as in most windows.
    scrape(&client, &url, false).await;
    let pids = group_pids(process.pid());
    let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>();
    let cpu0 = cpu(&pids);
    let mut ms = Vec::new();
    let mut ui_ms = Vec::new();
    let mut spent: Vec<Stats> = Vec::new();
    let mut per_endpoint = vec![Stats::default(); addresses.len()];
    let started = Instant::now();
    // A window runs from one scrape's end to the next's: collections ahead of a scrape count.
    let mut before = api.cluster_stats();
    for run in 0..runs {
        match o.interval_ms {
            // Every `interval` (connections closed in between, as pveproxy's idle timeout
            // would); what happened since the last scrape is this window's.
            Some(interval) => {
                let at = started + Duration::from_millis(interval * (run as u64 + 1));
                tokio::time::sleep_until((at - Duration::from_millis(300)).into()).await;
                api.close_idle_connections();
                tokio::time::sleep_until(at.into()).await;
            }
            None => {
                // 30 s later: pveproxy has closed every connection (after 5 s idle).
                api.close_idle_connections();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Someone in the web UI asks the first endpoint for a node's status every 10 ms while
        // the exporter collects: how long they wait shows what the collection does to others.
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ui = tokio::spawn(web_ui_requests(addresses[0].clone(), done.clone()));
        ms.push(scrape(&client, &url, false).await.0);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let (took, ui_cost) = ui.await.expect("web UI requests");
        ui_ms.extend(took);
        let after = api.cluster_stats();
        let window: Vec<(String, Stats)> = after
            .iter()
            .map(|(node, now)| {
                let then = before.get(node).copied().unwrap_or_default();
                let spent = now.since(&then);
                // The web UI request is not the exporter's doing.
                let spent = if node == "pve01" {
                    spent.since(&ui_cost)
                } else {
                    spent
                };
                (node.clone(), spent)
            })
            .collect();
        spent.push(Stats::total(window.iter().map(|(_, s)| s)));
        for (i, sum) in per_endpoint.iter_mut().enumerate() {
            let name = format!("pve{:02}", i + 1);
            if let Some((_, s)) = window.iter().find(|(n, _)| *n == name) {
                *sum = Stats::total([&*sum, s]);
            }
        }
        before = after;
    }
    let pids = group_pids(process.pid());
    let cpu_ms = (cpu(&pids) - cpu0) * 1000.0 / runs as f64;
    let rss: f64 = pids.iter().map(|p| peak_rss_mb(*p)).sum();
    drop(process);
    for server in servers {
        server.abort();
    }
    let total = Stats::total(&spent);
    let per_run = |v: u64| v as f64 / runs as f64;
    let ms = sorted(ms);
    let ui_ms = sorted(ui_ms);
    // Per window, each endpoint's share of one count, "a / b / c".
    let each = |count: fn(&Stats) -> u64, scale: f64| -> String {
        per_endpoint
            .iter()
            .map(|s| format!("{:.0}", per_run(count(s)) / scale))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let handshakes_match = per_endpoint.iter().all(|s| s.connections == s.handshakes);
    println!(
        "| {nodes}/{guests} | {latency} ms | {what} | {:.0} / {:.0} | {:.0} ({}) | {}{} | {:.0} | {:.0} kB ({}) | {:.0} ({}) | {:.0} / {:.0} | {cpu_ms:.0} | {rss:.0} |",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        per_run(total.requests),
        each(|s| s.requests, 1.0),
        each(|s| s.connections, 1.0),
        if handshakes_match {
            ""
        } else {
            " (handshakes differ)"
        },
        per_run(total.proxied),
        per_run(total.bytes_sent) / 1000.0,
        each(|s| s.bytes_sent, 1000.0),
        per_run(total.worker_micros) / 1000.0,
        each(|s| s.worker_micros, 1000.0),
        percentile(&ui_ms, 0.5),
        percentile(&ui_ms, 0.99),
    );
}

/// Web UI requests (a node's status, each on a connection of its own, as a browser tab
/// polling) every 10 ms until `done`: their milliseconds, and what they cost pveproxy (to
/// take out of the window).
async fn web_ui_requests(
    address: String,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<f64>, Stats) {
    let pveproxy = Behaviour::pveproxy();
    let mut took = Vec::new();
    let mut cost = Stats::default();
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .expect("client");
        let started = Instant::now();
        let response = client
            .get(format!("https://{address}/api2/json/nodes/pve01/status"))
            .header(
                "authorization",
                format!("PVEAPIToken={TOKEN_ID}={TOKEN_SECRET}"),
            )
            .send()
            .await
            .expect("web UI request");
        let bytes = response.bytes().await.map_or(0, |b| b.len());
        took.push(started.elapsed().as_secs_f64() * 1000.0);
        let work = pveproxy.tls_handshake + pveproxy.work(bytes);
        let one = Stats {
            requests: 1,
            connections: 1,
            handshakes: 1,
            bytes_sent: bytes as u64,
            worker_micros: u64::try_from(work.as_micros()).unwrap_or(0),
            proxied: 0,
        };
        cost = Stats::total([&cost, &one]);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (took, cost)
}

/// How often `--sweeps` scrapes, and the exporter's cache window.
const INTERVAL: Duration = Duration::from_secs(15);

/// The sweeps' goals (#23): at 500 nodes / 50,000 guests with every collector on and half of
/// the running VMs with an agent, on the pveproxy-like simulator (3 workers per node, the
/// proxy hop, three endpoints, 20 ms latency): the exporter's peak RSS; each node's pveproxy
/// worker time in every 10 s interval, as a share of its 3 workers (the busiest node and
/// interval, during the first sweep and after); the scrape times. Then the same with every
/// agent of one node hung (PVE holding a worker 6 s per call before its own timeout answer).
/// Scrapes every 15 s (cache 15 s) with Prometheus' headers (gzip, 10 s timeout); the sweeps
/// keep their default refresh of 5 minutes: 20 windows per sweep.
async fn sweeps(o: &Options) {
    proxmox_exporter::pve::dispatcher::install_crypto_provider();
    let (nodes, guests) = o.sizes.last().copied().unwrap_or((500, 50_000));
    println!(
        "| nodes/guests | agents | scrape ms: first / p50 / p99 after the first sweep | first sweep: 15 s intervals | API requests per 15 s after it (p50 / max) | busiest node, share of its 3 workers in 10 s: first sweep / after | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|");
    let base = Answers::generate(nodes, guests, 1, SystemTime::now());
    let mut p50s = Vec::new();
    for hung in [None, Some("pve07")] {
        let mut answers = base.clone();
        answers.answer_half_of_the_agents(Duration::from_millis(20), hung);
        let api = SimApi::new(answers, TOKEN_ID, TOKEN_SECRET);
        api.set_behaviour(Behaviour::pveproxy());
        api.set_latency(Duration::from_millis(20));
        let (servers, addresses) = serve_endpoints(&api, 3).await;
        let joined: Vec<String> = addresses.iter().map(|a| format!("https://{a}/")).collect();
        let args: Vec<String> = all_collectors()
            .into_iter()
            .chain(o.exporter_args.iter().cloned())
            .collect();
        let reach = Reach::Flags {
            endpoint: &joined.join(","),
        };
        let (process, url) = start_exporter(&reach, &INTERVAL.as_secs().to_string(), &args);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .no_gzip()
            .build()
            .expect("client");
        // Each node's worker time, every second.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let api = api.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut samples: Vec<(Instant, std::collections::BTreeMap<String, u64>)> =
                    Vec::new();
                loop {
                    let stats = api.cluster_stats();
                    let micros = stats
                        .into_iter()
                        .map(|(n, s)| (n, s.worker_micros))
                        .collect();
                    samples.push((Instant::now(), micros));
                    if samples.len() > 3600 || stop.load(std::sync::atomic::Ordering::SeqCst) {
                        return samples;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        let started = Instant::now();
        let total = |api: &SimApi| Stats::total(api.cluster_stats().values()).requests;
        let mut ms = Vec::new();
        let mut requests = Vec::new();
        let mut first_sweep_done = None;
        let mut last_total = total(&api);
        while started.elapsed() < Duration::from_secs(o.seconds) {
            let at = Instant::now();
            // As Prometheus asks: gzipped, with its scrape timeout (10 s by default).
            let response = client
                .get(&url)
                .header("accept", PROMETHEUS_ACCEPT)
                .header("accept-encoding", "gzip")
                .header("x-prometheus-scrape-timeout-seconds", "10")
                .send()
                .await
                .expect("scrape");
            let _ = response.bytes().await.expect("body");
            ms.push(at.elapsed().as_secs_f64() * 1000.0);
            tokio::time::sleep((at + INTERVAL).saturating_duration_since(Instant::now())).await;
            // Requests in the interval, the sweeps' background work included.
            let now_total = total(&api);
            requests.push(now_total - last_total);
            last_total = now_total;
            // The first sweep is over once an interval asks under a third of the busiest.
            let busiest = requests.iter().copied().max().unwrap_or(0);
            if first_sweep_done.is_none()
                && requests.len() > 1
                && requests[requests.len() - 1] * 3 < busiest
            {
                first_sweep_done = Some(requests.len());
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let samples = sampler.await.unwrap_or_default();
        let rss = peak_rss_mb(process.pid());
        drop(process);
        for server in servers {
            server.abort();
        }
        // The busiest node in any 10 s interval (samples 1 s apart), first sweep and after.
        let first_end =
            started + INTERVAL * u32::try_from(first_sweep_done.unwrap_or(1)).unwrap_or(1);
        let (mut during, mut after) = (0.0f64, 0.0f64);
        for pair in samples.windows(11) {
            let (t0, a) = &pair[0];
            let (t1, b) = &pair[10];
            let span = t1.duration_since(*t0).as_secs_f64() * 1e6 * 3.0;
            let busiest = b
                .iter()
                .map(|(node, micros)| micros.saturating_sub(a.get(node).copied().unwrap_or(0)))
                .max()
                .unwrap_or(0) as f64
                / span;
            if *t0 < first_end {
                during = during.max(busiest);
            } else {
                after = after.max(busiest);
            }
        }
        // Scrapes and intervals after the first sweep.
        let skip = first_sweep_done
            .unwrap_or(1)
            .min(ms.len().saturating_sub(1));
        let first = ms[0];
        let later = sorted(ms[skip..].to_vec());
        let requests = requests[skip.min(requests.len())..].to_vec();
        let counts = sorted(requests.iter().map(|&r| r as f64).collect());
        p50s.push(percentile(&later, 0.5));
        println!(
            "| {nodes}/{guests} | {} | {first:.0} / {:.0} / {:.0} | {} | {:.0} / {:.0} | {:.0} % / {:.0} % | {rss:.1} |",
            match hung {
                None => "half answer".to_owned(),
                Some(node) => format!("half answer, every one of {node} hung"),
            },
            percentile(&later, 0.5),
            percentile(&later, 0.99),
            first_sweep_done.map_or("not over".to_owned(), |n| n.to_string()),
            percentile(&counts, 0.5),
            counts.last().copied().unwrap_or(0.0),
            during * 100.0,
            after * 100.0,
        );
    }
    if let [calm, hung] = p50s[..] {
        println!();
        println!(
            "Scrape time p50 with a hung node: {:+.1} % of the calm run's.",
            (hung / calm - 1.0) * 100.0
        );
    }
}

/// A backup server (`--pbs --sizes 20/500`: datastores / backup groups per datastore, one more
/// datastore in offline maintenance), over TLS with the simulator's latency: the exporter in
/// its own process scraped on `/probe` every 15 s with its default 29 s cache, for `--seconds`
/// (each scrape after the first cache window is cold for the per-window collectors, warm for
/// the groups' 5 minutes). Requests per window beside what natrontech/pbs-exporter asks per
/// scrape for the same data (its source: `/version`, `/status/datastore-usage`,
/// `/nodes/localhost/status` and `/subscription`, and per datastore its namespaces, and per
/// namespace `/admin/datastore/{store}/snapshots`).
async fn pbs(o: &Options) {
    println!(
        "| datastores × groups | latency | first scrape ms | later scrapes p50 / p99 ms | API requests: first window / later windows p50 (max) | natrontech/pbs-exporter per scrape (of them, snapshot listings) | peak RSS MB | exposition bytes |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let dir = std::env::temp_dir().join(format!("pbs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("pbs.yml");
    let (user, token) = TOKEN_ID.split_once('!').expect("token id");
    std::fs::write(
        &config,
        format!(
            "pbs:\n  product: pbs\n  user: {user}\n  token_name: {token}\n  token_value: {TOKEN_SECRET}\n  verify_ssl: false\n"
        ),
    )
    .expect("write pbs.yml");
    for &(datastores, groups) in &o.sizes {
        for &latency in &o.latencies {
            let answers = Answers::generate_pbs(datastores, groups, 1, SystemTime::now());
            // natrontech: 4 + D + one snapshot listing per namespace of each datastore it can
            // open (the offline one answers its namespace request with an error).
            let namespaces: usize = (answers.0.iter())
                .filter(|(path, _)| path.ends_with("/namespace"))
                .filter_map(|(_, answer)| match answer {
                    proxmox_exporter::sim::Answer::Json(body) => {
                        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
                        Some(v["data"].as_array()?.len())
                    }
                    _ => None,
                })
                .sum();
            let stores = datastores.max(2) + 1;
            let theirs = 4 + stores + namespaces;
            let api = SimApi::new_for(
                proxmox_exporter::pve::Product::Pbs,
                answers,
                TOKEN_ID,
                TOKEN_SECRET,
            );
            api.set_latency(Duration::from_millis(latency));
            let (servers, addresses) = serve_endpoints(&api, 1).await;
            let reach = Reach::Pbs {
                config: &config,
                target: &addresses[0],
            };
            let (process, url) = start_exporter(&reach, "29", &o.exporter_args);
            let client = reqwest::Client::new();
            let scrapes = (o.seconds / 15).max(2);
            let mut first_ms = 0.0;
            let mut later = Vec::new();
            let mut windows: Vec<u64> = Vec::new();
            let mut before = api.requests();
            let mut bytes = 0;
            for i in 0..scrapes {
                let started = Instant::now();
                let (ms, size) = scrape(&client, &url, false).await;
                bytes = size;
                if i == 0 {
                    first_ms = ms;
                } else {
                    later.push(ms);
                }
                // A window is two scrapes (29 s cache, 15 s apart): count at its start.
                if i % 2 == 1 {
                    let now = api.requests();
                    windows.push(now - before);
                    before = now;
                }
                tokio::time::sleep(Duration::from_secs(15).saturating_sub(started.elapsed())).await;
            }
            let rss = peak_rss_mb(process.pid());
            drop(process);
            servers.iter().for_each(|s| s.abort());
            let first_window = windows.first().copied().unwrap_or(0);
            let rest = sorted(windows.iter().skip(1).map(|&n| n as f64).collect());
            let later = sorted(later);
            println!(
                "| {datastores} × {groups} | {latency} ms | {first_ms:.0} | {:.0} / {:.0} | {first_window} / {:.0} ({:.0}) | {theirs} ({namespaces}) | {rss:.1} | {bytes} |",
                percentile(&later, 0.5),
                percentile(&later, 0.99),
                percentile(&rest, 0.5),
                rest.last().copied().unwrap_or(f64::NAN),
            );
        }
    }
}
