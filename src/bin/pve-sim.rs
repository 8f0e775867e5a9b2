//! `pve-sim`: a simulated Proxmox VE API for trying the exporter and for benchmarks.
//! A generated cluster (the same for the same seed), HTTPS with a self-signed certificate,
//! token authentication, latency and faults on demand. Loopback only by default.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;
use proxmox_exporter::sim::{Answers, Behaviour, SimApi, self_signed};

#[derive(Parser)]
#[command(version, about = "A simulated Proxmox VE API")]
struct Cli {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Guests (VMs and containers) spread over the nodes.
    #[arg(long, default_value_t = 30)]
    guests: usize,
    /// Seed of the generated cluster.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8006")]
    listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    plain: bool,
    /// Milliseconds every answer waits first.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Token id clients must send.
    #[arg(long, default_value = "monitoring@pve!exporter")]
    token_id: String,
    /// Token secret clients must send.
    #[arg(long, default_value = "sim-secret")]
    token_secret: String,
    /// How many nodes are offline (the last ones); their paths answer 595.
    #[arg(long, default_value_t = 0)]
    offline: usize,
    /// Milliseconds before an offline node's 595.
    #[arg(long, default_value_t = 3000)]
    offline_delay_ms: u64,
    /// Answer every request with this status (401, 403, 500, …).
    #[arg(long)]
    status: Option<u16>,
    /// A fault on one path, as PATH=KIND; KIND is an HTTP status, `html`, `truncated` or
    /// `slow:MILLISECONDS`. Repeatable. Example: /nodes/pve01/disks/list=500
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Play a Proxmox Backup Server instead, with this many datastores in use (and one in
    /// offline maintenance) of --pbs-groups backup groups each; it takes
    /// `PBSAPIToken=ID:SECRET`. Listen on port 8007 to look like one.
    #[arg(long, value_name = "DATASTORES")]
    pbs: Option<usize>,
    /// Backup groups per datastore, with --pbs.
    #[arg(long, default_value_t = 40)]
    pbs_groups: usize,
    /// Serve this many nodes' endpoints (pve01, pve02, …), each on its own port: the next
    /// ports after --listen's, or free ones when its port is 0.
    #[arg(long, default_value_t = 1)]
    endpoints: usize,
    #[command(flatten)]
    behaviour: BehaviourArgs,
}

/// How the endpoints treat connections and requests: nothing of pveproxy's by default,
/// all of it with --pveproxy; each setting alone overrides.
#[derive(clap::Args)]
struct BehaviourArgs {
    /// Behave like pveproxy with its default settings (5 s idle close, 100 requests per
    /// connection, close after errors, gzip, 3 workers, proxy hop, 401 after 3 s).
    #[arg(long)]
    pveproxy: bool,
    /// Close a keep-alive connection after this many milliseconds without a request (0: never).
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,
    /// Close a connection after this many requests (0: never).
    #[arg(long, value_name = "N")]
    max_requests_per_connection: Option<u32>,
    /// Close the connection after an answer with status 400 or more.
    #[arg(long, value_name = "BOOL")]
    close_after_error: Option<bool>,
    /// Gzip answers over 1 KiB when the client accepts gzip.
    #[arg(long, value_name = "BOOL")]
    gzip: Option<bool>,
    /// Requests each node works on at once (0: no limit).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// A worker's time per request, in microseconds.
    #[arg(long, value_name = "µS")]
    service_time_us: Option<u64>,
    /// A worker's time per KiB of answer, in microseconds.
    #[arg(long, value_name = "µS")]
    service_per_kib_us: Option<u64>,
    /// Milliseconds of the hop to the owning node for another node's `/nodes/{node}/…`
    /// (without it and --pveproxy: every node's answers are local).
    #[arg(long, value_name = "MS")]
    proxy_hop_ms: Option<u64>,
    /// A worker's time per TLS handshake, in microseconds.
    #[arg(long, value_name = "µS")]
    tls_handshake_us: Option<u64>,
    /// Milliseconds before a 401.
    #[arg(long, value_name = "MS")]
    unauthorized_delay_ms: Option<u64>,
    /// Bytes per second each endpoint's answers share (0: unlimited).
    #[arg(long, value_name = "BYTES")]
    bandwidth: Option<u64>,
}

impl BehaviourArgs {
    fn behaviour(&self) -> Behaviour {
        let mut b = if self.pveproxy {
            Behaviour::pveproxy()
        } else {
            Behaviour::default()
        };
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        if let Some(v) = self.idle_timeout_ms {
            b.idle_timeout = (v > 0).then(|| ms(v));
        }
        if let Some(v) = self.max_requests_per_connection {
            b.max_requests_per_connection = (v > 0).then_some(v);
        }
        if let Some(v) = self.close_after_error {
            b.close_after_error = v;
        }
        if let Some(v) = self.gzip {
            b.gzip = v;
        }
        if let Some(v) = self.workers {
            b.workers = (v > 0).then_some(v);
        }
        if let Some(v) = self.service_time_us {
            b.service_time = us(v);
        }
        if let Some(v) = self.service_per_kib_us {
            b.service_per_kib = us(v);
        }
        if let Some(v) = self.proxy_hop_ms {
            b.proxy_hop = Some(ms(v));
        }
        if let Some(v) = self.tls_handshake_us {
            b.tls_handshake = us(v);
        }
        if let Some(v) = self.unauthorized_delay_ms {
            b.unauthorized_delay = ms(v);
        }
        if let Some(v) = self.bandwidth {
            b.bandwidth = (v > 0).then_some(v);
        }
        b
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pve-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pve-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let mut answers = match cli.pbs {
        Some(datastores) => {
            Answers::generate_pbs(datastores, cli.pbs_groups, cli.seed, SystemTime::now())
        }
        None => Answers::generate_with_offline(
            cli.nodes,
            cli.guests,
            cli.seed,
            SystemTime::now(),
            cli.offline,
            Duration::from_millis(cli.offline_delay_ms),
        ),
    };
    for fault in &cli.faults {
        let (path, kind) = fault
            .split_once('=')
            .ok_or_else(|| format!("--fault {fault}: expected PATH=KIND"))?;
        let answer = answers
            .fault(path, kind)
            .map_err(|e| format!("--fault {fault}: {e}"))?;
        answers.0.insert(path.to_owned(), answer);
    }
    let product = match cli.pbs {
        Some(_) => proxmox_exporter::pve::Product::Pbs,
        None => proxmox_exporter::pve::Product::Pve,
    };
    let api = SimApi::new_for(product, answers, &cli.token_id, &cli.token_secret);
    api.set_latency(Duration::from_millis(cli.latency_ms));
    api.set_status_override(cli.status);
    api.set_behaviour(cli.behaviour.behaviour());
    let scheme = if cli.plain { "http" } else { "https" };
    let mut served = tokio::task::JoinSet::new();
    for i in 0..cli.endpoints.clamp(1, cli.nodes.max(1)) {
        let endpoint = if i == 0 {
            api.clone()
        } else {
            api.endpoint(&format!("pve{:02}", i + 1))
        };
        let mut at = cli.listen;
        if at.port() != 0 {
            let port = u16::try_from(usize::from(at.port()) + i)
                .map_err(|_| format!("--listen {}: no port for endpoint {}", cli.listen, i + 1))?;
            at.set_port(port);
        }
        let listener = tokio::net::TcpListener::bind(at)
            .await
            .map_err(|e| format!("cannot listen on {at}: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        println!(
            "pve-sim: {} nodes ({} offline), {} guests at {scheme}://{address}/ (node {}, token {})",
            cli.nodes,
            cli.offline,
            cli.guests,
            endpoint.node().unwrap_or("?"),
            cli.token_id
        );
        if cli.plain {
            served.spawn(endpoint.serve(listener));
        } else {
            served.spawn(endpoint.serve_tls(listener, self_signed()?));
        }
    }
    match served.join_next().await {
        Some(Ok(result)) => result.map_err(|e| e.to_string()),
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(()),
    }
}
