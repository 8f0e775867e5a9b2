//! How a simulated endpoint treats connections, after pveproxy (`PVE/APIServer/AnyEvent.pm`
//! and pveproxy's settings): keep-alive connections closed after some idle time or some
//! number of requests, or after an error answer; a few workers serve everything; answers
//! gzipped on request; `/nodes/{other}/…` proxied to the owning node; a 401 answered late.
//! Every behaviour can be switched off ([`Behaviour::default`] is the simulator as it always
//! was), and each endpoint counts what it cost ([`Stats`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::SimApi;
use crate::lock;

/// How a simulated endpoint serves. `Behaviour::default()`: connections kept open for ever,
/// no worker limit, nothing compressed, no proxy hop, 401 at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Behaviour {
    /// Close a keep-alive connection after this long without a request (pveproxy: 5 s).
    pub idle_timeout: Option<Duration>,
    /// Close a connection after answering this many requests on it (pveproxy: 100).
    pub max_requests_per_connection: Option<u32>,
    /// Close the connection after any answer with status ≥ 400 (pveproxy does).
    pub close_after_error: bool,
    /// Gzip answers over 1 KiB when the request accepts gzip (pveproxy does).
    pub gzip: bool,
    /// Requests one node works on at once (pveproxy: 3 worker processes); `None`: no limit.
    pub workers: Option<usize>,
    /// A worker's time per request, held while it works.
    pub service_time: Duration,
    /// A worker's time per KiB of answer (encoding it), on top of `service_time`.
    pub service_per_kib: Duration,
    /// `/nodes/{other}/…` is passed on to the owning node (a second hop of this duration, and
    /// the owning node's worker time); `None`: every node's answers are local.
    pub proxy_hop: Option<Duration>,
    /// A worker's time per TLS handshake (the server's key operation).
    pub tls_handshake: Duration,
    /// A request without valid credentials is answered 401 after this (pveproxy: 3 s).
    pub unauthorized_delay: Duration,
    /// Bytes per second the endpoint's answers share (a slow link); `None`: unlimited.
    pub bandwidth: Option<u64>,
}

impl Behaviour {
    /// pveproxy's behaviour with its default settings. The worker times are assumptions (PVE
    /// publishes none): 2 ms per request, 20 µs per KiB of JSON (about 50 MB/s), 1 ms per TLS
    /// handshake (an RSA-2048 signature, PVE's default certificate).
    pub fn pveproxy() -> Behaviour {
        Behaviour {
            idle_timeout: Some(Duration::from_secs(5)),
            max_requests_per_connection: Some(100),
            close_after_error: true,
            gzip: true,
            workers: Some(3),
            service_time: Duration::from_millis(2),
            service_per_kib: Duration::from_micros(20),
            proxy_hop: Some(Duration::from_millis(2)),
            tls_handshake: Duration::from_millis(1),
            unauthorized_delay: Duration::from_secs(3),
            bandwidth: None,
        }
    }

    /// Worker time for an answer of `bytes`.
    pub fn work(&self, bytes: usize) -> Duration {
        self.service_time + self.service_per_kib.mul_f64(bytes as f64 / 1024.0)
    }
}

/// What one endpoint (one node's pveproxy) has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Requests clients sent to this endpoint.
    pub requests: u64,
    /// TCP connections clients opened.
    pub connections: u64,
    /// TLS handshakes completed.
    pub handshakes: u64,
    /// Answer bytes sent (bodies, after compression).
    pub bytes_sent: u64,
    /// Time its workers spent, in microseconds (the simulated service time and the real time
    /// spent compressing).
    pub worker_micros: u64,
    /// Requests other endpoints passed on to this node (the proxy hop).
    pub proxied: u64,
}

impl Stats {
    /// The counts since `earlier` (or without `earlier`'s share: never below zero).
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            requests: self.requests.saturating_sub(earlier.requests),
            connections: self.connections.saturating_sub(earlier.connections),
            handshakes: self.handshakes.saturating_sub(earlier.handshakes),
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            worker_micros: self.worker_micros.saturating_sub(earlier.worker_micros),
            proxied: self.proxied.saturating_sub(earlier.proxied),
        }
    }

    /// The sum of several endpoints' counts.
    pub fn total<'a>(all: impl IntoIterator<Item = &'a Stats>) -> Stats {
        all.into_iter().fold(Stats::default(), |sum, s| Stats {
            requests: sum.requests + s.requests,
            connections: sum.connections + s.connections,
            handshakes: sum.handshakes + s.handshakes,
            bytes_sent: sum.bytes_sent + s.bytes_sent,
            worker_micros: sum.worker_micros + s.worker_micros,
            proxied: sum.proxied + s.proxied,
        })
    }
}

/// The live counters behind [`Stats`].
#[derive(Default)]
pub(super) struct Counters {
    pub requests: AtomicU64,
    pub connections: AtomicU64,
    pub handshakes: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub worker_micros: AtomicU64,
    pub proxied: AtomicU64,
}

impl Counters {
    pub fn stats(&self) -> Stats {
        Stats {
            requests: self.requests.load(Ordering::SeqCst),
            connections: self.connections.load(Ordering::SeqCst),
            handshakes: self.handshakes.load(Ordering::SeqCst),
            bytes_sent: self.bytes_sent.load(Ordering::SeqCst),
            worker_micros: self.worker_micros.load(Ordering::SeqCst),
            proxied: self.proxied.load(Ordering::SeqCst),
        }
    }

    pub fn add_work(&self, spent: Duration) {
        let micros = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
        self.worker_micros.fetch_add(micros, Ordering::SeqCst);
    }
}

/// Marks an answer that is not sent: the connection is closed instead.
#[derive(Clone, Copy, Debug)]
pub(super) struct HangUp;

/// One connection's requests so far, whether one is being answered, and when the last
/// answer went out.
struct Connection {
    answered: u32,
    busy: bool,
    last: Instant,
}

impl SimApi {
    /// Accepts connections on `listener` (completing a TLS handshake first when `tls` is
    /// given) and serves each in its own task, until this future is dropped.
    pub(super) async fn accept(
        self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<()> {
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of file descriptors and the like: try again shortly.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            self.counters().connections.fetch_add(1, Ordering::SeqCst);
            let api = self.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(tls) => {
                        let handshake =
                            tokio::time::timeout(Duration::from_secs(5), tls.accept(tcp));
                        if let Ok(Ok(stream)) = handshake.await {
                            api.counters().handshakes.fetch_add(1, Ordering::SeqCst);
                            let cost = api.behaviour().tls_handshake;
                            if !cost.is_zero() {
                                api.shared.hold(&api.shared.node_of(&api), cost).await;
                            }
                            api.serve_connection(stream).await;
                        }
                    }
                    None => api.serve_connection(tcp).await,
                }
            });
        }
    }

    async fn serve_connection<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let behaviour = self.behaviour();
        let mut close_idle = self.shared.close_idle.subscribe();
        let state = Arc::new(std::sync::Mutex::new(Connection {
            answered: 0,
            busy: false,
            last: Instant::now(),
        }));
        let service = {
            let state = state.clone();
            let behaviour = behaviour.clone();
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let (api, state, behaviour) = (self.clone(), state.clone(), behaviour.clone());
                async move {
                    lock(&state).busy = true;
                    let request: Request = request.map(Body::new);
                    let mut response = super::answer(&api, request).await;
                    let mut state = lock(&state);
                    state.busy = false;
                    state.last = Instant::now();
                    state.answered += 1;
                    if response.extensions().get::<HangUp>().is_some() {
                        return Err(std::io::Error::other("the simulator hangs up"));
                    }
                    let close = (behaviour.close_after_error && response.status().as_u16() >= 400)
                        || behaviour
                            .max_requests_per_connection
                            .is_some_and(|most| state.answered >= most);
                    if close {
                        response
                            .headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok::<Response, std::io::Error>(response)
                }
            })
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let idle = async {
            match behaviour.idle_timeout {
                Some(idle) => idle_for(&state, idle).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(idle);
        loop {
            tokio::select! {
                _ = connection.as_mut() => return,
                () = &mut idle => break,
                Ok(()) = close_idle.changed() => {
                    if !lock(&state).busy {
                        break;
                    }
                }
            }
        }
        // Nothing in flight: hyper closes the connection at once.
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}

/// Completes once the connection has gone `idle` without a request being answered.
async fn idle_for(state: &std::sync::Mutex<Connection>, idle: Duration) {
    loop {
        let wait = {
            let state = lock(state);
            let quiet = state.last.elapsed();
            if !state.busy && quiet >= idle {
                return;
            }
            if state.busy { idle } else { idle - quiet }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Gzips `body` (at zlib's default level, as pveproxy) when the behaviour and the request
/// allow and it is over 1 KiB, as pveproxy does; `None`: sent as it is.
pub(super) fn maybe_gzip(
    behaviour: &Behaviour,
    accepts_gzip: bool,
    body: &[u8],
) -> Option<bytes::Bytes> {
    (behaviour.gzip && accepts_gzip && body.len() > 1024)
        .then(|| crate::exporter::gzipped(body, flate2::Compression::default()))
}
