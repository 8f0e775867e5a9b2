//! Helpers for the integration tests: simulated PVE endpoints on 127.0.0.1 and an exporter
//! wired to them.
#![allow(dead_code)]

pub mod logs;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use proxmox_exporter::collectors::{Enabled, REGISTRY};
use proxmox_exporter::exporter::Exporter;
use proxmox_exporter::http::server;
use proxmox_exporter::pve::{ApiToken, Backoff, Dispatcher, DispatcherConfig};
use proxmox_exporter::sim::{Answer, Answers, SimApi};

pub const TOKEN_ID: &str = "monitoring@pve!exporter";
pub const TOKEN_SECRET: &str = "0d5e1c2a-7f3b-4c9e-a1d2-3b4c5d6e7f80";

/// The snapshot tests' "now": 2026-06-01T00:00:00Z.
pub fn fixed_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

/// How a fake endpoint answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// The registered answer for the path (501 when there is none).
    Serve,
    /// This status for every request.
    Status(u16),
    /// Wait this long, then serve.
    Slow(Duration),
}

/// One simulated endpoint, listening on 127.0.0.1.
pub struct FakeEndpoint {
    pub url: reqwest::Url,
    pub api: SimApi,
}

impl FakeEndpoint {
    /// Serves `bodies` (API path below `/api2/json`, raw JSON body) in `mode`.
    pub async fn start(mode: Mode, bodies: &[(&str, &str)]) -> FakeEndpoint {
        let answers = bodies
            .iter()
            .map(|(p, b)| ((*p).to_owned(), Answer::Json(Bytes::from(b.to_string()))))
            .collect();
        let endpoint = FakeEndpoint::serve(Answers(answers)).await;
        endpoint.set_mode(mode);
        endpoint
    }

    /// Serves a fixture scenario directory.
    pub async fn scenario(dir: &Path) -> FakeEndpoint {
        FakeEndpoint::serve(Answers::from_dir(dir).unwrap()).await
    }

    pub async fn serve(answers: Answers) -> FakeEndpoint {
        let api = SimApi::new(answers, TOKEN_ID, TOKEN_SECRET);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(api.clone().serve(listener));
        FakeEndpoint {
            url: reqwest::Url::parse(&format!("http://{addr}/")).unwrap(),
            api,
        }
    }

    /// `127.0.0.1:PORT`: this endpoint as a `/pve` or `/probe` target (a module with
    /// `scheme: http` reaches it).
    pub fn target(&self) -> String {
        format!(
            "{}:{}",
            self.url.host_str().unwrap_or(""),
            self.url.port().unwrap_or(0)
        )
    }

    pub fn hits(&self) -> usize {
        self.api.requests() as usize
    }

    pub fn set_mode(&self, mode: Mode) {
        let (status, latency) = match mode {
            Mode::Serve => (None, Duration::ZERO),
            Mode::Status(code) => (Some(code), Duration::ZERO),
            Mode::Slow(pause) => (None, pause),
        };
        self.api.set_status_override(status);
        self.api.set_latency(latency);
    }

    /// `https://` to this plain-HTTP listener: every TLS handshake fails.
    pub fn as_https(&self) -> reqwest::Url {
        let mut url = self.url.clone();
        url.set_scheme("https").unwrap();
        url
    }
}

/// A URL on which nothing listens: connections are refused.
pub async fn dead_url() -> reqwest::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    reqwest::Url::parse(&format!("http://{addr}/")).unwrap()
}

/// A dispatcher configuration for these endpoints with the fake's token.
pub fn config(endpoints: Vec<reqwest::Url>) -> DispatcherConfig {
    DispatcherConfig {
        endpoints,
        credentials: ApiToken {
            id: TOKEN_ID.into(),
            secret: TOKEN_SECRET.into(),
        }
        .into(),
        product: Default::default(),
        insecure: false,
        extra_roots: Vec::new(),
        timeout: Duration::from_secs(5),
        backoff: Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(2),
        },
        max_connections_per_endpoint: None,
        gzip: false,
        secret_file: None,
    }
}

/// A running exporter (the real server) over `endpoints`; returns its `/metrics` URL.
pub async fn exporter(endpoints: Vec<reqwest::Url>, cache: Duration) -> (String, Arc<Exporter>) {
    exporter_with(endpoints, cache, proxmox_exporter::collectors::defaults()).await
}

/// Every collector of the registry, with its default refresh.
pub fn all_collectors() -> Vec<Enabled> {
    REGISTRY
        .iter()
        .map(|&collector| Enabled {
            collector,
            refresh: collector.refresh(),
        })
        .collect()
}

/// The collector named `name` alone, refreshed as `refresh` (or by default).
pub fn only(name: &str, refresh: Option<Duration>) -> Vec<Enabled> {
    let collector = proxmox_exporter::collectors::find(name).unwrap();
    vec![Enabled {
        collector,
        refresh: refresh.or(collector.refresh()),
    }]
}

/// [`exporter`] running `collectors`.
pub async fn exporter_with(
    endpoints: Vec<reqwest::Url>,
    cache: Duration,
    collectors: Vec<Enabled>,
) -> (String, Arc<Exporter>) {
    let dispatcher = Arc::new(Dispatcher::new(&config(endpoints)).unwrap());
    let exporter = Arc::new(
        Exporter::new(dispatcher, cache, 32)
            .with_clock(fixed_now)
            .with_collectors(collectors),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(server::run(
        listener,
        exporter.clone(),
        std::future::pending(),
    ));
    (url, exporter)
}

/// The `proxmox-exporter` binary, running; killed when dropped.
pub struct RunningExporter {
    pub child: std::process::Child,
    /// `host:port` it serves on.
    pub address: String,
    /// Its log lines up to and including `serving metrics`.
    pub startup: Vec<String>,
    /// Its later log lines are sent here.
    pub logs: std::sync::mpsc::Receiver<String>,
}

impl Drop for RunningExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the exporter binary on 127.0.0.1 with `args` and `envs` (and nothing else from
/// the environment), and waits for its `serving metrics` line.
pub fn run_exporter(args: &[&str], envs: &[(&str, &str)]) -> RunningExporter {
    use std::io::BufRead;
    // The test's own reqwest clients need it.
    proxmox_exporter::pve::dispatcher::install_crypto_provider();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_proxmox-exporter"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PROXMOX_EXPORTER_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    let mut child = command
        .args(["--server-port", "0", "--server-address", "127.0.0.1"])
        .args(args)
        .envs(envs.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, logs) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut running = RunningExporter {
        child,
        address: String::new(),
        startup: Vec::new(),
        logs,
    };
    while running.address.is_empty() {
        let line = running
            .logs
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no `serving metrics` line; logs: {:?}", running.startup));
        if line.contains("serving metrics") {
            let at = line.find("address=").unwrap() + "address=".len();
            running.address = line[at..].split_whitespace().next().unwrap().to_owned();
        }
        running.startup.push(line);
    }
    running
}

/// Metric family name → (type, label names), from every snapshot in `snapshots/`.
pub type Families = BTreeMap<String, (String, BTreeSet<String>)>;

pub fn snapshot_families() -> Families {
    let mut families = Families::new();
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots")).unwrap()
    {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("snap") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                families.entry(name.to_owned()).or_default().0 = kind.to_owned();
            } else if let Some((series, _)) = line.split_once('{') {
                if line.starts_with('#') || !line.starts_with("proxmox_") {
                    continue;
                }
                let labels = line[series.len() + 1..].split('}').next().unwrap();
                let names = labels
                    .split("\",")
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(name, _)| name.to_owned());
                families
                    .entry(series.to_owned())
                    .or_default()
                    .1
                    .extend(names);
            }
        }
    }
    families
}

/// `/pve` and `/probe` targets of the modules in `yaml` (relative files from `.`): at most
/// `capacity`, dropped after `idle`, the default collectors on `/probe`.
pub fn targets(
    yaml: &str,
    capacity: usize,
    idle: Duration,
) -> Arc<proxmox_exporter::exporter::targets::Targets> {
    targets_with(yaml, capacity, idle, Duration::from_secs(29))
}

/// [`targets`] whose collections last `cache`.
pub fn targets_with(
    yaml: &str,
    capacity: usize,
    idle: Duration,
    cache: Duration,
) -> Arc<proxmox_exporter::exporter::targets::Targets> {
    use proxmox_exporter::exporter::targets::{TargetSettings, Targets};
    let modules = proxmox_exporter::compat::modules::Modules::parse(yaml, Path::new(".")).unwrap();
    Arc::new(Targets::new(
        modules,
        TargetSettings {
            cache_duration: cache,
            probe_collectors: proxmox_exporter::collectors::defaults(),
            pbs_collectors: proxmox_exporter::collectors::pbs::defaults(),
            max_concurrent_requests: 100,
            requests_per_node: proxmox_exporter::config::DEFAULT_MAX_GUEST_REQUESTS_PER_NODE,
            max_connections_per_endpoint:
                proxmox_exporter::config::DEFAULT_MAX_CONNECTIONS_PER_ENDPOINT,
            gzip: proxmox_exporter::config::DEFAULT_PROXMOX_API_GZIP,
            extra_roots: Vec::new(),
            capacity,
            idle,
        },
    ))
}

/// Serves `targets` (and no cluster of its own) on a loopback port; its base URL.
pub async fn serve_targets(targets: Arc<proxmox_exporter::exporter::targets::Targets>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let served = server::Served {
        targets: Some(targets),
        ..server::Served::default()
    };
    tokio::spawn(server::serve(
        listener,
        served,
        Default::default(),
        std::future::pending(),
    ));
    format!("http://{address}")
}

/// The status and body of a `GET`.
pub async fn get_text(url: &str) -> (u16, String) {
    // reqwest is built without a default TLS provider: the exporter installs one, and a test
    // may ask before the exporter has made its first client.
    proxmox_exporter::pve::dispatcher::install_crypto_provider();
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `GET /version` through `dispatcher`: whether it answered.
pub async fn version(dispatcher: &Dispatcher) -> Result<(), proxmox_exporter::pve::ApiError> {
    dispatcher
        .call("/version", |c| async move { c.get_version().send().await })
        .await
        .map(|_| ())
}

/// Requests per window a collector's declared cost comes to, for N online nodes, G guests,
/// S backup storages, V running VMs and D disks (the README's letters).
pub fn declared_requests(
    cost: proxmox_exporter::collectors::Cost,
    (n, g, s, v, d): (u64, u64, u64, u64, u64),
) -> u64 {
    use proxmox_exporter::collectors::Cost;
    match cost {
        Cost::Nothing => 0,
        Cost::One => 1,
        Cost::PerNode => n,
        Cost::TwoPerNode => 2 * n,
        Cost::PerGuest => g,
        Cost::PerRunningVm => v,
        Cost::BackupStorages => 2 + s,
        Cost::PerDisk => n + d,
        Cost::Fixed(k) => u64::from(k),
        Cost::PerNamespace => panic!("a backup server's cost: not in PVE's letters"),
    }
}

/// The disks a `disks/list` answer names (those with a device path): SMART asks each.
pub fn listed_disks(answer: &serde_json::Value) -> u64 {
    (answer["data"].as_array().into_iter().flatten())
        .filter(|d| d["devpath"].as_str().is_some_and(|p| !p.is_empty()))
        .count() as u64
}
