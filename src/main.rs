//! `proxmox-exporter`: flags and environment → configuration → the server.

use std::process::ExitCode;
use std::sync::Arc;

use proxmox_exporter::compat::modules::Modules;
use proxmox_exporter::config::{Cli, Command, Reloader};
use proxmox_exporter::exporter::Exporter;
use proxmox_exporter::exporter::reloads::Reloads;
use proxmox_exporter::exporter::targets::{TargetSettings, Targets};
use proxmox_exporter::http::server;
use proxmox_exporter::http::web::WebHandle;
use proxmox_exporter::pve::{Dispatcher, Product};
use proxmox_exporter::sim::{Answers, SimApi};
use proxmox_exporter::telemetry;
use secrecy::ExposeSecret;

/// jemalloc, set up by [`MALLOC_CONF`] (see `malloc.rs` in the library for why).
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The settings jemalloc reads before `main`, under the symbol name tikv-jemalloc-sys gives
/// it; `_RJEM_MALLOC_CONF` in the environment overrides any of them.
#[cfg(unix)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: Option<&'static std::ffi::c_char> =
    // SAFETY: the pointer is to the first byte of a static C string.
    Some(unsafe { &*proxmox_exporter::malloc::SETTINGS.as_ptr() });

fn main() -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("proxmox-exporter: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let mut cli = Cli::parse_from_env();
    let command = cli.command.take();
    let mut demo_pbs = None;
    if cli.demo {
        match start_demo_pbs().await {
            Ok(host) => demo_pbs = Some(host),
            Err(e) => {
                eprintln!("proxmox-exporter: cannot start the simulated backup server: {e}");
                return ExitCode::FAILURE;
            }
        }
        match start_demo().await {
            Ok(endpoint) => {
                cli.proxmox_endpoints = vec![endpoint];
                cli.proxmox_token_id = Some(DEMO_TOKEN_ID.into());
                cli.proxmox_token = Some(DEMO_SECRET.into());
            }
            Err(e) => {
                eprintln!("proxmox-exporter: cannot start the simulated cluster: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut config = match cli.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("proxmox-exporter: {e}");
            return ExitCode::from(2);
        }
    };
    if demo_pbs.is_some() {
        match demo_pbs_module() {
            Ok(demo) => {
                let modules = config.modules.get_or_insert_with(Default::default);
                modules.modules.extend(demo.modules);
            }
            Err(e) => {
                eprintln!("proxmox-exporter: the simulated backup server's module: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    telemetry::init(config.log_level);
    let module_warnings = config.modules.iter().flat_map(|m| &m.warnings);
    for warning in config.warnings.iter().chain(module_warnings) {
        tracing::warn!("{warning}");
    }
    let dispatcher = match config.dispatcher.as_ref().map(Dispatcher::new).transpose() {
        Ok(d) => d.map(Arc::new),
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the Proxmox API client");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Record { out }) = command {
        let (Some(dispatcher), Some(settings)) = (&dispatcher, &config.dispatcher) else {
            eprintln!("proxmox-exporter: record needs --proxmox-endpoints and a token");
            return ExitCode::from(2);
        };
        let secret = settings.credentials.secret().expose_secret().to_owned();
        return match proxmox_exporter::record::record(dispatcher, &out, &secret).await {
            Ok(files) => {
                eprintln!(
                    "proxmox-exporter: recorded {} answers in {}",
                    files.len(),
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("proxmox-exporter: record: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(address = %config.listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().unwrap_or(config.listen);
    let scheme = if config.web.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let collectors: Vec<&str> = config
        .collectors
        .iter()
        .map(|e| e.collector.name())
        .collect();
    let modules: Vec<&str> = config
        .modules
        .iter()
        .flat_map(|m| m.modules.keys().map(String::as_str))
        .collect();
    tracing::info!(
        %address,
        scheme,
        basic_auth = !config.web.users.is_empty(),
        endpoints = ?dispatcher.as_ref().map(|d| d.endpoint_labels()),
        cache_seconds = config.cache_duration.as_secs_f64(),
        ?collectors,
        ?modules,
        "serving metrics at /metrics{}",
        if modules.is_empty() { "" } else { ", /pve and /probe" }
    );
    if let Some(host) = &demo_pbs {
        // Listening on every address: the loopback one is sure to reach it.
        let mut reach = address;
        if reach.ip().is_unspecified() {
            reach.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        eprintln!(
            "proxmox-exporter: --demo: its backup server's metrics: \
             {scheme}://{reach}/probe?module={DEMO_PBS_MODULE}&target={host}"
        );
    }
    let reloads = Arc::new(Reloads::new(std::time::SystemTime::now()));
    let backup_server = (config.dispatcher.as_ref()).is_some_and(|d| d.product == Product::Pbs);
    let exporter = dispatcher.map(|dispatcher| {
        let exporter = Exporter::new(
            dispatcher,
            config.cache_duration,
            config.max_concurrent_requests,
        )
        .with_reloads(reloads.clone());
        // `--pbs-endpoints`: a backup server's collectors, without PVE's inventory.
        Arc::new(if backup_server {
            exporter
                .with_collectors(config.pbs_collectors.clone())
                .without_inventory()
        } else {
            exporter
                .with_collectors(config.collectors.clone())
                .with_requests_per_node(config.max_guest_requests_per_node)
        })
    });
    if let Some(exporter) = exporter.as_ref().filter(|_| config.collect_ahead) {
        exporter.collect_ahead(AHEAD_IDLE_WINDOWS);
    }
    let targets = config.modules.clone().map(|modules| {
        Arc::new(Targets::new(
            modules,
            TargetSettings {
                cache_duration: config.cache_duration,
                probe_collectors: config.collectors.clone(),
                pbs_collectors: config.pbs_collectors.clone(),
                max_concurrent_requests: config.max_concurrent_requests,
                requests_per_node: config.max_guest_requests_per_node,
                max_connections_per_endpoint: config.max_connections_per_endpoint,
                gzip: config.gzip,
                extra_roots: config.extra_roots.clone(),
                capacity: MAX_TARGETS,
                idle: TARGET_IDLE,
            },
        ))
    });
    let web = WebHandle::new(config.web.clone());
    let reloader = Arc::new(Reloader {
        sources: config.reload.clone(),
        targets: targets.clone(),
        web: web.clone(),
        reloads: reloads.clone(),
    });
    #[cfg(unix)]
    {
        let reloader = reloader.clone();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        let reloader = reloader.clone();
                        let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP cannot be caught: reload with POST /-/reload")
            }
        }
    }
    let reload: Option<server::Reload> = config.lifecycle.then(|| {
        let reloader = reloader.clone();
        Arc::new(move || reloader.reload()) as server::Reload
    });
    let served = server::Served {
        exporter,
        targets,
        reload,
        reloads: Some(reloads),
    };
    match server::serve_live(listener, served, web, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// With `--collect-ahead`, collecting stops after this many scrape intervals without a scrape.
const AHEAD_IDLE_WINDOWS: u32 = 3;

/// Targets of `/pve` and `/probe` kept at once.
const MAX_TARGETS: usize = 1000;
/// A target not scraped for this long is dropped (ten scrapes at a 1-minute interval).
const TARGET_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

const DEMO_TOKEN_ID: &str = "demo@pve!exporter";
const DEMO_SECRET: &str = "demo-secret";

/// Starts a simulated 3-node cluster on a loopback port; returns its endpoint URL.
async fn start_demo() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}/", listener.local_addr()?);
    let answers = Answers::generate(3, 30, 1, std::time::SystemTime::now());
    let api = SimApi::new(answers, DEMO_TOKEN_ID, DEMO_SECRET);
    tokio::spawn(api.serve(listener));
    eprintln!("proxmox-exporter: --demo: a simulated 3-node cluster answers at {endpoint}");
    Ok(endpoint)
}

/// The module `--demo` adds for its simulated backup server.
const DEMO_PBS_MODULE: &str = "demo-pbs";
const DEMO_PBS_TOKEN_ID: &str = "demo@pbs!exporter";

/// Starts a simulated backup server on a loopback port; returns its `host:port`.
async fn start_demo_pbs() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let host = listener.local_addr()?.to_string();
    let answers = Answers::generate_pbs(3, 40, 1, std::time::SystemTime::now());
    let api = SimApi::new_for(Product::Pbs, answers, DEMO_PBS_TOKEN_ID, DEMO_SECRET);
    tokio::spawn(api.serve(listener));
    Ok(host)
}

/// The module that reaches the simulated backup server, on loopback only.
fn demo_pbs_module() -> Result<Modules, String> {
    let (user, token) = DEMO_PBS_TOKEN_ID.split_once('!').unwrap_or(("", ""));
    let yaml = format!(
        "{DEMO_PBS_MODULE}:\n  product: pbs\n  scheme: http\n  user: {user}\n  \
         token_name: {token}\n  token_value: {DEMO_SECRET}\n  allowed_targets: [127.0.0.1]\n"
    );
    Modules::parse(&yaml, std::path::Path::new("."))
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
