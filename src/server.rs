//! The HTTP side: `/metrics` from a cache of collections shared by all scrapers, a landing page,
//! and health endpoints.
//!
//! A collection is reused for `cache_duration`: scrapes in that window cost no API request,
//! so a highly available Prometheus pair costs one set of requests per window. Scrapes that
//! arrive while a collection is under way wait for it instead of starting their own. The
//! encoded exposition is kept with the collection, once per format.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tokio::net::TcpListener;

use crate::collectors::{Collectors, Enabled, Exposition, Format, Snapshot};
use crate::pve::Dispatcher;
use crate::targets::Targets;
use crate::tls::TlsListener;
use crate::web::WebConfig;

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
    collectors: Collectors,
    clock: fn() -> SystemTime,
    /// The last plain exposition's size in each format: the next one's buffer is made that
    /// big at once instead of growing by doubling (a 4 MB exposition would peak at 12 MB).
    last_sizes: [std::sync::atomic::AtomicUsize; 2],
    /// When scrapes came, for collecting ahead of them.
    scrapes: Arc<std::sync::Mutex<crate::ahead::Scrapes>>,
    /// Tells the planning loop of collecting ahead that a scrape came.
    wake: Arc<tokio::sync::Notify>,
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
            collectors: Collectors::new(
                crate::collectors::defaults(),
                cache_duration,
                max_concurrent_requests,
            ),
            clock: SystemTime::now,
            last_sizes: Default::default(),
            scrapes: Arc::default(),
            wake: Arc::default(),
        }
    }

    /// Collects ahead of the scrapes from now on (`--collect-ahead`): shortly before the next
    /// scrape would find the cache stale, while scrapes keep coming; after `idle_windows`
    /// intervals without one it waits for the next scrape.
    pub fn collect_ahead(self: &Arc<Self>, idle_windows: u32) {
        tokio::spawn(crate::ahead::run(
            Arc::downgrade(self),
            self.scrapes.clone(),
            self.wake.clone(),
            idle_windows,
        ));
    }

    /// When the next collection ahead should start, if one should.
    pub(crate) fn plan_ahead(
        &self,
        scrapes: &crate::ahead::Scrapes,
        idle_windows: u32,
    ) -> Option<Instant> {
        let current = self.cache.get(&())?;
        let lead = crate::ahead::lead(current.took, scrapes.interval()?);
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
            Collectors::new(enabled, self.cache_duration, self.max_concurrent_requests);
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

    /// The exposition of the current collection in `format`, gzipped when `gzip`; encoded
    /// once per collection.
    pub async fn exposition(
        &self,
        format: Format,
        gzip: bool,
        deadline: Option<tokio::time::Instant>,
    ) -> Bytes {
        crate::lock(&self.scrapes).record(Instant::now(), self.cache_duration);
        let collection = self.collection(deadline).await;
        // Planned from the collection this scrape got (none is in the cache while one runs).
        self.wake.notify_one();
        let plain = || {
            collection.encoded[Collection::slot(format, false)]
                .get_or_init(|| {
                    let exposition = Exposition {
                        snapshot: collection.snapshot.clone(),
                        requests: self.dispatcher.request_counts(),
                    };
                    let last = &self.last_sizes[Collection::slot(format, false) / 2];
                    let hint = last.load(std::sync::atomic::Ordering::Relaxed);
                    let text = exposition.render_with_capacity(format, hint + hint / 32);
                    last.store(text.len(), std::sync::atomic::Ordering::Relaxed);
                    Bytes::from(text)
                })
                .clone()
        };
        if !gzip {
            return plain();
        }
        collection.encoded[Collection::slot(format, true)]
            .get_or_init(|| gzipped(&plain(), flate2::Compression::fast()))
            .clone()
    }
}

/// Requests handled at once; more wait their turn. Scrapes share one collection, so this
/// only bounds the memory a flood of connections can take.
pub const MAX_CONCURRENT_SCRAPES: usize = 256;

/// What the routes serve: the cluster of the flags on `/metrics` (if any), and the targets
/// of the configuration file's modules on `/pve` and `/probe` (if any).
#[derive(Clone)]
pub struct Served {
    pub exporter: Option<Arc<Exporter>>,
    pub targets: Option<Arc<Targets>>,
}

/// The exporter's routes for the flags' cluster.
pub fn router(exporter: Arc<Exporter>) -> Router {
    router_with(Served {
        exporter: Some(exporter),
        targets: None,
    })
}

/// The exporter's routes.
pub fn router_with(served: Served) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/pve", get(pve))
        .route("/probe", get(probe))
        .route("/", get(landing))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(|| async { "OK\n" }))
        .with_state(served)
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            MAX_CONCURRENT_SCRAPES,
        ))
}

/// Serves plain HTTP until `shutdown` completes, then lets requests under way finish.
pub async fn run(
    listener: TcpListener,
    exporter: Arc<Exporter>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with(listener, exporter, WebConfig::default(), shutdown).await
}

/// [`run`], with the TLS and basic authentication of a web configuration file.
pub async fn run_with(
    listener: TcpListener,
    exporter: Arc<Exporter>,
    web: WebConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let served = Served {
        exporter: Some(exporter),
        targets: None,
    };
    serve(listener, served, web, shutdown).await
}

/// Serves `served` with the web configuration's TLS and basic authentication until
/// `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    served: Served,
    web: WebConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut app = router_with(served);
    if !web.users.is_empty() {
        app = app.layer(axum::middleware::from_fn_with_state(
            web.clone(),
            crate::web::require_auth,
        ));
    }
    match web.tls {
        Some(acceptor) => {
            axum::serve(TlsListener::new(listener, acceptor), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

async fn metrics(State(served): State<Served>, headers: HeaderMap) -> Response {
    let format = negotiate(headers.get(header::ACCEPT));
    let Some(exporter) = served.exporter else {
        // No cluster given by flags: only the exporter's own state.
        let targets = served.targets.as_ref().map_or(0, |t| t.len());
        let body = format!(
            "# HELP proxmox_exporter_targets Targets of /pve and /probe kept now.\n\
             # TYPE proxmox_exporter_targets gauge\nproxmox_exporter_targets {targets}\n\
             # HELP proxmox_exporter_build_info The exporter's version; always 1.\n\
             # TYPE proxmox_exporter_build_info gauge\n\
             proxmox_exporter_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        return ([(header::CONTENT_TYPE, Format::Text.content_type())], body).into_response();
    };
    respond(&exporter, format, &headers).await
}

/// The query of `/pve` and `/probe`, with the peer's defaults.
#[derive(Debug, serde::Deserialize)]
pub struct TargetQuery {
    #[serde(default = "default_module")]
    module: String,
    #[serde(default = "default_target")]
    target: String,
    #[serde(default = "one")]
    cluster: String,
    #[serde(default = "one")]
    node: String,
}

fn default_module() -> String {
    "default".into()
}
fn default_target() -> String {
    "localhost".into()
}
fn one() -> String {
    "1".into()
}

/// The peer's reading of `cluster` and `node`: anything but `0`, `false` or nothing is on.
fn switched_on(value: &str) -> bool {
    !["false", "0", ""].contains(&value.to_ascii_lowercase().as_str())
}

/// `/pve`: prometheus-pve-exporter's families for a target, in its text format.
async fn pve(
    State(served): State<Served>,
    Query(query): Query<TargetQuery>,
    headers: HeaderMap,
) -> Response {
    let (cluster, node) = (switched_on(&query.cluster), switched_on(&query.node));
    match target(&served, &query) {
        Ok((targets, target)) => {
            let exporter = targets.pve(&target, cluster, node);
            respond(&exporter, Format::Text, &headers).await
        }
        Err(refused) => *refused,
    }
}

/// `/probe`: this exporter's own families for a target.
async fn probe(
    State(served): State<Served>,
    Query(query): Query<TargetQuery>,
    headers: HeaderMap,
) -> Response {
    match target(&served, &query) {
        Ok((targets, target)) => {
            let exporter = targets.probe(&target);
            let format = negotiate(headers.get(header::ACCEPT));
            respond(&exporter, format, &headers).await
        }
        Err(refused) => *refused,
    }
}

/// The kept target a query names, or the 400 answer saying why not.
fn target(
    served: &Served,
    query: &TargetQuery,
) -> Result<(Arc<Targets>, Arc<crate::targets::Target>), Box<Response>> {
    let refuse = |message: String| Box::new((StatusCode::BAD_REQUEST, message).into_response());
    let Some(targets) = &served.targets else {
        return Err(refuse(
            crate::targets::TargetError::UnknownModule(query.module.clone()).to_string(),
        ));
    };
    match targets.get(&query.module, &query.target) {
        Ok(target) => Ok((targets.clone(), target)),
        Err(e) => Err(refuse(e.to_string())),
    }
}

/// `exporter`'s current exposition in `format`, gzipped when the scraper accepts it.
async fn respond(exporter: &Exporter, format: Format, headers: &HeaderMap) -> Response {
    let gzip = accepts_gzip(headers.get(header::ACCEPT_ENCODING));
    let deadline = scrape_deadline(headers.get("x-prometheus-scrape-timeout-seconds"));
    let body = exporter.exposition(format, gzip, deadline).await;
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "Accept, Accept-Encoding"),
        ],
        body,
    )
        .into_response();
    if gzip {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// When to stop waiting for the API: Prometheus's scrape timeout less a margin for encoding
/// and sending (a tenth of it, at least 0.2 s and at most 1 s).
pub fn scrape_deadline(timeout: Option<&HeaderValue>) -> Option<tokio::time::Instant> {
    let seconds: f64 = timeout?.to_str().ok()?.trim().parse().ok()?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return None;
    }
    let margin = (seconds / 10.0).clamp(0.2, 1.0);
    let budget = Duration::from_secs_f64((seconds - margin).clamp(0.1, 3600.0));
    Some(tokio::time::Instant::now() + budget)
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

/// Whether `Accept-Encoding` allows gzip (and does not refuse it with `q=0`).
pub fn accepts_gzip(accept_encoding: Option<&HeaderValue>) -> bool {
    weighted(accept_encoding)
        .any(|(name, q)| (name.eq_ignore_ascii_case("gzip") || name == "*") && q > 0.0)
}

/// The items of an `Accept` or `Accept-Encoding` header with their `q` weights (1 when absent).
fn weighted(header: Option<&HeaderValue>) -> impl Iterator<Item = (&str, f32)> {
    let value = header.and_then(|v| v.to_str().ok()).unwrap_or("");
    value
        .split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (name, q)
        })
}

async fn landing() -> Html<&'static str> {
    Html(concat!(
        "<!DOCTYPE html>\n<html><head><title>Proxmox VE exporter</title></head><body>\n",
        "<h1>Proxmox VE exporter</h1>\n",
        "<p>Version ",
        env!("CARGO_PKG_VERSION"),
        ".</p>\n<ul>\n<li><a href=\"/metrics\">Metrics</a></li>\n",
        "<li><a href=\"/-/healthy\">Health</a></li>\n</ul>\n</body></html>\n"
    ))
}

/// OpenMetrics when the `Accept` header prefers it to the classic text format, else classic.
pub fn negotiate(accept: Option<&HeaderValue>) -> Format {
    let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
    for (media, q) in weighted(accept) {
        match media.to_ascii_lowercase().as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(accept: &str) -> Format {
        negotiate(Some(&HeaderValue::from_str(accept).unwrap()))
    }

    #[test]
    fn prometheus_gets_openmetrics_and_curl_gets_text() {
        assert_eq!(
            format(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        assert_eq!(format("*/*"), Format::Text);
        assert_eq!(format("text/plain;version=0.0.4"), Format::Text);
        assert_eq!(
            format("text/plain;q=1,application/openmetrics-text;q=0.5"),
            Format::Text
        );
        assert_eq!(negotiate(None), Format::Text);
    }

    #[test]
    fn gzip_when_accepted() {
        let accepts = |v: &str| accepts_gzip(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(accepts("gzip"));
        assert!(accepts("deflate, gzip;q=0.8"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("identity"));
        assert!(!accepts_gzip(None));
    }
}
