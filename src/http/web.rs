//! The exporter's own endpoint: TLS and basic authentication from a web configuration file in
//! the format of the Prometheus exporter-toolkit (`--web.config.file`), so the same file works
//! for this exporter and for node_exporter:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: exporter.crt
//!   key_file: exporter.key
//! basic_auth_users:
//!   prometheus: $2y$10$...   # bcrypt hash, e.g. from `htpasswd -nBC 10 prometheus`
//! ```
//!
//! Relative paths are relative to the file. A setting this exporter does not implement is
//! refused rather than ignored, since ignoring a security setting would be worse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// The checked web configuration.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// User → bcrypt hash. Empty: no authentication.
    pub users: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The web configuration in use, replaced by a reload. TLS is read for each new connection and
/// the users for each request, so a reload takes effect at once; switching TLS on or off needs
/// a restart (the listener is one or the other).
#[derive(Clone, Debug, Default)]
pub struct WebHandle(Arc<std::sync::RwLock<WebConfig>>);

impl WebHandle {
    pub fn new(config: WebConfig) -> Self {
        WebHandle(Arc::new(std::sync::RwLock::new(config)))
    }

    pub fn current(&self) -> WebConfig {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `new` can replace the configuration in use; the error says why not.
    fn check(&self, new: &WebConfig) -> Result<(), String> {
        match (self.current().tls.is_some(), new.tls.is_some()) {
            (true, false) => {
                Err("TLS cannot be switched off by a reload: restart the exporter".into())
            }
            (false, true) => {
                Err("TLS cannot be switched on by a reload: restart the exporter".into())
            }
            _ => Ok(()),
        }
    }

    /// Uses `new` from now on, unless it would switch TLS on or off (the error says so).
    pub fn replace(&self, new: WebConfig) -> Result<(), String> {
        self.check(&new)?;
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    }
}

impl WebConfig {
    /// Reads and checks `path`; the error says what is wrong and where.
    pub fn load(path: &Path) -> Result<WebConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        WebConfig::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a configuration whose relative paths are relative to `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<WebConfig, String> {
        let file: File = if text.trim().is_empty() {
            File {
                tls_server_config: None,
                basic_auth_users: BTreeMap::new(),
            }
        } else {
            serde_saphyr::from_str(text).map_err(|e| e.to_string())?
        };
        for (user, hash) in &file.basic_auth_users {
            // bcrypt hashes: $2a$, $2b$, $2x$ or $2y$, a cost, then 53 characters.
            let well_formed =
                hash.len() == 60 && hash.starts_with("$2") && hash.as_bytes()[3] == b'$';
            if !well_formed {
                return Err(format!("basic_auth_users.{user}: not a bcrypt hash"));
            }
        }
        let tls = match file.tls_server_config {
            Some(tls) => Some(crate::http::tls::acceptor_from_files(
                &dir.join(tls.cert_file),
                &dir.join(tls.key_file),
            )?),
            None => None,
        };
        Ok(WebConfig {
            tls,
            users: Arc::new(file.basic_auth_users),
        })
    }

    /// Whether `authorization` (a `Basic` header) names a user with the right password.
    pub fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some(encoded) = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(pair) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = pair.split_once(':') else {
            return false;
        };
        self.users
            .get(user)
            .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false))
    }
}

/// Middleware: asks for credentials unless the request carries a configured user's.
pub async fn require_auth(State(web): State<WebHandle>, request: Request, next: Next) -> Response {
    let web = web.current();
    if web.users.is_empty() {
        return next.run(request).await;
    }
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    // bcrypt is slow on purpose: check it off the async threads.
    let allowed = {
        let web = web.clone();
        tokio::task::spawn_blocking(move || web.allows(authorization.as_ref()))
            .await
            .unwrap_or(false)
    };
    if allowed {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"proxmox-exporter\"")],
        "Unauthorized\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    #[test]
    fn users_with_bcrypt_hashes() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let text = format!("basic_auth_users:\n  prometheus: '{hash}'\n");
        let web = WebConfig::parse(&text, Path::new(".")).unwrap();
        assert!(web.tls.is_none());
        assert!(web.allows(Some(&basic("prometheus", "s3cret"))));
        assert!(!web.allows(Some(&basic("prometheus", "wrong"))));
        assert!(!web.allows(Some(&basic("someone", "s3cret"))));
        assert!(!web.allows(None));
        assert!(!web.allows(Some(&HeaderValue::from_static("Basic !!!"))));
        assert!(!format!("{web:?}").contains(&hash));
    }

    #[test]
    fn an_empty_file_allows_everyone() {
        let web = WebConfig::parse("", Path::new(".")).unwrap();
        assert!(web.allows(None));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, needle) in [
            (
                "basic_auth_users:\n  alice: plaintext\n",
                "basic_auth_users.alice",
            ),
            (
                "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
                "/nonexistent.crt",
            ),
            ("http_server_config:\n  http2: true\n", "http_server_config"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
                "client_ca_file",
            ),
        ] {
            let err = WebConfig::parse(text, Path::new("/")).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn a_reload_may_change_users_and_certificates_but_not_switch_tls() {
        let plain = WebHandle::new(WebConfig::default());
        let tls = || WebConfig {
            tls: Some(crate::sim::self_signed().unwrap()),
            users: Arc::default(),
        };
        let error = plain.replace(tls()).unwrap_err();
        assert!(error.contains("switched on"), "{error}");
        assert!(
            plain.current().tls.is_none(),
            "refused, and the running one stays"
        );
        let users = WebConfig {
            tls: None,
            users: Arc::new(BTreeMap::from([("u".to_owned(), "h".to_owned())])),
        };
        plain.replace(users).unwrap();
        assert_eq!(plain.current().users.len(), 1);
        let secure = WebHandle::new(tls());
        assert!(secure.replace(tls()).is_ok(), "a new certificate");
        assert!(
            secure
                .replace(WebConfig::default())
                .unwrap_err()
                .contains("switched off")
        );
    }
}
