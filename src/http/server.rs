//! The routes: `/metrics` (the flags' cluster), `/pve` and `/probe` (the configuration file's
//! targets), a landing page and health endpoints, served over plain HTTP or with the web
//! configuration's TLS and basic authentication.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use super::tls::TlsListener;
use super::web::{WebConfig, WebHandle};
use crate::exporter::targets::{Target, TargetError, Targets};
use crate::exporter::{Exporter, Format, accepts_gzip, negotiate};

/// Requests handled at once; more wait their turn. Scrapes share one collection, so this
/// only bounds the memory a flood of connections can take.
pub const MAX_CONCURRENT_SCRAPES: usize = 256;

/// Re-reads the configuration files and uses them; the error says what is wrong (and the
/// configuration in use stays).
pub type Reload = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the routes serve: the cluster of the flags on `/metrics` (if any), and the targets
/// of the configuration file's modules on `/pve` and `/probe` (if any).
#[derive(Clone, Default)]
pub struct Served {
    pub exporter: Option<Arc<Exporter>>,
    pub targets: Option<Arc<Targets>>,
    /// `POST /-/reload` (`--web.enable-lifecycle`); `None`: the route answers 403.
    pub reload: Option<Reload>,
    /// How reloads went, for a `/metrics` without a cluster of its own.
    pub reloads: Option<Arc<crate::exporter::reloads::Reloads>>,
}

/// The exporter's routes for the flags' cluster.
pub fn router(exporter: Arc<Exporter>) -> Router {
    router_with(Served {
        exporter: Some(exporter),
        ..Served::default()
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
        .route("/-/reload", axum::routing::post(reload).put(reload))
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
        ..Served::default()
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
    serve_live(listener, served, WebHandle::new(web), shutdown).await
}

/// [`serve`] with a web configuration that reloads replace.
pub async fn serve_live(
    listener: TcpListener,
    served: Served,
    web: WebHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Authentication is checked on every request against the users in use (none: open).
    let app = router_with(served).layer(axum::middleware::from_fn_with_state(
        web.clone(),
        super::web::require_auth,
    ));
    match web.current().tls {
        Some(_) => {
            axum::serve(TlsListener::new(listener, web), app)
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
        let reloads = served
            .reloads
            .as_ref()
            .map(|r| r.text())
            .unwrap_or_default();
        let body = format!(
            "# HELP proxmox_exporter_targets Targets of /pve and /probe kept now.\n\
             # TYPE proxmox_exporter_targets gauge\nproxmox_exporter_targets {targets}\n\
             # HELP proxmox_exporter_build_info The exporter's version; always 1.\n\
             # TYPE proxmox_exporter_build_info gauge\n\
             proxmox_exporter_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        ) + &reloads;
        return ([(header::CONTENT_TYPE, Format::Text.content_type())], body).into_response();
    };
    respond(&exporter, format, &headers).await
}

/// `POST /-/reload`: re-reads `--config.file` and `--web.config.file` when
/// `--web.enable-lifecycle` allows it (as Prometheus does). 200, or 500 saying what is wrong
/// in the new files (the configuration in use stays).
async fn reload(State(served): State<Served>) -> Response {
    let Some(reload) = served.reload else {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n").into_response();
    };
    match tokio::task::spawn_blocking(move || reload()).await {
        Ok(Ok(())) => (StatusCode::OK, "OK\n").into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "reload failed\n").into_response(),
    }
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
        Ok((targets, target)) => match targets.pve(&target, &query.module, cluster, node) {
            Ok(exporter) => respond(&exporter, Format::Text, &headers).await,
            Err(error) => (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
        },
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

/// The kept target a query names, or the answer saying why not: 400, or 403 for a host the
/// module may not be used with. Nothing is connected to for a refused target.
fn target(
    served: &Served,
    query: &TargetQuery,
) -> Result<(Arc<Targets>, Arc<Target>), Box<Response>> {
    let refuse = |error: TargetError| {
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
        tracing::debug!(module = %query.module, %status, "target refused: {error}");
        Box::new((status, error.to_string()).into_response())
    };
    let Some(targets) = &served.targets else {
        return Err(refuse(TargetError::UnknownModule(query.module.clone())));
    };
    match targets.get(&query.module, &query.target) {
        Ok(target) => Ok((targets.clone(), target)),
        Err(e) => Err(refuse(e)),
    }
}

/// `exporter`'s current exposition in `format`, gzipped when the scraper accepts it.
async fn respond(exporter: &Exporter, format: Format, headers: &HeaderMap) -> Response {
    let gzip = accepts_gzip(headers.get(header::ACCEPT_ENCODING));
    let deadline = scrape_deadline(headers.get("x-prometheus-scrape-timeout-seconds"));
    let body = match exporter.exposition(format, gzip, deadline).await {
        crate::exporter::Body::Whole(bytes) => axum::body::Body::from(bytes),
        crate::exporter::Body::Chunks(chunks) => axum::body::Body::from_stream(
            futures_util::stream::unfold(chunks, |mut chunks| async move {
                let chunk = chunks.recv().await?;
                Some((Ok::<_, std::convert::Infallible>(chunk), chunks))
            }),
        ),
    };
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
