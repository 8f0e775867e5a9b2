//! Spreads API requests over the cluster's endpoints.
//!
//! Every request goes to a randomly chosen endpoint that is not in backoff. When it fails in a
//! way that says something about the *endpoint* (no connection, a timeout, a TLS failure, a 5xx
//! answer) the endpoint is put in backoff, and the request is tried again on another endpoint
//! it has not been to yet: with two endpoints that is one retry, and a request fails only when
//! every endpoint failed it. 595/596 are different: the endpoint answered, but the node the
//! request was proxied to is unreachable; asking elsewhere would only wait for the same node
//! again, so such an answer is neither retried nor held against the endpoint. 4xx answers (a wrong token, a
//! missing privilege) would be the same everywhere and are not retried either.
//!
//! Backoff grows with consecutive failures up to a cap. When every endpoint is in backoff the
//! one whose backoff ends first is used anyway: a request is never refused for want of an
//! endpoint.

use crate::lock;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use progenitor_client::{Error as ClientError, ResponseValue};
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use super::client::{Auth, Client};
use super::secret::SecretFile;

/// The login path, as errors name it (the same on a backup server).
const LOGIN_PATH: &str = "/access/ticket";

/// The Proxmox product behind the endpoints: it names the credentials' header and cookie.
/// Both answer the login (`POST /access/ticket`) with the same fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Product {
    /// Proxmox VE: `PVEAPIToken=USER@REALM!NAME=SECRET`, `PVEAuthCookie`, port 8006.
    #[default]
    Pve,
    /// Proxmox Backup Server: `PBSAPIToken=USER@REALM!NAME:SECRET`, `PBSAuthCookie`, port 8007.
    Pbs,
}

impl Product {
    /// The `Authorization` header's value for a token.
    pub(crate) fn token_header(self, id: &str, secret: &str) -> String {
        match self {
            Product::Pve => format!("PVEAPIToken={id}={secret}"),
            Product::Pbs => format!("PBSAPIToken={id}:{secret}"),
        }
    }

    /// The `Cookie` header's value for a login ticket.
    fn cookie(self, ticket: &str) -> String {
        format!("{}={ticket}", self.cookie_name())
    }

    /// The login ticket's cookie.
    pub fn cookie_name(self) -> &'static str {
        match self {
            Product::Pve => "PVEAuthCookie",
            Product::Pbs => "PBSAuthCookie",
        }
    }

    /// The API's port when a target names none.
    pub fn default_port(self) -> u16 {
        match self {
            Product::Pve => 8006,
            Product::Pbs => 8007,
        }
    }
}

/// A generated client that the dispatcher can make for an endpoint (PVE's, PBS's).
pub trait ApiClient: Send + Sync + 'static {
    /// The client for the API at `base` (`https://host:port/api2/json`).
    fn at(base: &str, http: reqwest::Client, auth: Arc<Auth>) -> Self;
}

impl ApiClient for Client {
    fn at(base: &str, http: reqwest::Client, auth: Arc<Auth>) -> Self {
        Client::new_with_client(base, http, auth)
    }
}

/// A PVE API token: `USER@REALM!TOKENID` and its secret. The secret never shows in `Debug`.
#[derive(Clone)]
pub struct ApiToken {
    pub id: String,
    pub secret: SecretString,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// How the exporter proves who it is: an API token (recommended), or a user and password
/// from which the dispatcher gets a login ticket (`POST /access/ticket`), keeps it and renews
/// it before PVE's two hours run out.
#[derive(Clone, Debug)]
pub enum Credentials {
    Token(ApiToken),
    Password(Login),
}

/// A user (`USER@REALM`) and password. The password never shows in `Debug`.
#[derive(Clone)]
pub struct Login {
    pub user: String,
    pub password: SecretString,
    /// How long a ticket is used before a new one is asked for: PVE's tickets last two hours.
    pub renew_after: Duration,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .field("renew_after", &self.renew_after)
            .finish()
    }
}

/// A ticket is renewed after an hour: half its life, so a failed renewal has time to succeed.
pub const TICKET_RENEWAL: Duration = Duration::from_secs(3600);

impl Credentials {
    /// The token secret or the password: what must never show anywhere.
    pub fn secret(&self) -> &SecretString {
        match self {
            Credentials::Token(token) => &token.secret,
            Credentials::Password(login) => &login.password,
        }
    }
}

impl From<ApiToken> for Credentials {
    fn from(token: ApiToken) -> Self {
        Credentials::Token(token)
    }
}

/// How long a failing endpoint is skipped: `initial` after the first failure, doubling with
/// each further consecutive failure, never more than `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    fn after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }
}

/// Everything the dispatcher needs to reach the cluster.
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// Base URLs of the API endpoints, such as `https://pve1:8006/`.
    pub endpoints: Vec<reqwest::Url>,
    pub credentials: Credentials,
    /// What the endpoints run.
    pub product: Product,
    /// Skip TLS certificate verification (`--proxmox-api-insecure`).
    pub insecure: bool,
    /// Certificates to trust besides the system's, such as PVE's cluster CA
    /// (`--proxmox-ca-file`).
    pub extra_roots: Vec<reqwest::Certificate>,
    /// Upper bound on one request, connection included.
    pub timeout: Duration,
    pub backoff: Backoff,
    /// Requests (and so connections: HTTP/1.1 has one request at a time on a connection)
    /// under way at once to one endpoint; `None`: no limit.
    pub max_connections_per_endpoint: Option<usize>,
    /// Ask for gzipped answers (`Accept-Encoding: gzip`; pveproxy compresses those over 1 KiB).
    pub gzip: bool,
    /// The file the credentials' secret (token secret or password) was read from: read again
    /// when it changes, and at once after the API refused the secret in use.
    pub secret_file: Option<Arc<SecretFile>>,
}

/// Why the dispatcher could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("no Proxmox API endpoint given")]
    NoEndpoint,
    #[error("endpoint {0} must be an http:// or https:// URL without user, password or query")]
    BadEndpoint(String),
    #[error("the API token id or secret contains characters not allowed in an HTTP header")]
    BadToken,
    #[error("the user name is empty or the password is empty")]
    BadLogin,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// What went wrong with one request, after any retry. Never holds the token or a response body.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{endpoint}{path}: {kind}")]
pub struct ApiError {
    /// The endpoint that gave the final answer, as `https://host:port`.
    pub endpoint: String,
    /// The API path, such as `/nodes/pve1/disks/list`.
    pub path: String,
    pub kind: ErrorKind,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("HTTP {}{}", .0, status_hint(*.0))]
    Status(StatusCode),
    /// A 500 whose reason phrase is PVE's own message (`500 binary not installed: …`): the
    /// API answered, the endpoint is fine, and another endpoint would answer the same.
    #[error("HTTP {status}: {reason}")]
    Refused { status: StatusCode, reason: String },
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("answer does not decode: {0}")]
    Decode(String),
    #[error("{0}")]
    Other(String),
}

impl ErrorKind {
    /// The status as the request counter labels it.
    fn label(&self) -> String {
        match self {
            ErrorKind::Status(s) | ErrorKind::Refused { status: s, .. } => s.as_u16().to_string(),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Connection(_) => "connection_error".into(),
            ErrorKind::Decode(_) => "invalid_answer".into(),
            ErrorKind::Other(_) => "error".into(),
        }
    }

    /// 595/596: the node behind the endpoint is unreachable; the endpoint itself is fine.
    pub fn is_node_unreachable(&self) -> bool {
        matches!(self, ErrorKind::Status(s) if matches!(s.as_u16(), 595 | 596))
    }
}

fn status_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => " (the API token id or secret is wrong, or the token expired)",
        403 => {
            " (the token lacks a privilege: grant it the PVEAuditor role on /, on a backup \
             server Audit on /)"
        }
        595 | 596 => " (the node behind this endpoint is unreachable)",
        _ => "",
    }
}

/// What one attempt's failure means for the endpoint and the request.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// The endpoint failed: put it in backoff and try another.
    EndpointFault,
    /// Another endpoint may answer (an API path this one does not know), but this one is fine.
    TryElsewhere,
    /// The answer would be the same anywhere: give up.
    Final,
}

fn judge(kind: &ErrorKind) -> Verdict {
    match kind {
        ErrorKind::Timeout | ErrorKind::Connection(_) => Verdict::EndpointFault,
        ErrorKind::Status(s) if kind.is_node_unreachable() || s.is_client_error() => Verdict::Final,
        ErrorKind::Status(s) if s.as_u16() == 501 => Verdict::TryElsewhere,
        ErrorKind::Status(s) if s.is_server_error() => Verdict::EndpointFault,
        _ => Verdict::Final,
    }
}

struct Endpoint {
    label: String,
    /// The API's base URL, for the clients of other products ([`Dispatcher::call_as`]).
    base: String,
    client: Arc<Client>,
    health: Mutex<Health>,
    /// Permits for requests under way, with a connection limit.
    connections: Option<Arc<tokio::sync::Semaphore>>,
}

impl Dispatcher {
    /// Requests that may be under way at once over all endpoints (`None`: no limit).
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }
}

#[derive(Default)]
struct Health {
    failures: u32,
    until: Option<Instant>,
}

/// The set of endpoints, their health, and a count of requests by endpoint and status.
pub struct Dispatcher {
    endpoints: Vec<Endpoint>,
    product: Product,
    /// The HTTP client every endpoint's API client shares.
    http: reqwest::Client,
    /// What every endpoint's client sends; with a login, the ticket the dispatcher renews.
    auth: Arc<Auth>,
    login: Option<(Login, tokio::sync::Mutex<()>)>,
    /// The token id, to make the header again with a new secret.
    token_id: Option<String>,
    /// The password in use, replaced with a new one from `secret_file`.
    password: Mutex<Option<SecretString>>,
    secret_file: Option<Arc<SecretFile>>,
    /// The version of `secret_file`'s secret in use.
    secret_version: std::sync::atomic::AtomicU64,
    /// Tickets obtained so far.
    logins: std::sync::atomic::AtomicU64,
    backoff: Backoff,
    requests: Mutex<BTreeMap<(usize, String), u64>>,
    /// The connection limits' sum over the endpoints.
    capacity: Option<usize>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<&str> = self.endpoints.iter().map(|e| e.label.as_str()).collect();
        f.debug_struct("Dispatcher")
            .field("endpoints", &labels)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn new(config: &DispatcherConfig) -> Result<Self, SetupError> {
        if config.endpoints.is_empty() {
            return Err(SetupError::NoEndpoint);
        }
        let http = http_client(config)?;
        let (auth, login) = match &config.credentials {
            Credentials::Token(token) => {
                let value = (config.product).token_header(&token.id, token.secret.expose_secret());
                let mut header = HeaderValue::from_str(&value).map_err(|_| SetupError::BadToken)?;
                header.set_sensitive(true);
                (Auth::Token(Mutex::new(header)), None)
            }
            Credentials::Password(login) => {
                if login.user.is_empty() || login.password.expose_secret().is_empty() {
                    return Err(SetupError::BadLogin);
                }
                let held = (login.clone(), tokio::sync::Mutex::new(()));
                (Auth::Ticket(Mutex::new(None)), Some(held))
            }
        };
        let auth = Arc::new(auth);
        let endpoints = config
            .endpoints
            .iter()
            .map(|url| {
                let label = endpoint_label(url)?;
                let base = format!("{}/api2/json", url.as_str().trim_end_matches('/'));
                Ok(Endpoint {
                    label,
                    client: Arc::new(Client::at(&base, http.clone(), auth.clone())),
                    base,
                    health: Mutex::new(Health::default()),
                    connections: config
                        .max_connections_per_endpoint
                        .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1)))),
                })
            })
            .collect::<Result<Vec<_>, SetupError>>()?;
        let (token_id, password) = match &config.credentials {
            Credentials::Token(token) => (Some(token.id.clone()), None),
            Credentials::Password(login) => (None, Some(login.password.clone())),
        };
        let secret_version = config.secret_file.as_ref().map_or(0, |f| f.version());
        let capacity = config
            .max_connections_per_endpoint
            .map(|n| n.max(1) * endpoints.len());
        Ok(Dispatcher {
            capacity,
            product: config.product,
            http,
            endpoints,
            auth,
            login,
            token_id,
            password: Mutex::new(password),
            secret_file: config.secret_file.clone(),
            secret_version: std::sync::atomic::AtomicU64::new(secret_version),
            logins: std::sync::atomic::AtomicU64::new(0),
            backoff: config.backoff,
            requests: Mutex::new(BTreeMap::new()),
        })
    }

    /// Runs one API operation: `op` is called with an endpoint's client
    /// (`|c| async move { c.get_cluster_resources().send().await }`). When the endpoint
    /// fails (see [`Verdict`]), the request moves on to an endpoint it has not tried yet, so it
    /// fails only when every endpoint has failed it. `path` names the request in errors and logs.
    pub async fn call<T, F, Fut>(&self, path: &str, op: F) -> Result<T, ApiError>
    where
        F: Fn(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<ResponseValue<T>, ClientError<()>>>,
    {
        self.call_with(path, |i| self.endpoints[i].client.clone(), op)
            .await
    }

    /// [`Dispatcher::call`] with another product's generated client
    /// (`dispatcher.call_as(path, |c: Arc<pbs::client::Client>| …)`), made for the endpoint
    /// the request goes to.
    pub async fn call_as<C, T, F, Fut>(&self, path: &str, op: F) -> Result<T, ApiError>
    where
        C: ApiClient,
        F: Fn(Arc<C>) -> Fut,
        Fut: Future<Output = Result<ResponseValue<T>, ClientError<()>>>,
    {
        let client = |i: usize| {
            let base = &self.endpoints[i].base;
            Arc::new(C::at(base, self.http.clone(), self.auth.clone()))
        };
        self.call_with(path, client, op).await
    }

    async fn call_with<C, T, F, Fut>(
        &self,
        path: &str,
        client: impl Fn(usize) -> Arc<C>,
        op: F,
    ) -> Result<T, ApiError>
    where
        F: Fn(Arc<C>) -> Fut,
        Fut: Future<Output = Result<ResponseValue<T>, ClientError<()>>>,
    {
        let mut tried = Vec::with_capacity(2);
        // `new` refuses an empty endpoint list, so there is always a first choice.
        let mut next = self.choose(&tried).unwrap_or(0);
        loop {
            // The request, bound to the chosen endpoint's client.
            let on_endpoint = || op(client(next));
            let error = match self.attempt(next, path, &on_endpoint).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            tried.push(next);
            if judge(&error.kind) == Verdict::Final {
                return Err(error);
            }
            match self.choose(&tried) {
                Some(other) => {
                    tracing::debug!(endpoint = %self.endpoints[other].label, path, "retrying on another endpoint");
                    next = other;
                }
                None => return Err(error),
            }
        }
    }

    /// Requests made so far, as (endpoint, status, count), sorted.
    pub fn request_counts(&self) -> Vec<(String, String, u64)> {
        let counts = lock(&self.requests);
        counts
            .iter()
            .map(|((i, status), n)| (self.endpoints[*i].label.clone(), status.clone(), *n))
            .collect()
    }

    /// The endpoints that are in backoff now.
    pub fn endpoints_in_backoff(&self) -> Vec<String> {
        let now = Instant::now();
        self.endpoints
            .iter()
            .filter(|e| lock(&e.health).until.is_some_and(|u| u > now))
            .map(|e| e.label.clone())
            .collect()
    }

    /// Every endpoint, as `https://host:port`, in configuration order.
    pub fn endpoint_labels(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.label.clone()).collect()
    }

    /// A random endpoint out of backoff and not in `except`; when all are in backoff, the one
    /// whose backoff ends first. `None` when there is no endpoint besides those in `except`.
    fn choose(&self, except: &[usize]) -> Option<usize> {
        let now = Instant::now();
        let mut ready = Vec::with_capacity(self.endpoints.len());
        let mut soonest: Option<(Instant, usize)> = None;
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            if except.contains(&i) {
                continue;
            }
            match lock(&endpoint.health).until {
                Some(until) if until > now => {
                    if soonest.is_none_or(|(s, _)| until < s) {
                        soonest = Some((until, i));
                    }
                }
                _ => ready.push(i),
            }
        }
        if ready.is_empty() {
            return soonest.map(|(_, i)| i);
        }
        Some(ready[fastrand::usize(..ready.len())])
    }

    async fn attempt<T, F, Fut>(&self, index: usize, path: &str, op: &F) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<ResponseValue<T>, ClientError<()>>>,
    {
        let endpoint = &self.endpoints[index];
        self.follow_secret_file(false);
        // The secret this request goes out with (another request may bring a new one).
        let sent_with = self.secret_in_use();
        if let Some(ticket_error) = self.log_in_if_needed(index, None).await {
            return Err(ticket_error);
        }
        // Waits here while the endpoint has its most connections busy.
        let _connection = match &endpoint.connections {
            Some(limit) => limit.clone().acquire_owned().await.ok(),
            None => None,
        };
        let mut result = op().await;
        // pveproxy closes a connection after 5 s idle, after 100 requests and after any error
        // answer; a request that meets such a close on its way has not been answered. It goes
        // again on a fresh connection, and the endpoint is not to blame.
        for _ in 0..CLOSED_CONNECTION_RETRIES {
            if !matches!(&result, Err(e) if closed_under_request(e)) {
                break;
            }
            self.count(index, "connection_closed".into());
            tracing::debug!(endpoint = %endpoint.label, path, "connection closed under the request: again on a fresh one");
            result = op().await;
        }
        // A ticket PVE no longer takes (expired early, or the cluster's key rotated): one new
        // login, then the request once more.
        if let (Some(held), Err(ClientError::UnexpectedResponse(r))) = (self.auth.ticket(), &result)
            && r.status() == StatusCode::UNAUTHORIZED
        {
            self.count(index, "401".into());
            if let Some(ticket_error) = self.log_in_if_needed(index, Some(held.issued)).await {
                return Err(ticket_error);
            }
            result = op().await;
        }
        // A token PVE refuses: its file may hold a new one already (rotated, and the old one
        // revoked): read at once, and the request once more with it.
        if let (Auth::Token(_), Err(ClientError::UnexpectedResponse(r))) = (&*self.auth, &result)
            && r.status() == StatusCode::UNAUTHORIZED
            && self.secret_changed_since(sent_with)
        {
            self.count(index, "401".into());
            result = op().await;
        }
        let kind = match result {
            Ok(value) => {
                self.count(index, value.status().as_u16().to_string());
                self.succeeded(endpoint);
                return Ok(value.into_inner());
            }
            Err(e) => self.classify(e).await,
        };
        self.count(index, kind.label());
        match judge(&kind) {
            Verdict::EndpointFault => self.failed(endpoint, path, &kind),
            // The endpoint answered: whatever the answer, it is reachable.
            _ => self.succeeded(endpoint),
        }
        Err(ApiError {
            endpoint: endpoint.label.clone(),
            path: path.to_owned(),
            kind,
        })
    }

    /// Logins (tickets obtained) so far; 0 with a token.
    pub fn logins(&self) -> u64 {
        self.logins.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// With a login: gets a ticket through endpoint `index` when there is none, when it is due
    /// for renewal, or when it is the one issued at `refused` (PVE refused it). One login at a
    /// time; requests waiting for it use its ticket. A failed login is the request's error
    /// (a refused password shows as 401).
    async fn log_in_if_needed(&self, index: usize, refused: Option<Instant>) -> Option<ApiError> {
        let (login, one_at_a_time) = self.login.as_ref()?;
        let usable = |t: &Option<super::client::Ticket>| {
            t.as_ref().is_some_and(|t| {
                t.issued.elapsed() < login.renew_after && Some(t.issued) != refused
            })
        };
        if usable(&self.auth.ticket()) {
            return None;
        }
        let _turn = one_at_a_time.lock().await;
        if usable(&self.auth.ticket()) {
            return None; // another request logged in meanwhile
        }
        let endpoint = &self.endpoints[index];
        let log_in = || {
            let password = lock(&self.password)
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            let body = super::client::types::PostAccessTicketBody::builder()
                .username(login.user.clone())
                .password(password);
            endpoint.client.post_access_ticket().body(body).send()
        };
        let sent_with = self.secret_in_use();
        let mut answer = log_in().await;
        // A refused password: its file may hold a new one already.
        if matches!(&answer, Err(ClientError::UnexpectedResponse(r)) if r.status() == StatusCode::UNAUTHORIZED)
            && self.secret_changed_since(sent_with)
        {
            self.count(index, "401".into());
            answer = log_in().await;
        }
        let ticket = match answer {
            Ok(answer) => answer.into_inner().data.ticket.and_then(|t| t.0),
            Err(e) => {
                let kind = classify(e);
                self.count(index, kind.label());
                if judge(&kind) == Verdict::EndpointFault {
                    self.failed(endpoint, LOGIN_PATH, &kind);
                }
                return Some(self.error(index, LOGIN_PATH, kind));
            }
        };
        self.count(index, "200".into());
        let cookie = ticket
            .filter(|t| !t.is_empty())
            .and_then(|t| HeaderValue::from_str(&self.product.cookie(&t)).ok());
        let Some(mut cookie) = cookie else {
            let kind = ErrorKind::Decode("the login answer holds no usable ticket".into());
            return Some(self.error(index, LOGIN_PATH, kind));
        };
        cookie.set_sensitive(true);
        if let Auth::Ticket(held) = &*self.auth {
            *lock(held) = Some(super::client::Ticket {
                cookie,
                issued: Instant::now(),
            });
        }
        self.logins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(endpoint = %endpoint.label, user = %login.user, "logged in");
        None
    }

    /// The version of the secret file's secret in use now (0 without a file).
    fn secret_in_use(&self) -> u64 {
        self.secret_version
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// After the API refused the secret of version `sent_with`: whether a newer one is in use
    /// now, read from the file at once (or brought meanwhile by another request).
    fn secret_changed_since(&self, sent_with: u64) -> bool {
        if self.secret_file.is_none() {
            return false;
        }
        self.follow_secret_file(true);
        self.secret_in_use() != sent_with
    }

    /// Takes a new secret from the secret file, if there is one and it changed (looked at
    /// every [`super::secret::CHECK_EVERY`], or at once when `now`). Whether the secret
    /// changed.
    fn follow_secret_file(&self, now: bool) -> bool {
        use std::sync::atomic::Ordering;
        let Some(file) = &self.secret_file else {
            return false;
        };
        let version = file.refresh(now);
        if self.secret_version.swap(version, Ordering::AcqRel) == version {
            return false;
        }
        let secret = file.secret();
        match (&*self.auth, &self.token_id) {
            (Auth::Token(header), Some(id)) => {
                let value = self.product.token_header(id, secret.expose_secret());
                match HeaderValue::from_str(&value) {
                    Ok(mut new) => {
                        new.set_sensitive(true);
                        *lock(header) = new;
                    }
                    Err(_) => {
                        tracing::warn!(file = %file.path().display(), "the new token secret has characters not allowed in a header: the last one stays");
                        return false;
                    }
                }
            }
            (Auth::Ticket(held), _) => {
                *lock(&self.password) = Some(secret);
                // The next request logs in with the new password.
                *lock(held) = None;
            }
            _ => return false,
        }
        true
    }

    fn error(&self, index: usize, path: &str, kind: ErrorKind) -> ApiError {
        ApiError {
            endpoint: self.endpoints[index].label.clone(),
            path: path.to_owned(),
            kind,
        }
    }

    fn count(&self, index: usize, status: String) {
        let mut counts = lock(&self.requests);
        *counts.entry((index, status)).or_default() += 1;
    }

    fn succeeded(&self, endpoint: &Endpoint) {
        let mut health = lock(&endpoint.health);
        if health.failures > 0 {
            tracing::info!(endpoint = %endpoint.label, "endpoint answers again");
        }
        *health = Health::default();
    }

    fn failed(&self, endpoint: &Endpoint, path: &str, kind: &ErrorKind) {
        let mut health = lock(&endpoint.health);
        health.failures = health.failures.saturating_add(1);
        let pause = self.backoff.after(health.failures);
        health.until = Some(Instant::now() + pause);
        tracing::warn!(
            endpoint = %endpoint.label,
            path,
            error = %kind,
            failures = health.failures,
            backoff_seconds = pause.as_secs_f64(),
            "endpoint failed; skipping it for a while"
        );
    }
}

impl Dispatcher {
    /// What a failed request's error means. A backup server puts a handler's error message
    /// in the body of its 4xx answer (`datastore is being deleted`), where PVE puts it in
    /// the status line: read it (at most [`REASON_CHARS`] of it), except for a 401.
    async fn classify(&self, error: ClientError<()>) -> ErrorKind {
        match error {
            ClientError::UnexpectedResponse(response)
                if self.product == Product::Pbs
                    && response.status().is_client_error()
                    && response.status() != StatusCode::UNAUTHORIZED =>
            {
                let status = response.status();
                // The first few KiB are enough for a message; the rest is not read.
                let mut response = response;
                let mut body = Vec::new();
                while body.len() < 4096 {
                    match response.chunk().await {
                        Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                match reason_in(&String::from_utf8_lossy(&body)) {
                    Some(reason) => ErrorKind::Refused { status, reason },
                    None => ErrorKind::Status(status),
                }
            }
            other => classify(other),
        }
    }
}

/// At most this many characters of an error message from an answer's body.
const REASON_CHARS: usize = 300;

/// The message of an error answer's body: its first line (PBS writes it as plain text, or as
/// a JSON string), cut at [`REASON_CHARS`].
fn reason_in(body: &str) -> Option<String> {
    let text = body.trim();
    let text = serde_json::from_str::<String>(text).unwrap_or_else(|_| text.to_owned());
    let line = text.lines().next().unwrap_or("").trim();
    (!line.is_empty()).then(|| line.chars().take(REASON_CHARS).collect())
}

fn classify(error: ClientError<()>) -> ErrorKind {
    match error {
        ClientError::CommunicationError(e) | ClientError::ResponseBodyError(e) => transport(&e),
        ClientError::ErrorResponse(rv) => ErrorKind::Status(rv.status()),
        ClientError::UnexpectedResponse(response) => {
            let status = response.status();
            // PVE puts a handler's error message in the status line; a standard phrase (or
            // none) means the 500 came from something else on the way.
            let reason = response
                .extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| String::from_utf8_lossy(r.as_ref()).trim().to_owned())
                .filter(|r| !r.is_empty() && Some(r.as_str()) != status.canonical_reason());
            match reason {
                Some(reason) if status == StatusCode::INTERNAL_SERVER_ERROR => {
                    ErrorKind::Refused { status, reason }
                }
                _ => ErrorKind::Status(status),
            }
        }
        // Only the decoder's message: the body itself may be large and is not ours to log.
        ClientError::InvalidResponsePayload(_, e) => ErrorKind::Decode(e.to_string()),
        ClientError::InvalidRequest(m) | ClientError::Custom(m) => ErrorKind::Other(m),
        ClientError::InvalidUpgrade(e) => transport(&e),
    }
}

/// Tries on a fresh connection after the server closed one under a request.
const CLOSED_CONNECTION_RETRIES: usize = 2;

/// Whether the request failed because the server closed its (kept-alive) connection before
/// answering: no answer came, and a new connection may well get one.
fn closed_under_request(error: &ClientError<()>) -> bool {
    let (ClientError::CommunicationError(e) | ClientError::ResponseBodyError(e)) = error else {
        return false;
    };
    if e.is_timeout() || e.is_connect() {
        return false;
    }
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn transport(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    if let Some(status) = e.status() {
        return ErrorKind::Status(status);
    }
    // reqwest's own message is only "error sending request"; the cause is in the sources.
    let mut message = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&s.to_string());
        source = s.source();
    }
    if message.is_empty() {
        message = e.to_string();
    }
    ErrorKind::Connection(message)
}

/// `https://host:port` for logs and labels; refuses URLs that carry credentials or a query.
fn endpoint_label(url: &reqwest::Url) -> Result<String, SetupError> {
    let bad = || {
        SetupError::BadEndpoint(format!(
            "{}://{}",
            url.scheme(),
            url.host_str().unwrap_or("?")
        ))
    };
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
    {
        return Err(bad());
    }
    let host = url.host_str().ok_or_else(bad)?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Ok(match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// Makes ring the process's TLS crypto provider, unless one is set already. reqwest is built
/// without a default provider (ring builds much faster than aws-lc), so any `reqwest::Client`
/// needs this first; the dispatcher calls it itself.
pub fn install_crypto_provider() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn http_client(config: &DispatcherConfig) -> Result<reqwest::Client, SetupError> {
    install_crypto_provider();

    let mut builder = reqwest::Client::builder();
    for root in &config.extra_roots {
        builder = builder.add_root_certificate(root.clone());
    }
    builder
        .user_agent(concat!("proxmox-exporter/", env!("CARGO_PKG_VERSION")))
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(config.max_connections_per_endpoint.unwrap_or(usize::MAX))
        .gzip(config.gzip)
        .tcp_keepalive(Duration::from_secs(60))
        .danger_accept_invalid_certs(config.insecure)
        .build()
        .map_err(|e| SetupError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        let seconds: Vec<u64> = (1..=8).map(|n| b.after(n).as_secs()).collect();
        assert_eq!(seconds, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.after(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn verdicts() {
        let status = |s: u16| ErrorKind::Status(StatusCode::from_u16(s).unwrap());
        assert_eq!(judge(&status(500)), Verdict::EndpointFault);
        assert_eq!(judge(&status(502)), Verdict::EndpointFault);
        assert_eq!(judge(&status(501)), Verdict::TryElsewhere);
        assert_eq!(judge(&status(595)), Verdict::Final);
        assert_eq!(judge(&status(596)), Verdict::Final);
        assert_eq!(judge(&status(401)), Verdict::Final);
        assert_eq!(judge(&status(403)), Verdict::Final);
        assert_eq!(judge(&ErrorKind::Timeout), Verdict::EndpointFault);
        assert_eq!(judge(&ErrorKind::Decode("x".into())), Verdict::Final);
    }

    #[test]
    fn labels_drop_paths_and_refuse_credentials() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            endpoint_label(&url("https://pve1:8006/")).unwrap(),
            "https://pve1:8006"
        );
        assert_eq!(
            endpoint_label(&url("https://10.0.0.1/")).unwrap(),
            "https://10.0.0.1:443"
        );
        assert_eq!(
            endpoint_label(&url("https://[::1]:8006")).unwrap(),
            "https://[::1]:8006"
        );
        let err = endpoint_label(&url("https://root:hunter2@pve1:8006/")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(endpoint_label(&url("ftp://pve1/")).is_err());
    }

    #[test]
    fn a_backup_servers_error_message_is_read_from_its_body() {
        assert_eq!(
            reason_in("datastore is being deleted\n").as_deref(),
            Some("datastore is being deleted")
        );
        assert_eq!(
            reason_in("\"offline maintenance mode: disk swap\"").as_deref(),
            Some("offline maintenance mode: disk swap")
        );
        assert_eq!(reason_in("  \n"), None);
        let long = "x".repeat(1000);
        assert_eq!(reason_in(&long).map(|r| r.len()), Some(REASON_CHARS));
    }

    #[test]
    fn the_secret_stays_out_of_debug() {
        let token = ApiToken {
            id: "monitoring@pve!exporter".into(),
            secret: SecretString::from("5e3c7a52-0000-4000-8000-123456789abc"),
        };
        let shown = format!("{token:?}");
        assert!(shown.contains("monitoring@pve!exporter"));
        assert!(!shown.contains("5e3c7a52"), "{shown}");
    }
}
