//! Many clusters from one exporter: `/pve?target=…&module=…` and `/probe?target=…&module=…`.
//! Every (module, target) pair gets its own dispatcher (its endpoints, credentials and login
//! ticket, endpoint health, request counts) and its own cached collections with single-flight,
//! made on its first scrape. A pair not scraped for [`Targets::idle`] is dropped; at most
//! `capacity` pairs are kept, the least recently used going first when more arrive.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::Exporter;
use crate::collectors::Enabled;
use crate::compat::modules::{Modules, Refusal};
use crate::lock;
use crate::pve::{Backoff, Dispatcher, DispatcherConfig, Product};

/// How the exporters of new targets are made.
#[derive(Clone, Debug)]
pub struct TargetSettings {
    pub cache_duration: Duration,
    /// The collectors `/probe` runs (the flags' choice).
    pub probe_collectors: Vec<Enabled>,
    /// The collectors `/probe` runs for a backup server's module (`product: pbs`).
    pub pbs_collectors: Vec<Enabled>,
    pub max_concurrent_requests: usize,
    /// Requests of the sweeping collectors under way at once on one node.
    pub requests_per_node: usize,
    /// Connections one target's collection may have open to one endpoint.
    pub max_connections_per_endpoint: Option<usize>,
    /// Ask for gzipped answers.
    pub gzip: bool,
    /// Certificates to trust besides the system's (`--proxmox-ca-file`).
    pub extra_roots: Vec<reqwest::Certificate>,
    /// Targets kept at once.
    pub capacity: usize,
    /// A target not scraped for this long is dropped.
    pub idle: Duration,
}

/// One (module, target) pair's dispatcher and exporters.
pub struct Target {
    pub dispatcher: Arc<Dispatcher>,
    /// What the target runs, as its module says.
    pub product: Product,
    /// `/pve`'s exporters, by `cluster` and `node` (index `2 * cluster + node`).
    pve: [OnceLock<Arc<Exporter>>; 4],
    probe: OnceLock<Arc<Exporter>>,
    last_used: Mutex<Instant>,
}

/// Why a target cannot be scraped; the message is the HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The peer's own wording, which some users match in alerts.
    #[error("Module '{0}' not found in config")]
    UnknownModule(String),
    /// Not a host, or a host the module may not go to: no connection is made.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The target's client could not be set up.
    #[error("target `{target}`: {reason}")]
    BadTarget { target: String, reason: String },
    /// A backup server's module asked for on `/pve`.
    #[error("module {0} is for a Proxmox Backup Server (product: pbs): scrape it on /probe")]
    BackupServer(String),
}

impl TargetError {
    /// The HTTP status that answers it: 403 for a host outside the module's allowed targets,
    /// 400 for anything else.
    pub fn status(&self) -> u16 {
        match self {
            TargetError::Refused(Refusal::NotAllowed { .. }) => 403,
            _ => 400,
        }
    }
}

/// The kept targets.
pub struct Targets {
    /// Replaced whole by a reload ([`Targets::replace_modules`]).
    modules: std::sync::RwLock<Arc<Modules>>,
    settings: TargetSettings,
    kept: quick_cache::sync::Cache<(String, String), Arc<Target>>,
    last_sweep: Mutex<Instant>,
}

impl Targets {
    pub fn new(modules: Modules, settings: TargetSettings) -> Self {
        Targets {
            kept: quick_cache::sync::Cache::new(settings.capacity.max(1)),
            modules: std::sync::RwLock::new(Arc::new(modules)),
            settings,
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// How long an unscraped target is kept.
    pub fn idle(&self) -> Duration {
        self.settings.idle
    }

    /// Targets kept now.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The kept target for `module` and `target`, made on first use.
    pub fn get(&self, module: &str, target: &str) -> Result<Arc<Target>, TargetError> {
        self.sweep();
        let modules = self.modules();
        let settings = modules
            .modules
            .get(module)
            .ok_or_else(|| TargetError::UnknownModule(module.to_owned()))?;
        let key = (module.to_owned(), target.trim().to_owned());
        let found = self.kept.get_or_insert_with(&key, || {
            let bad = |reason: String| TargetError::BadTarget {
                target: target.to_owned(),
                reason,
            };
            let config = DispatcherConfig {
                endpoints: settings.endpoints(module, target)?,
                credentials: settings.credentials.clone(),
                product: settings.product,
                insecure: !settings.verify_ssl,
                extra_roots: self.settings.extra_roots.clone(),
                timeout: settings.timeout,
                backoff: Backoff::default(),
                max_connections_per_endpoint: self.settings.max_connections_per_endpoint,
                gzip: self.settings.gzip,
                secret_file: settings.secret_file.clone(),
            };
            let dispatcher = Dispatcher::new(&config).map_err(|e| bad(e.to_string()))?;
            if settings.plain_text_off_machine(target) {
                tracing::warn!(
                    module,
                    target,
                    "new target: its credentials travel unencrypted (scheme: http)"
                );
            } else {
                tracing::info!(module, target, "new target");
            }
            Ok::<_, TargetError>(Arc::new(Target {
                dispatcher: Arc::new(dispatcher),
                product: settings.product,
                pve: Default::default(),
                probe: OnceLock::new(),
                last_used: Mutex::new(Instant::now()),
            }))
        })?;
        *lock(&found.last_used) = Instant::now();
        Ok(found)
    }

    /// The modules in use.
    pub fn modules(&self) -> Arc<Modules> {
        self.modules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Uses `modules` from now on (a reloaded configuration file). The targets of a module
    /// that is gone or whose settings changed are dropped: their next scrape starts afresh,
    /// with the new credentials. The others keep their caches.
    pub fn replace_modules(&self, modules: Modules) {
        let old = self.modules();
        let kept_as_is = |name: &str| match (old.modules.get(name), modules.modules.get(name)) {
            (Some(before), Some(now)) => before.fingerprint == now.fingerprint,
            _ => false,
        };
        self.kept.retain(|(module, _), _| kept_as_is(module));
        *self.modules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(modules);
    }

    /// Drops targets not scraped for the idle time; at most once a second.
    fn sweep(&self) {
        {
            let mut last = lock(&self.last_sweep);
            if last.elapsed() < Duration::from_secs(1) {
                return;
            }
            *last = Instant::now();
        }
        let idle = self.settings.idle;
        self.kept
            .retain(|_, target| lock(&target.last_used).elapsed() < idle);
    }

    /// The exporter of `/pve` with `cluster` and `node` for `target`; none for a backup
    /// server's module (`module` names it in the error).
    pub fn pve(
        &self,
        target: &Target,
        module: &str,
        cluster: bool,
        node: bool,
    ) -> Result<Arc<Exporter>, TargetError> {
        if target.product == Product::Pbs {
            return Err(TargetError::BackupServer(module.to_owned()));
        }
        let slot = &target.pve[2 * usize::from(cluster) + usize::from(node)];
        let exporter = slot
            .get_or_init(|| {
                let parts = crate::compat::families::enabled(cluster, node);
                let concurrency = crate::collectors::default_concurrency(&parts);
                let exporter = Exporter::new(
                    target.dispatcher.clone(),
                    self.settings.cache_duration,
                    concurrency,
                )
                .with_collectors(parts);
                // Only the cluster-wide parts read `/cluster/resources`.
                Arc::new(if cluster {
                    exporter
                } else {
                    exporter.without_inventory()
                })
            })
            .clone();
        Ok(exporter)
    }

    /// The exporter of `/probe` for `target`: the flags' collectors; a backup server's
    /// (`product: pbs`), without PVE's inventory.
    pub fn probe(&self, target: &Target) -> Arc<Exporter> {
        target
            .probe
            .get_or_init(|| {
                let exporter = Exporter::new(
                    target.dispatcher.clone(),
                    self.settings.cache_duration,
                    self.settings.max_concurrent_requests,
                );
                Arc::new(match target.product {
                    Product::Pve => exporter
                        .with_collectors(self.settings.probe_collectors.clone())
                        .with_requests_per_node(self.settings.requests_per_node),
                    Product::Pbs => exporter
                        .with_collectors(self.settings.pbs_collectors.clone())
                        .without_inventory(),
                })
            })
            .clone()
    }
}
