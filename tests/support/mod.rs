//! An in-process fake PVE API endpoint for the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use proxmox_exporter::pve::{ApiToken, Backoff, DispatcherConfig};

pub const TOKEN_ID: &str = "monitoring@pve!exporter";
pub const TOKEN_SECRET: &str = "0d5e1c2a-7f3b-4c9e-a1d2-3b4c5d6e7f80";

/// How a fake endpoint answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 with the body registered for the path (404 when there is none).
    Serve,
    /// This status, with PVE's usual `{"data":null}` body.
    Status(u16),
    /// Wait this long, then serve.
    Slow(Duration),
}

struct Shared {
    mode: Mutex<Mode>,
    hits: AtomicUsize,
    bodies: Vec<(String, String)>,
}

/// One fake endpoint, listening on 127.0.0.1.
pub struct FakeEndpoint {
    pub url: reqwest::Url,
    shared: Arc<Shared>,
}

impl FakeEndpoint {
    /// Serves `bodies` (API path below `/api2/json`, raw JSON body) in `mode`.
    pub async fn start(mode: Mode, bodies: &[(&str, &str)]) -> FakeEndpoint {
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            hits: AtomicUsize::new(0),
            bodies: bodies
                .iter()
                .map(|(p, b)| ((*p).to_owned(), (*b).to_owned()))
                .collect(),
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeEndpoint {
            url: reqwest::Url::parse(&format!("http://{addr}/")).unwrap(),
            shared,
        }
    }

    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// `https://` to this plain-HTTP listener: every TLS handshake fails.
    pub fn as_https(&self) -> reqwest::Url {
        let mut url = self.url.clone();
        url.set_scheme("https").unwrap();
        url
    }
}

async fn answer(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let expected = format!("PVEAPIToken={TOKEN_ID}={TOKEN_SECRET}");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return status(401);
    }
    let mode = shared.mode.lock().unwrap().clone();
    match mode {
        Mode::Status(code) => return status(code),
        Mode::Slow(pause) => tokio::time::sleep(pause).await,
        Mode::Serve => {}
    }
    let path = uri.path().strip_prefix("/api2/json").unwrap_or(uri.path());
    match shared.bodies.iter().find(|(p, _)| p == path) {
        Some((_, body)) => (
            [("content-type", "application/json;charset=UTF-8")],
            body.clone(),
        )
            .into_response(),
        None => status(501),
    }
}

fn status(code: u16) -> Response {
    let code = StatusCode::from_u16(code).unwrap();
    (
        code,
        [("content-type", "application/json")],
        "{\"data\":null}",
    )
        .into_response()
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
        token: ApiToken {
            id: TOKEN_ID.into(),
            secret: TOKEN_SECRET.into(),
        },
        insecure: false,
        timeout: Duration::from_secs(5),
        backoff: Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(2),
        },
    }
}
