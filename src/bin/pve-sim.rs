//! `pve-sim`: a simulated Proxmox VE API for trying the exporter and for benchmarks.
//! A generated cluster (the same for the same seed), HTTPS with a self-signed certificate,
//! token authentication, latency and faults on demand. Loopback only by default.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;
use proxmox_exporter::sim::{Answers, SimApi, self_signed};

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
    let mut answers = Answers::generate_with_offline(
        cli.nodes,
        cli.guests,
        cli.seed,
        SystemTime::now(),
        cli.offline,
        Duration::from_millis(cli.offline_delay_ms),
    );
    for fault in &cli.faults {
        let (path, kind) = fault
            .split_once('=')
            .ok_or_else(|| format!("--fault {fault}: expected PATH=KIND"))?;
        let answer = answers
            .fault(path, kind)
            .map_err(|e| format!("--fault {fault}: {e}"))?;
        answers.0.insert(path.to_owned(), answer);
    }
    let api = SimApi::new(answers, &cli.token_id, &cli.token_secret);
    api.set_latency(Duration::from_millis(cli.latency_ms));
    api.set_status_override(cli.status);
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if cli.plain { "http" } else { "https" };
    println!(
        "pve-sim: {} nodes ({} offline), {} guests at {scheme}://{address}/ (token {})",
        cli.nodes, cli.offline, cli.guests, cli.token_id
    );
    let served = if cli.plain {
        api.serve(listener).await
    } else {
        api.serve_tls(listener, self_signed()?).await
    };
    served.map_err(|e| e.to_string())
}
