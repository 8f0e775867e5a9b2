//! Command-line flags and `PROXMOX_EXPORTER_*` variables (a flag wins over its variable), and
//! their check into a [`Config`]. Every bad value is refused at start with the setting's name.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use secrecy::{ExposeSecret, SecretString};

use crate::collectors::{Enabled, every_collector};
use crate::pve::{ApiToken, Backoff, DispatcherConfig};

/// Prometheus exporter for Proxmox VE clusters.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "PROXMOX_EXPORTER_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Accept any TLS certificate from the Proxmox API (self-signed ones included).
    #[arg(
        long,
        env = "PROXMOX_EXPORTER_PROXMOX_API_INSECURE",
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub proxmox_api_insecure: bool,

    /// Proxmox API endpoints, comma separated (e.g. https://pve1:8006/,https://pve2:8006/).
    #[arg(
        long,
        env = "PROXMOX_EXPORTER_PROXMOX_ENDPOINTS",
        value_delimiter = ','
    )]
    pub proxmox_endpoints: Vec<String>,

    /// Secret of the Proxmox API token.
    #[arg(
        long,
        env = "PROXMOX_EXPORTER_PROXMOX_TOKEN",
        hide_env_values = true,
        value_parser = secret
    )]
    pub proxmox_token: Option<SecretString>,

    /// File holding the token secret (Docker, Kubernetes or systemd secrets), instead of
    /// --proxmox-token.
    #[arg(long, env = "PROXMOX_EXPORTER_PROXMOX_TOKEN_FILE")]
    pub proxmox_token_file: Option<std::path::PathBuf>,

    /// PEM file with certificates to trust for the API, such as the cluster's CA
    /// (/etc/pve/pve-root-ca.pem), instead of turning verification off.
    #[arg(long, env = "PROXMOX_EXPORTER_PROXMOX_CA_FILE")]
    pub proxmox_ca_file: Option<std::path::PathBuf>,

    /// Id of the Proxmox API token, as USER@REALM!TOKENID (e.g. monitoring@pve!exporter).
    #[arg(long, env = "PROXMOX_EXPORTER_PROXMOX_TOKEN_ID")]
    pub proxmox_token_id: Option<String>,

    /// A Proxmox Backup Server's API endpoints, comma separated (e.g. https://pbs1:8007/),
    /// served on /metrics instead of a PVE cluster (one exporter per backup server; for
    /// several, use --config.file modules with `product: pbs`).
    #[arg(long, env = "PROXMOX_EXPORTER_PBS_ENDPOINTS", value_delimiter = ',')]
    pub pbs_endpoints: Vec<String>,

    /// Id of the backup server's API token, as USER@REALM!TOKENID (e.g. monitoring@pbs!exporter).
    #[arg(long, env = "PROXMOX_EXPORTER_PBS_TOKEN_ID")]
    pub pbs_token_id: Option<String>,

    /// Secret of the backup server's API token.
    #[arg(
        long,
        env = "PROXMOX_EXPORTER_PBS_TOKEN",
        hide_env_values = true,
        value_parser = secret
    )]
    pub pbs_token: Option<SecretString>,

    /// File holding the backup server's token secret, instead of --pbs-token.
    #[arg(long, env = "PROXMOX_EXPORTER_PBS_TOKEN_FILE")]
    pub pbs_token_file: Option<std::path::PathBuf>,

    /// Accept any TLS certificate from the backup server (self-signed ones included).
    #[arg(
        long,
        env = "PROXMOX_EXPORTER_PBS_API_INSECURE",
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub pbs_api_insecure: bool,

    /// Port the metrics server listens on.
    #[arg(long, env = "PROXMOX_EXPORTER_SERVER_PORT", default_value = "8080")]
    pub server_port: String,

    /// Web configuration file (Prometheus exporter-toolkit format): TLS and basic
    /// authentication for the metrics server.
    #[arg(long = "web.config.file", env = "PROXMOX_EXPORTER_WEB_CONFIG_FILE")]
    pub web_config_file: Option<std::path::PathBuf>,

    /// Allow `POST /-/reload` (re-read --config.file and --web.config.file), as Prometheus'
    /// flag of the same name does. SIGHUP reloads either way.
    #[arg(
        long = "web.enable-lifecycle",
        env = "PROXMOX_EXPORTER_WEB_ENABLE_LIFECYCLE",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub web_enable_lifecycle: Option<bool>,

    /// Address the metrics server listens on.
    #[arg(
        long,
        env = "PROXMOX_EXPORTER_SERVER_ADDRESS",
        default_value = "0.0.0.0"
    )]
    pub server_address: String,

    /// How long API answers are reused, in seconds (fractions allowed): scrapes within this
    /// window cost no API request. Keep it below the scrape interval.
    #[arg(long, env = "PROXMOX_EXPORTER_CACHE_DURATION", default_value = "29")]
    pub cache_duration: String,

    /// Upper bound on one API request, in seconds.
    #[arg(long, env = "PROXMOX_EXPORTER_API_TIMEOUT", default_value = "10")]
    pub api_timeout: String,

    /// Run against a built-in simulated cluster (3 nodes, 30 guests) instead of a real one:
    /// no endpoint or token needed.
    #[arg(long)]
    pub demo: bool,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// The `--collector.*` settings; filled by [`Cli::parse_from_env`] (they are made for each
    /// collector of the registry, so derive cannot declare them).
    #[arg(skip)]
    pub collectors: CollectorFlags,

    /// prometheus-pve-exporter's configuration file (pve.yml): modules of credentials for
    /// /pve?target=HOST&module=NAME and /probe?target=HOST&module=NAME. Without it, the PVE_USER,
    /// PVE_TOKEN_NAME, PVE_TOKEN_VALUE, PVE_PASSWORD, PVE_VERIFY_SSL and PVE_MODULE variables
    /// make one module, as for that exporter.
    #[arg(long = "config.file", env = "PROXMOX_EXPORTER_CONFIG_FILE")]
    pub config_file: Option<std::path::PathBuf>,

    /// The targets the configuration file's modules may be used with, for modules without
    /// their own allowed_targets: hosts (pve1, pve1:8006), patterns (*.example.com) and
    /// address ranges (10.0.0.0/8), comma separated. Without any list, any target.
    #[arg(
        long = "allowed-targets",
        env = "PROXMOX_EXPORTER_ALLOWED_TARGETS",
        value_delimiter = ','
    )]
    pub allowed_targets: Vec<String>,

    /// The `PVE_*` variables; filled by [`Cli::try_parse_with`].
    #[arg(skip)]
    pub pve_variables: Vec<(String, String)>,

    /// How many API requests may be under way at once during a collection. Default: 50 for
    /// each enabled collector that asks every node or guest, at least 100 (100 with the
    /// default collectors: 50 nodes in one round).
    #[arg(long, env = "PROXMOX_EXPORTER_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<String>,

    /// How many requests of the collectors that ask per guest or per storage (`snapshots`,
    /// `backup`, `guest_filesystems`) may be under way at once on one node: each holds one of
    /// the node's three pveproxy workers. Default 1.
    #[arg(
        long,
        env = "PROXMOX_EXPORTER_MAX_GUEST_REQUESTS_PER_NODE",
        value_name = "N"
    )]
    pub max_guest_requests_per_node: Option<String>,

    /// How many connections (requests under way at once) one endpoint is given; 0 for no
    /// limit. pveproxy serves with 3 workers and every new connection costs it a TLS
    /// handshake (BENCHMARKS.md has the measurements behind the default).
    #[arg(
        long,
        env = "PROXMOX_EXPORTER_MAX_CONNECTIONS_PER_ENDPOINT",
        value_name = "N"
    )]
    pub max_connections_per_endpoint: Option<String>,

    /// Ask the API for gzipped answers: fewer bytes on the wire, more CPU for pveproxy
    /// (BENCHMARKS.md has the measurements behind the default).
    #[arg(
        long,
        env = "PROXMOX_EXPORTER_PROXMOX_API_GZIP",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub proxmox_api_gzip: Option<bool>,

    /// Collect shortly before the next scrape would find the cache stale, instead of when it
    /// comes: scrapes are answered at once and the cluster sees one evenly spaced collection
    /// per window. Stops after 3 windows without a scrape (the next scrape then collects).
    #[arg(
        long,
        env = "PROXMOX_EXPORTER_COLLECT_AHEAD",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub collect_ahead: Option<bool>,
}

/// Whether answers are asked for gzipped unless told otherwise: not on a LAN, where it
/// costs scrape time and pveproxy CPU; worth it below about 100 Mbit/s (BENCHMARKS.md).
pub const DEFAULT_PROXMOX_API_GZIP: bool = false;

/// Connections one endpoint is given unless told otherwise (`None`: no limit). Measured
/// against a pveproxy-like simulator (BENCHMARKS.md, "The cluster's side"): 32 collects as
/// fast as no limit or faster, with a tenth of the TLS handshakes at 200 nodes and without
/// the seconds-long waits other pveproxy clients see under a burst of connections.
pub const DEFAULT_MAX_CONNECTIONS_PER_ENDPOINT: Option<usize> = Some(32);

/// One request per node at a time for the sweeping collectors: a third of pveproxy's workers.
pub const DEFAULT_MAX_GUEST_REQUESTS_PER_NODE: usize = 1;

/// What to do instead of serving metrics.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Record the answers the collectors use from a live cluster (with the settings above) as
    /// an anonymised fixture scenario in DIR, for the snapshot tests.
    Record {
        /// The scenario directory to write, e.g. tests/fixtures/my-cluster.
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

fn secret(text: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(text))
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub log_level: tracing::Level,
    pub web: crate::http::web::WebConfig,
    pub listen: SocketAddr,
    pub cache_duration: Duration,
    pub max_concurrent_requests: usize,
    /// Requests of the sweeping collectors under way at once on one node.
    pub max_guest_requests_per_node: usize,
    /// Connections one endpoint is given (`None`: no limit).
    pub max_connections_per_endpoint: Option<usize>,
    /// Ask the API for gzipped answers.
    pub gzip: bool,
    /// Collect ahead of the scrapes (`--collect-ahead`).
    pub collect_ahead: bool,
    /// The cluster of the flags, served on `/metrics`; `None` when only the configuration
    /// file's modules are used (`/pve`, `/probe`).
    pub dispatcher: Option<DispatcherConfig>,
    /// The configuration file's modules (or the `PVE_*` variables' one).
    pub modules: Option<crate::compat::modules::Modules>,
    /// The collectors to run, with their refresh.
    pub collectors: Vec<Enabled>,
    /// The collectors a backup server's module runs (`pbs_*`), with their refresh.
    pub pbs_collectors: Vec<Enabled>,
    /// `--proxmox-ca-file`'s certificates, for the modules' targets too.
    pub extra_roots: Vec<reqwest::Certificate>,
    /// What the operator should know at start (logged once the logger is set up).
    pub warnings: Vec<String>,
    /// What a reload reads again.
    pub reload: ReloadSources,
    /// `POST /-/reload` allowed (`--web.enable-lifecycle`).
    pub lifecycle: bool,
}

/// The files a reload reads again, and what their reading needs.
#[derive(Debug, Clone, Default)]
pub struct ReloadSources {
    pub config_file: Option<std::path::PathBuf>,
    pub web_config_file: Option<std::path::PathBuf>,
    /// `--allowed-targets`, for modules without their own list.
    pub allowed_targets: Option<crate::compat::target::AllowList>,
}

/// Re-reads the configuration files on `SIGHUP` or `POST /-/reload` and puts them in use. A
/// file that is broken is refused with what is wrong, and everything in use stays: nothing is
/// changed unless every file reads well.
pub struct Reloader {
    pub sources: ReloadSources,
    pub targets: Option<std::sync::Arc<crate::exporter::targets::Targets>>,
    pub web: crate::http::web::WebHandle,
    pub reloads: std::sync::Arc<crate::exporter::reloads::Reloads>,
}

impl Reloader {
    /// Reads the files again and uses them; the error names the file and what is wrong.
    pub fn reload(&self) -> Result<(), String> {
        let result = self.read_and_apply();
        match &result {
            Ok(()) => {
                self.reloads.succeeded(std::time::SystemTime::now());
                tracing::info!("configuration reloaded");
            }
            Err(e) => {
                self.reloads.failed();
                tracing::error!("configuration reload refused, the running one stays: {e}");
            }
        }
        result
    }

    fn read_and_apply(&self) -> Result<(), String> {
        let modules = match (&self.sources.config_file, &self.targets) {
            (Some(path), Some(_)) => Some(
                crate::compat::modules::Modules::load(path)?
                    .with_default_allowed(self.sources.allowed_targets.as_ref()),
            ),
            _ => None,
        };
        let web = match &self.sources.web_config_file {
            Some(path) => Some(crate::http::web::WebConfig::load(path)?),
            None => None,
        };
        // Everything read well: now use it. `replace` refuses a TLS switch before anything
        // is changed.
        if let Some(web) = web {
            self.web.replace(web)?;
        }
        if let (Some(modules), Some(targets)) = (modules, &self.targets) {
            for warning in &modules.warnings {
                tracing::warn!("{warning}");
            }
            targets.replace_modules(modules);
        }
        Ok(())
    }
}

/// A setting that cannot be used; the message names it and never repeats a secret.
#[derive(Debug, thiserror::Error)]
#[error("invalid {setting}: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        reason: reason.into(),
    }
}

/// What `--collector.NAME`, `--no-collector.NAME`, `--collector.NAME.refresh`,
/// `--collector.disable-defaults` and their variables said.
#[derive(Debug, Default, Clone)]
pub struct CollectorFlags {
    pub disable_defaults: bool,
    /// Collector name → on or off, where a flag or variable said so.
    pub explicit: Vec<(&'static str, bool)>,
    /// Collector name → the refresh as given (checked in [`Cli::into_config`]).
    pub refresh: Vec<(&'static str, String)>,
    /// `PROXMOX_EXPORTER_COLLECTOR_*` variables that name no collector.
    pub unknown_variables: Vec<String>,
}

const COLLECTOR_VARIABLE: &str = "PROXMOX_EXPORTER_COLLECTOR_";

fn collector_variable(name: &str) -> String {
    format!("{COLLECTOR_VARIABLE}{}", name.to_ascii_uppercase())
}

fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

impl Cli {
    /// The command line with a `--collector.NAME`, `--no-collector.NAME` and
    /// `--collector.NAME.refresh` for every collector (node_exporter's conventions).
    pub fn command() -> clap::Command {
        use clap::{Arg, ArgAction};
        let mut command = <Cli as clap::CommandFactory>::command()
            .next_help_heading("Collectors")
            .arg(
                Arg::new("collector.disable-defaults")
                    .long("collector.disable-defaults")
                    .env(collector_variable("disable_defaults"))
                    .num_args(0..=1)
                    .default_missing_value("true")
                    .value_parser(boolish())
                    .help("Turn off every collector not enabled by its own flag"),
            );
        for collector in every_collector() {
            let name = collector.name();
            let default = if collector.enabled_by_default() {
                "on"
            } else {
                "off"
            };
            let refresh = match collector.refresh() {
                Some(every) => format!("{}s", every.as_secs()),
                None => "the cache duration".to_owned(),
            };
            command = command
                .arg(
                    Arg::new(format!("collector.{name}"))
                        .long(format!("collector.{name}"))
                        .env(collector_variable(name))
                        .num_args(0..=1)
                        .default_missing_value("true")
                        .value_parser(boolish())
                        .help(format!("Enable the {name} collector (default: {default})")),
                )
                .arg(
                    Arg::new(format!("no-collector.{name}"))
                        .long(format!("no-collector.{name}"))
                        .action(ArgAction::SetTrue)
                        .help(format!("Disable the {name} collector")),
                )
                .arg(
                    Arg::new(format!("collector.{name}.refresh"))
                        .long(format!("collector.{name}.refresh"))
                        .env(format!("{}_REFRESH", collector_variable(name)))
                        .value_name("DURATION")
                        .help(format!(
                            "How long the {name} collector's answers are reused, e.g. 30s, \
                             5m, 1h (default: {refresh})"
                        )),
                );
        }
        command
    }

    /// Parses the process's arguments and `PROXMOX_EXPORTER_*` variables; exits with clap's
    /// message on a malformed command line.
    pub fn parse_from_env() -> Cli {
        match Cli::try_parse_with(std::env::args_os(), std::env::vars()) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        }
    }

    /// Parses `args` (the program's name first); `vars` are the environment's variables, read
    /// for the names of unknown collector variables (clap reads the known ones itself).
    pub fn try_parse_with<I, T>(
        args: I,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::FromArgMatches;
        use clap::parser::ValueSource;
        let matches = Cli::command().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        let mut flags = CollectorFlags {
            disable_defaults: matches
                .get_one::<bool>("collector.disable-defaults")
                .copied()
                .unwrap_or(false),
            ..CollectorFlags::default()
        };
        for collector in every_collector() {
            let name = collector.name();
            let on = format!("collector.{name}");
            let off = format!("no-collector.{name}");
            let given = matches.get_one::<bool>(&on).copied();
            let from_command_line = matches.value_source(&on) == Some(ValueSource::CommandLine);
            let disabled = matches.get_flag(&off);
            // Of `--collector.X` and `--no-collector.X` the last given wins; both win over
            // the variable.
            let state = match (from_command_line, disabled) {
                (true, true) => Some(matches.index_of(&on) > matches.index_of(&off)),
                (_, true) => Some(false),
                _ => given,
            };
            if let Some(state) = state {
                flags.explicit.push((name, state));
            }
            if let Some(text) = matches.get_one::<String>(&format!("collector.{name}.refresh")) {
                flags.refresh.push((name, text.clone()));
            }
        }
        let known: Vec<String> = every_collector()
            .flat_map(|c| {
                let variable = collector_variable(c.name());
                [format!("{variable}_REFRESH"), variable]
            })
            .chain([collector_variable("disable_defaults")])
            .collect();
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        cli.pve_variables = vars
            .iter()
            .filter(|(key, _)| key.starts_with("PVE_"))
            .cloned()
            .collect();
        flags.unknown_variables = vars
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| key.starts_with(COLLECTOR_VARIABLE) && !known.contains(key))
            .collect();
        flags.unknown_variables.sort();
        cli.collectors = flags;
        Ok(cli)
    }

    /// The collectors to run: the defaults (or none with `--collector.disable-defaults`, or
    /// all with `--demo`), then what each collector's own flag or variable says.
    fn enabled_collectors(&self) -> Result<Vec<Enabled>, ConfigError> {
        let flags = &self.collectors;
        if let Some(unknown) = flags.unknown_variables.first() {
            let names: Vec<&str> = every_collector().map(|c| c.name()).collect();
            return Err(invalid(
                "PROXMOX_EXPORTER_COLLECTOR_*",
                format!(
                    "{unknown} names no collector (collectors: {})",
                    names.join(", ")
                ),
            ));
        }
        let mut enabled = Vec::new();
        for collector in every_collector() {
            let name = collector.name();
            let default = if flags.disable_defaults {
                false
            } else {
                self.demo || collector.enabled_by_default()
            };
            let on = flags
                .explicit
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(default, |(_, on)| *on);
            let refresh = match flags.refresh.iter().find(|(n, _)| *n == name) {
                // 0: asked again in every window.
                Some((_, text)) => Some(parse_duration(text).ok_or_else(|| {
                    invalid(
                        "--collector.NAME.refresh (PROXMOX_EXPORTER_COLLECTOR_NAME_REFRESH)",
                        format!(
                            "`{text}` for collector {name} is not a duration such as 30s, 5m, \
                             1h or 1h30m (0: every window), up to 7 days"
                        ),
                    )
                })?)
                .filter(|every| !every.is_zero()),
                None => collector.refresh(),
            };
            if on {
                enabled.push(Enabled { collector, refresh });
            }
        }
        Ok(enabled)
    }

    /// Checks every setting; the first bad one is reported.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let (pbs_collectors, collectors): (Vec<Enabled>, Vec<Enabled>) = (self
            .enabled_collectors()?)
        .into_iter()
        .partition(|e| crate::collectors::pbs::find(e.collector.name()).is_some());
        let log_level = parse_log_level(&self.log_level)?;
        let port: u16 = self.server_port.trim().parse().map_err(|_| {
            invalid(
                "--server-port (PROXMOX_EXPORTER_SERVER_PORT)",
                format!("`{}` is not a port number (0-65535)", self.server_port),
            )
        })?;
        let address: IpAddr = self.server_address.trim().parse().map_err(|_| {
            invalid(
                "--server-address (PROXMOX_EXPORTER_SERVER_ADDRESS)",
                format!("`{}` is not an IP address", self.server_address),
            )
        })?;
        let cache_duration = parse_seconds(
            "--cache-duration (PROXMOX_EXPORTER_CACHE_DURATION)",
            &self.cache_duration,
            true,
        )?;
        let timeout = parse_seconds(
            "--api-timeout (PROXMOX_EXPORTER_API_TIMEOUT)",
            &self.api_timeout,
            false,
        )?;
        let gzip = self.proxmox_api_gzip.unwrap_or(DEFAULT_PROXMOX_API_GZIP);
        let max_connections_per_endpoint = match &self.max_connections_per_endpoint {
            None => DEFAULT_MAX_CONNECTIONS_PER_ENDPOINT,
            Some(text) => match text.trim().parse::<usize>() {
                Ok(0) => None,
                Ok(n) if n <= 1024 => Some(n),
                _ => {
                    return Err(invalid(
                        "--max-connections-per-endpoint (PROXMOX_EXPORTER_MAX_CONNECTIONS_PER_ENDPOINT)",
                        format!("`{text}` is not a number from 0 (no limit) to 1024"),
                    ));
                }
            },
        };
        let max_concurrent_requests = match &self.max_concurrent_requests {
            None => crate::collectors::default_concurrency(&collectors),
            Some(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "--max-concurrent-requests (PROXMOX_EXPORTER_MAX_CONCURRENT_REQUESTS)",
                        format!("`{text}` is not a number from 1 to 1024"),
                    )
                })?,
        };
        let max_guest_requests_per_node = match &self.max_guest_requests_per_node {
            None => DEFAULT_MAX_GUEST_REQUESTS_PER_NODE,
            Some(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=16).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "--max-guest-requests-per-node (PROXMOX_EXPORTER_MAX_GUEST_REQUESTS_PER_NODE)",
                        format!("`{text}` is not a number from 1 to 16"),
                    )
                })?,
        };
        let web = match &self.web_config_file {
            Some(path) => crate::http::web::WebConfig::load(path)
                .map_err(|e| invalid("--web.config.file (PROXMOX_EXPORTER_WEB_CONFIG_FILE)", e))?,
            None => crate::http::web::WebConfig::default(),
        };
        let allowed_targets = if self.allowed_targets.iter().all(|t| t.trim().is_empty()) {
            None
        } else {
            let list = crate::compat::target::AllowList::parse(
                self.allowed_targets.iter().map(String::as_str),
            )
            .map_err(|e| invalid("--allowed-targets (PROXMOX_EXPORTER_ALLOWED_TARGETS)", e))?;
            Some(list)
        };
        let modules = match &self.config_file {
            Some(path) => Some(
                crate::compat::modules::Modules::load(path)
                    .map_err(|e| invalid("--config.file (PROXMOX_EXPORTER_CONFIG_FILE)", e))?,
            ),
            None => crate::compat::modules::Modules::from_env(self.pve_variables.clone())
                .map_err(|e| invalid("PVE_USER, PVE_TOKEN_NAME, …", e))?,
        }
        .map(|modules| modules.with_default_allowed(allowed_targets.as_ref()));
        let extra_roots = match &self.proxmox_ca_file {
            Some(file) => read_ca_file(file)?,
            None => Vec::new(),
        };
        // With modules, `/metrics` needs a cluster of its own only when one is given.
        let flags_cluster = !self.proxmox_endpoints.iter().all(|e| e.trim().is_empty())
            || self.proxmox_token_id.is_some();
        let flags_pbs =
            !self.pbs_endpoints.iter().all(|e| e.trim().is_empty()) || self.pbs_token_id.is_some();
        if flags_cluster && flags_pbs {
            return Err(invalid(
                "--pbs-endpoints (PROXMOX_EXPORTER_PBS_ENDPOINTS)",
                "/metrics serves either the cluster of --proxmox-endpoints or the backup server \
                 of --pbs-endpoints: run one exporter for each, or give the backup server as a \
                 --config.file module with `product: pbs`",
            ));
        }
        let server = |flags: &ServerFlags,
                      endpoints: &[String],
                      id: Option<String>,
                      secret: Option<SecretString>,
                      file: &Option<std::path::PathBuf>,
                      insecure: bool,
                      product: crate::pve::Product| {
            let endpoints = parse_endpoints(endpoints, flags)?;
            let (secret, secret_file) = token_secret(secret, file.as_deref(), flags)?;
            let token = parse_token(id, secret, flags)?;
            Ok::<_, ConfigError>(DispatcherConfig {
                endpoints,
                credentials: token.into(),
                product,
                insecure,
                extra_roots: extra_roots.clone(),
                timeout,
                backoff: Backoff::default(),
                max_connections_per_endpoint,
                gzip,
                secret_file,
            })
        };
        let dispatcher = if flags_pbs {
            Some(server(
                &PBS_FLAGS,
                &self.pbs_endpoints,
                self.pbs_token_id,
                self.pbs_token,
                &self.pbs_token_file,
                self.pbs_api_insecure,
                crate::pve::Product::Pbs,
            )?)
        } else if modules.is_some() && !flags_cluster {
            None
        } else {
            Some(server(
                &PVE_FLAGS,
                &self.proxmox_endpoints,
                self.proxmox_token_id,
                self.proxmox_token,
                &self.proxmox_token_file,
                self.proxmox_api_insecure,
                crate::pve::Product::Pve,
            )?)
        };
        Ok(Config {
            log_level,
            web,
            listen: SocketAddr::new(address, port),
            cache_duration,
            max_concurrent_requests,
            max_guest_requests_per_node,
            max_connections_per_endpoint,
            gzip,
            collect_ahead: self.collect_ahead.unwrap_or(false),
            lifecycle: self.web_enable_lifecycle.unwrap_or(false),
            reload: ReloadSources {
                config_file: self.config_file.clone(),
                web_config_file: self.web_config_file.clone(),
                allowed_targets: allowed_targets.clone(),
            },
            collectors,
            pbs_collectors,
            warnings: dispatcher
                .as_ref()
                .map(|d| plain_text_endpoints(&d.endpoints))
                .unwrap_or_default(),
            dispatcher,
            modules,
            extra_roots,
        })
    }
}

/// A warning for each `http://` endpoint off this machine: the token travels there
/// unencrypted (the built-in simulator on loopback is the one plain-HTTP API expected).
fn plain_text_endpoints(endpoints: &[reqwest::Url]) -> Vec<String> {
    endpoints
        .iter()
        .filter(|url| url.scheme() == "http")
        .filter(|url| {
            !url.host_str()
                .is_some_and(crate::compat::target::on_this_machine)
        })
        .map(|url| {
            format!(
                "--proxmox-endpoints: {url} is plain HTTP off this machine: the API token \
                 travels unencrypted; use https://"
            )
        })
        .collect()
}

/// A duration such as `90`, `30s`, `5m`, `1h`, `1h30m` or `1d` (a bare number is seconds),
/// up to 7 days.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds)).filter(|d| in_range(*d));
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return None,
        };
        let n: u64 = std::mem::take(&mut digits).parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !digits.is_empty() || text.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total)).filter(|d| in_range(*d))
}

fn in_range(d: Duration) -> bool {
    d <= Duration::from_secs(7 * 86_400)
}

pub fn parse_log_level(text: &str) -> Result<tracing::Level, ConfigError> {
    text.trim().parse::<tracing::Level>().map_err(|_| {
        invalid(
            "--log-level (PROXMOX_EXPORTER_LOG_LEVEL)",
            format!("`{text}` is not one of error, warn, info, debug, trace"),
        )
    })
}

fn parse_seconds(
    setting: &'static str,
    text: &str,
    zero_ok: bool,
) -> Result<Duration, ConfigError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (*s > 0.0 || (zero_ok && *s == 0.0)) && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            invalid(
                setting,
                format!("`{text}` is not a number of seconds up to 86400"),
            )
        })
}

/// The names of the settings that give one server by flags: PVE's cluster or a backup server.
struct ServerFlags {
    endpoints: &'static str,
    token_id: &'static str,
    token: &'static str,
    token_file: &'static str,
    /// An endpoint and a token id as examples.
    example: (&'static str, &'static str),
}

const PVE_FLAGS: ServerFlags = ServerFlags {
    endpoints: "--proxmox-endpoints (PROXMOX_EXPORTER_PROXMOX_ENDPOINTS)",
    token_id: "--proxmox-token-id (PROXMOX_EXPORTER_PROXMOX_TOKEN_ID)",
    token: "--proxmox-token (PROXMOX_EXPORTER_PROXMOX_TOKEN)",
    token_file: "--proxmox-token-file (PROXMOX_EXPORTER_PROXMOX_TOKEN_FILE)",
    example: ("https://pve1:8006/", "monitoring@pve!exporter"),
};

const PBS_FLAGS: ServerFlags = ServerFlags {
    endpoints: "--pbs-endpoints (PROXMOX_EXPORTER_PBS_ENDPOINTS)",
    token_id: "--pbs-token-id (PROXMOX_EXPORTER_PBS_TOKEN_ID)",
    token: "--pbs-token (PROXMOX_EXPORTER_PBS_TOKEN)",
    token_file: "--pbs-token-file (PROXMOX_EXPORTER_PBS_TOKEN_FILE)",
    example: ("https://pbs1:8007/", "monitoring@pbs!exporter"),
};

/// The token secret given, or read from its file (then followed: a rotated secret needs no
/// restart).
#[allow(clippy::type_complexity)]
fn token_secret(
    secret: Option<SecretString>,
    file: Option<&std::path::Path>,
    flags: &ServerFlags,
) -> Result<
    (
        Option<SecretString>,
        Option<std::sync::Arc<crate::pve::secret::SecretFile>>,
    ),
    ConfigError,
> {
    match (secret, file) {
        (Some(_), Some(_)) => Err(invalid(
            flags.token_file,
            "give either the token or a token file, not both",
        )),
        (Some(secret), None) => Ok((Some(secret), None)),
        (None, Some(file)) => {
            let file = crate::pve::secret::SecretFile::open(file)
                .map_err(|e| invalid(flags.token_file, e))?;
            Ok((Some(file.secret()), Some(std::sync::Arc::new(file))))
        }
        (None, None) => Ok((None, None)),
    }
}

fn parse_endpoints(
    given: &[String],
    flags: &ServerFlags,
) -> Result<Vec<reqwest::Url>, ConfigError> {
    let setting = flags.endpoints;
    let mut endpoints = Vec::new();
    for text in given.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let url = reqwest::Url::parse(text)
            .map_err(|e| invalid(setting, format!("`{}` is not a URL: {e}", shown(text))))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(invalid(
                setting,
                format!(
                    "`{}` must be an https:// URL such as {}",
                    shown(text),
                    flags.example.0
                ),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                setting,
                format!(
                    "an endpoint must not carry a user or password; use {} and {}",
                    flags.token_id, flags.token
                ),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                setting,
                format!("`{}` must not have a query or fragment", shown(text)),
            ));
        }
        endpoints.push(url);
    }
    if endpoints.is_empty() {
        return Err(invalid(setting, "no endpoint given"));
    }
    Ok(endpoints)
}

/// An endpoint as given, without anything before an `@` (which could be a password).
fn shown(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &text[..scheme], &text[at + 1..])
        }
        _ => text.to_owned(),
    }
}

fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    const SETTING: &str = "--proxmox-ca-file (PROXMOX_EXPORTER_PROXMOX_CA_FILE)";
    let pem = std::fs::read(path)
        .map_err(|e| invalid(SETTING, format!("cannot read {}: {e}", path.display())))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| invalid(SETTING, format!("{} is not PEM: {e}", path.display())))?;
    if roots.is_empty() {
        return Err(invalid(
            SETTING,
            format!("{} holds no certificate", path.display()),
        ));
    }
    Ok(roots)
}

fn parse_token(
    id: Option<String>,
    secret: Option<SecretString>,
    flags: &ServerFlags,
) -> Result<ApiToken, ConfigError> {
    let (id_flag, secret_flag) = (flags.token_id, flags.token);
    let id = id.map(|s| s.trim().to_owned()).unwrap_or_default();
    if id.is_empty() {
        return Err(invalid(id_flag, "missing"));
    }
    let well_formed = id
        .split_once('@')
        .and_then(|(user, rest)| {
            rest.split_once('!')
                .map(|(realm, name)| (user, realm, name))
        })
        .is_some_and(|(user, realm, name)| {
            !user.is_empty()
                && !realm.is_empty()
                && !name.is_empty()
                && id.chars().all(|c| c.is_ascii_graphic() && c != '=')
        });
    if !well_formed {
        return Err(invalid(
            id_flag,
            format!(
                "`{id}` is not of the form USER@REALM!TOKENID (e.g. {})",
                flags.example.1
            ),
        ));
    }
    let secret = secret
        .map(|s| s.expose_secret().trim().to_owned())
        .unwrap_or_default();
    if secret.is_empty() {
        return Err(invalid(secret_flag, "missing"));
    }
    if !secret.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(
            secret_flag,
            "contains spaces or characters that cannot be sent in an HTTP header",
        ));
    }
    Ok(ApiToken {
        id,
        secret: SecretString::from(secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::REGISTRY;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["proxmox-exporter"];
        all.extend_from_slice(args);
        Cli::try_parse_with(all, []).unwrap()
    }

    const GOOD: [&str; 6] = [
        "--proxmox-endpoints",
        "https://pve1:8006/,https://pve2:8006/",
        "--proxmox-token-id",
        "monitoring@pve!exporter",
        "--proxmox-token",
        "00000000-1111-2222-3333-444444444444",
    ];

    #[test]
    fn defaults_match_the_seed() {
        let config = cli(&GOOD).into_config().unwrap();
        assert_eq!(config.listen.port(), 8080);
        assert_eq!(config.log_level, tracing::Level::INFO);
        assert_eq!(config.cache_duration, Duration::from_secs(29));
        assert_eq!(config.max_concurrent_requests, 100);
        assert!(!config.dispatcher.as_ref().unwrap().insecure);
        assert_eq!(config.dispatcher.as_ref().unwrap().endpoints.len(), 2);
    }

    #[test]
    fn insecure_flag_alone_or_with_a_value() {
        let insecure = |flag: &'static str| {
            let mut args = GOOD.to_vec();
            args.push(flag);
            let config = cli(&args).into_config().unwrap();
            config.dispatcher.as_ref().unwrap().insecure
        };
        assert!(insecure("--proxmox-api-insecure"));
        assert!(!insecure("--proxmox-api-insecure=false"));
    }

    #[test]
    fn connections_per_endpoint_zero_means_no_limit() {
        let with = |extra: &[&str]| {
            let mut args = GOOD.to_vec();
            args.extend_from_slice(extra);
            let config = cli(&args).into_config().unwrap();
            let dispatcher = config.dispatcher.unwrap().max_connections_per_endpoint;
            assert_eq!(dispatcher, config.max_connections_per_endpoint);
            dispatcher
        };
        assert_eq!(with(&[]), DEFAULT_MAX_CONNECTIONS_PER_ENDPOINT);
        assert_eq!(with(&["--max-connections-per-endpoint", "6"]), Some(6));
        assert_eq!(with(&["--max-connections-per-endpoint=0"]), None);
    }

    #[test]
    fn collect_ahead_is_off_unless_told() {
        let ahead = |extra: &[&str]| {
            let mut args = GOOD.to_vec();
            args.extend_from_slice(extra);
            cli(&args).into_config().unwrap().collect_ahead
        };
        assert!(!ahead(&[]));
        assert!(ahead(&["--collect-ahead"]));
        assert!(!ahead(&["--collect-ahead=false"]));
    }

    #[test]
    fn gzip_is_asked_for_when_told() {
        let gzip = |extra: &[&str]| {
            let mut args = GOOD.to_vec();
            args.extend_from_slice(extra);
            let config = cli(&args).into_config().unwrap();
            assert_eq!(config.dispatcher.unwrap().gzip, config.gzip);
            config.gzip
        };
        assert_eq!(gzip(&[]), DEFAULT_PROXMOX_API_GZIP);
        assert!(gzip(&["--proxmox-api-gzip"]));
        assert!(!gzip(&["--proxmox-api-gzip=false"]));
    }

    #[test]
    fn guest_requests_per_node() {
        let per_node = |extra: &[&str]| {
            let mut args = GOOD.to_vec();
            args.extend(extra);
            cli(&args)
                .into_config()
                .unwrap()
                .max_guest_requests_per_node
        };
        assert_eq!(per_node(&[]), DEFAULT_MAX_GUEST_REQUESTS_PER_NODE);
        assert_eq!(per_node(&["--max-guest-requests-per-node", "2"]), 2);
    }

    #[test]
    fn each_bad_setting_is_named() {
        for (extra, setting) in [
            (vec!["--log-level", "loud"], "--log-level"),
            (vec!["--server-port", "80800"], "--server-port"),
            (vec!["--server-address", "my-host"], "--server-address"),
            (vec!["--cache-duration=-1"], "--cache-duration"),
            (vec!["--api-timeout", "0"], "--api-timeout"),
            (
                vec!["--max-concurrent-requests", "0"],
                "--max-concurrent-requests",
            ),
            (
                vec!["--max-connections-per-endpoint", "many"],
                "--max-connections-per-endpoint",
            ),
            (
                vec!["--max-guest-requests-per-node", "0"],
                "--max-guest-requests-per-node",
            ),
            (
                vec!["--proxmox-endpoints", "pve1:8006"],
                "--proxmox-endpoints",
            ),
            (
                vec!["--proxmox-endpoints", "ftp://pve1/"],
                "--proxmox-endpoints",
            ),
            (
                vec!["--proxmox-token-id", "monitoring"],
                "--proxmox-token-id",
            ),
        ] {
            let mut args = GOOD.to_vec();
            args.extend(extra.iter());
            let err = cli(&args).into_config().unwrap_err();
            assert!(err.to_string().contains(setting), "{extra:?}: {err}");
        }
    }

    #[test]
    fn missing_token_parts_are_named_and_secrets_not_repeated() {
        let err = cli(&GOOD[..4]).into_config().unwrap_err();
        assert!(err.to_string().contains("--proxmox-token "), "{err}");
        let err = cli(&[GOOD[0], GOOD[1], GOOD[4], GOOD[5]])
            .into_config()
            .unwrap_err();
        assert!(err.to_string().contains("--proxmox-token-id"), "{err}");
        let mut args = GOOD.to_vec();
        args[5] = "has a space";
        let err = cli(&args).into_config().unwrap_err();
        assert!(!err.to_string().contains("has a space"), "{err}");
        let mut args = GOOD.to_vec();
        args[1] = "https://root:hunter2@pve1:8006/";
        let err = cli(&args).into_config().unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    /// A file named `name` holding `text` in this test run's own temporary directory.
    fn temp_file(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("pe-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        file.display().to_string()
    }

    /// The good endpoint and token id, and `extra`, without a token secret.
    fn without_secret<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = GOOD[..4].to_vec();
        args.extend_from_slice(extra);
        args
    }

    #[test]
    fn the_token_from_a_file() {
        let path = temp_file("token", "  file-secret-0123\n");
        let config = cli(&without_secret(&["--proxmox-token-file", &path]))
            .into_config()
            .unwrap();
        assert_eq!(
            config
                .dispatcher
                .as_ref()
                .unwrap()
                .credentials
                .secret()
                .expose_secret(),
            "file-secret-0123"
        );

        let mut both = GOOD.to_vec();
        both.extend(["--proxmox-token-file", &path]);
        let err = cli(&both).into_config().unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");

        let missing = format!("{path}-absent");
        let err = cli(&without_secret(&["--proxmox-token-file", &missing]))
            .into_config()
            .unwrap_err();
        assert!(err.to_string().contains("--proxmox-token-file"), "{err}");
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let path = temp_file("ca.pem", "not a certificate\n");
        let mut args = GOOD.to_vec();
        args.extend(["--proxmox-ca-file", &path]);
        let err = cli(&args).into_config().unwrap_err();
        assert!(err.to_string().contains("--proxmox-ca-file"), "{err}");
    }

    fn collectors(args: &[&str], vars: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let mut all = vec!["proxmox-exporter"];
        all.extend_from_slice(&GOOD);
        all.extend_from_slice(args);
        // Variables reach clap through the process environment, which tests must not touch:
        // give them as flags' values where clap reads them, and to the unknown-name check.
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let cli = Cli::try_parse_with(all, vars).map_err(|e| e.to_string())?;
        let config = cli.into_config().map_err(|e| e.to_string())?;
        Ok(config
            .collectors
            .iter()
            .map(|e| e.collector.name().to_owned())
            .collect())
    }

    const SEED: [&str; 3] = ["cluster_resources", "node_certificates", "node_disks"];

    #[test]
    fn the_seed_collectors_alone_by_default() {
        assert_eq!(collectors(&[], &[]).unwrap(), SEED);
    }

    #[test]
    fn each_collector_turns_on_and_off() {
        for collector in REGISTRY {
            let name = collector.name();
            let on = collectors(&[&format!("--collector.{name}")], &[]).unwrap();
            assert!(on.iter().any(|n| n == name), "--collector.{name}: {on:?}");
            let on = collectors(&[&format!("--collector.{name}=true")], &[]).unwrap();
            assert!(
                on.iter().any(|n| n == name),
                "--collector.{name}=true: {on:?}"
            );
            let off = collectors(&[&format!("--no-collector.{name}")], &[]).unwrap();
            assert!(
                !off.iter().any(|n| n == name),
                "--no-collector.{name}: {off:?}"
            );
            let off = collectors(&[&format!("--collector.{name}=false")], &[]).unwrap();
            assert!(
                !off.iter().any(|n| n == name),
                "--collector.{name}=false: {off:?}"
            );
            // Every other collector keeps its default.
            let others: Vec<String> = off.into_iter().filter(|n| n != name).collect();
            let defaults: Vec<String> = SEED
                .iter()
                .filter(|n| **n != name)
                .map(|n| (*n).to_owned())
                .collect();
            assert_eq!(others, defaults, "{name}");
        }
    }

    #[test]
    fn the_last_of_collector_and_no_collector_wins() {
        let last_off = collectors(&["--collector.node", "--no-collector.node"], &[]).unwrap();
        assert!(!last_off.contains(&"node".to_owned()));
        let last_on = collectors(&["--no-collector.node", "--collector.node"], &[]).unwrap();
        assert!(last_on.contains(&"node".to_owned()));
    }

    #[test]
    fn disable_defaults_keeps_only_what_is_named() {
        let only = collectors(
            &["--collector.disable-defaults", "--collector.subscription"],
            &[],
        )
        .unwrap();
        assert_eq!(only, ["subscription"]);
        assert!(
            collectors(&["--collector.disable-defaults"], &[])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_backup_servers_collectors_take_the_same_flags() {
        let config = |args: &[&str]| {
            let mut all = vec!["proxmox-exporter"];
            all.extend_from_slice(&GOOD);
            all.extend_from_slice(args);
            Cli::try_parse_with(all, Vec::new())
                .unwrap()
                .into_config()
                .unwrap()
        };
        let names = |c: &Config| -> Vec<&str> {
            c.pbs_collectors
                .iter()
                .map(|e| e.collector.name())
                .collect()
        };
        let defaults = config(&[]);
        assert_eq!(
            names(&defaults).len(),
            crate::collectors::pbs::REGISTRY.len()
        );
        assert_eq!(
            collectors(&[], &[]).unwrap(),
            SEED,
            "none of them on /metrics"
        );
        let fewer = config(&[
            "--no-collector.pbs_groups",
            "--collector.pbs_tasks.refresh=10m",
        ]);
        assert!(!names(&fewer).contains(&"pbs_groups"));
        let tasks = fewer
            .pbs_collectors
            .iter()
            .find(|e| e.collector.name() == "pbs_tasks");
        assert_eq!(
            tasks.and_then(|e| e.refresh),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn demo_turns_everything_on_unless_told_otherwise() {
        let all = collectors(&["--demo"], &[]).unwrap();
        assert_eq!(all.len(), REGISTRY.len());
        let but = collectors(&["--demo", "--no-collector.snapshots"], &[]).unwrap();
        assert_eq!(but.len(), REGISTRY.len() - 1);
        assert!(!but.contains(&"snapshots".to_owned()));
    }

    #[test]
    fn unknown_collectors_are_refused_by_name() {
        let err = collectors(&["--collector.zfs_pools"], &[]).unwrap_err();
        assert!(err.contains("--collector.zfs_pools"), "{err}");
        let err = collectors(&[], &[("PROXMOX_EXPORTER_COLLECTOR_ZFS_POOLS", "true")]).unwrap_err();
        assert!(
            err.contains("PROXMOX_EXPORTER_COLLECTOR_ZFS_POOLS"),
            "{err}"
        );
        // Known variables, refresh and disable-defaults included, pass.
        let known = [
            ("PROXMOX_EXPORTER_COLLECTOR_NODE", "true"),
            ("PROXMOX_EXPORTER_COLLECTOR_SNAPSHOTS_REFRESH", "10m"),
            ("PROXMOX_EXPORTER_COLLECTOR_DISABLE_DEFAULTS", "false"),
        ];
        assert!(collectors(&[], &known).is_ok());
    }

    #[test]
    fn refresh_durations() {
        for (text, seconds) in [
            ("90", 90),
            ("30s", 30),
            ("5m", 300),
            ("1h", 3_600),
            ("1h30m", 5_400),
            ("2d", 172_800),
        ] {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_secs(seconds)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "m", "5x", "1h30", "-5m", "8d", "1.5m"] {
            assert_eq!(parse_duration(bad), None, "`{bad}` should be refused");
        }
        let mut all = vec!["proxmox-exporter"];
        all.extend_from_slice(&GOOD);
        all.extend(["--collector.snapshots.refresh", "10m"]);
        let config = Cli::try_parse_with(all, []).unwrap().into_config();
        // Refresh alone does not turn a collector on.
        assert!(
            config
                .unwrap()
                .collectors
                .iter()
                .all(|e| e.collector.name() != "snapshots")
        );
        let mut all = vec!["proxmox-exporter"];
        all.extend_from_slice(&GOOD);
        all.extend([
            "--collector.snapshots",
            "--collector.snapshots.refresh",
            "10m",
        ]);
        let config = Cli::try_parse_with(all, []).unwrap().into_config().unwrap();
        let snapshots = config
            .collectors
            .iter()
            .find(|e| e.collector.name() == "snapshots");
        assert_eq!(snapshots.unwrap().refresh, Some(Duration::from_secs(600)));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let parsed = cli(&GOOD);
        assert!(!format!("{parsed:?}").contains("00000000-1111"));
        let config = parsed.into_config().unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("00000000-1111"), "{shown}");
    }

    #[test]
    fn a_token_in_plain_http_off_this_machine_is_warned_about() {
        let warnings = |endpoints: &str| {
            let args = [
                "--proxmox-endpoints",
                endpoints,
                "--proxmox-token-id",
                "monitoring@pve!exporter",
                "--proxmox-token",
                "00000000-1111-2222-3333-444444444444",
            ];
            cli(&args).into_config().unwrap().warnings
        };
        assert!(warnings("https://pve1:8006/,http://127.0.0.1:8006/,http://localhost/").is_empty());
        let said = warnings("https://pve1:8006/,http://pve2:8006/");
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("http://pve2:8006/") && said[0].contains("unencrypted"));
        assert!(!said[0].contains("00000000-1111"));
    }

    #[test]
    fn allowed_targets_are_checked_at_start() {
        let mut args = GOOD.to_vec();
        args.extend(["--allowed-targets", "pve1,*.lab.example,10.0.0.0/33"]);
        let error = cli(&args).into_config().unwrap_err().to_string();
        assert!(
            error.contains("--allowed-targets") && error.contains("10.0.0.0/33"),
            "{error}"
        );
    }
}
