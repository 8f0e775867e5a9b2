//! Modules of credentials for `/pve` and `/probe`, in prometheus-pve-exporter's `pve.yml`
//! format, so its file works here unchanged:
//!
//! ```yaml
//! default:                      # the module name, ?module=default
//!   user: monitoring@pve
//!   token_name: exporter
//!   token_value: 5e3c7a52-…     # or token_value_file: /run/secrets/pve-token
//!   verify_ssl: true
//! legacy:
//!   user: monitoring@pve
//!   password: …                 # or password_file: …; a login ticket, renewed hourly
//!   timeout: 10                 # seconds per API request (default 5)
//!   port: 8006
//! ```
//!
//! Keys of this exporter's own, beside the peer's: `allowed_targets` (the targets a module may
//! be used with: hosts, `*.example.com` patterns, CIDR ranges; see [`super::target`]),
//! `scheme: http` (plain HTTP to the API, for a simulator or a test: the credentials then
//! travel unencrypted) and `product: pbs` (the targets are Proxmox Backup Servers: scraped on
//! `/probe` with the `pbs_*` collectors, port 8007 unless `port` says otherwise, the token
//! sent as PBS wants it; `pve`, the default, for Proxmox VE).
//!
//! The environment alternative (`PVE_USER`, `PVE_TOKEN_NAME`, `PVE_TOKEN_VALUE`,
//! `PVE_PASSWORD`, `PVE_VERIFY_SSL`, `PVE_MODULE`) makes one module, as the peer does.
//! Keys the peer passes on to its API library but that change nothing here (`backend: https`,
//! `service: PVE`, `mode: json`) are ignored with a warning; anything else unknown, and any bad
//! value, is refused naming the module and the key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use std::sync::Arc;

use super::target::{self, AllowList};
use crate::pve::secret::SecretFile;
use crate::pve::{ApiToken, Credentials, Login, Product};

/// The peer's default request timeout, in seconds.
const DEFAULT_TIMEOUT: f64 = 5.0;

/// One module: how to reach and log in to a target.
#[derive(Clone, Debug)]
pub struct Module {
    /// What its targets run (`product: pbs`: a backup server, scraped on `/probe`).
    pub product: Product,
    pub credentials: Credentials,
    /// Verify the API's TLS certificate (default true).
    pub verify_ssl: bool,
    /// Upper bound on one API request.
    pub timeout: Duration,
    /// The API port when the target does not name one (default 8006).
    pub port: u16,
    /// A path the API sits under behind a reverse proxy (`path_prefix`).
    pub path_prefix: Option<String>,
    /// The targets it may be used with (`allowed_targets`, else `--allowed-targets`); `None`:
    /// any.
    pub allowed: Option<AllowList>,
    /// Plain HTTP to the API (`scheme: http`): asked for by the operator, never by a target.
    pub plain_http: bool,
    /// `token_value_file` or `password_file`: read again when it changes.
    pub secret_file: Option<Arc<SecretFile>>,
    /// A digest of the module's settings as written: a reload keeps the targets of a module
    /// whose settings are the same, and starts the others afresh.
    pub fingerprint: u64,
}

/// Why a target is not asked; the message is the HTTP answer, and names no secret.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refusal {
    /// Not a host (400).
    #[error("target `{target}`: {reason}")]
    Bad { target: String, reason: String },
    /// A host the module may not be used with (403).
    #[error(
        "target `{target}`: {host} is not among the targets module {module} may be used with \
         (allowed_targets)"
    )]
    NotAllowed {
        target: String,
        host: String,
        module: String,
    },
}

/// Every module by name, and the warnings found while reading them.
#[derive(Clone, Debug, Default)]
pub struct Modules {
    pub modules: BTreeMap<String, Module>,
    pub warnings: Vec<String>,
}

impl Modules {
    /// Reads `path`; the error names the file, and the module and key at fault.
    pub fn load(path: &Path) -> Result<Modules, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Modules::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a file's text; relative secret file paths are relative to `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Modules, String> {
        if text.trim().is_empty() {
            return Err("no module is defined".into());
        }
        let document: Value =
            serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
        let Value::Object(entries) = document else {
            return Err("expected a mapping of module names to settings".into());
        };
        if entries.is_empty() {
            return Err("no module is defined".into());
        }
        let mut modules = Modules::default();
        for (name, settings) in entries {
            let Value::Object(settings) = settings else {
                return Err(format!("module {name}: expected a mapping of settings"));
            };
            if settings.is_empty() {
                return Err(format!("module {name}: no settings"));
            }
            let module = module(&name, &settings, dir, &mut modules.warnings)?;
            modules.modules.insert(name, module);
        }
        Ok(modules)
    }

    /// The module the `PVE_*` variables describe, when `PVE_USER` is set (as the peer reads
    /// them: `PVE_VERIFY_SSL` is true unless `false` or `0`); `None` without `PVE_USER`.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Option<Modules>, String> {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("PVE_"))
            .collect();
        if !vars.contains_key("PVE_USER") {
            return Ok(None);
        }
        let mut settings = serde_json::Map::new();
        for (variable, key) in [
            ("PVE_USER", "user"),
            ("PVE_PASSWORD", "password"),
            ("PVE_PASSWORD_FILE", "password_file"),
            ("PVE_TOKEN_NAME", "token_name"),
            ("PVE_TOKEN_VALUE", "token_value"),
            ("PVE_TOKEN_VALUE_FILE", "token_value_file"),
        ] {
            if let Some(value) = vars.get(variable) {
                settings.insert(key.into(), Value::String(value.clone()));
            }
        }
        if let Some(verify) = vars.get("PVE_VERIFY_SSL") {
            let off = ["false", "0"].contains(&verify.to_ascii_lowercase().as_str());
            settings.insert("verify_ssl".into(), Value::Bool(!off));
        }
        let name = vars
            .get("PVE_MODULE")
            .cloned()
            .unwrap_or_else(|| "default".into());
        let mut modules = Modules::default();
        let module = module(&name, &settings, Path::new("."), &mut modules.warnings)
            .map_err(|e| format!("PVE_* variables: {e}"))?;
        modules.modules.insert(name, module);
        Ok(Some(modules))
    }
}

/// Checks one module's settings.
fn module(
    name: &str,
    settings: &serde_json::Map<String, Value>,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Module, String> {
    let at = |key: &str| format!("module {name}, key {key}");
    let text = |key: &str| -> Result<Option<String>, String> {
        match settings.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // A token secret or user written as a bare number is still text.
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(format!("{}: expected text", at(key))),
        }
    };
    for (key, value) in settings {
        match key.as_str() {
            "user" | "token_name" | "token_value" | "token_value_file" | "password"
            | "password_file" | "verify_ssl" | "timeout" | "port" | "path_prefix"
            | "allowed_targets" | "scheme" | "product" => {}
            // The peer hands these to its API library; here they can only mean the default.
            "backend" | "service" | "mode" => {
                let default = match key.as_str() {
                    "backend" => "https",
                    "service" => "PVE",
                    _ => "json",
                };
                if value
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case(default))
                {
                    warnings.push(format!(
                        "{}: ignored (only `{default}` is possible here)",
                        at(key)
                    ));
                } else {
                    return Err(format!("{}: only `{default}` is supported", at(key)));
                }
            }
            "otp" | "cert" | "proxies" => {
                return Err(format!(
                    "{}: not supported by this exporter (use an API token, and a direct \
                     connection)",
                    at(key)
                ));
            }
            _ => {
                return Err(format!(
                    "{}: unknown (known: user, token_name, token_value, token_value_file, \
                     password, password_file, verify_ssl, timeout, port, path_prefix, \
                     allowed_targets, scheme, product)",
                    at(key)
                ));
            }
        }
    }
    let product = match text("product")?
        .map(|p| p.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("pve") => Product::Pve,
        Some("pbs") => Product::Pbs,
        Some(_) => return Err(format!("{}: expected pve or pbs", at("product"))),
    };
    let user = text("user")?.ok_or_else(|| format!("module {name}: `user` is missing"))?;
    if user.trim().is_empty() {
        return Err(format!("{}: empty", at("user")));
    }
    let mut files = Vec::new();
    let mut secret = |value_key: &str, file_key: &str| -> Result<Option<SecretString>, String> {
        match (text(value_key)?, text(file_key)?) {
            (Some(_), Some(_)) => Err(format!(
                "module {name}: give either {value_key} or {file_key}, not both"
            )),
            (Some(value), None) => Ok(Some(SecretString::from(value))),
            (None, Some(file)) => {
                let file = SecretFile::open(&dir.join(file))
                    .map_err(|e| format!("{}: {e}", at(file_key)))?;
                let secret = file.secret();
                files.push((value_key.to_owned(), Arc::new(file)));
                Ok(Some(secret))
            }
            (None, None) => Ok(None),
        }
    };
    let token_value = secret("token_value", "token_value_file")?;
    let password = secret("password", "password_file")?;
    // The file of the secret in use: the token's when there is one.
    let file_of = |key: &str| files.iter().find(|(k, _)| k == key).map(|(_, f)| f.clone());
    let token_name = text("token_name")?;
    let credentials = match (token_name, token_value, password) {
        (Some(token), Some(value), password) => {
            if password.is_some() {
                warnings.push(format!(
                    "module {name}: has a token and a password; the token is used"
                ));
            }
            if token.is_empty() || token.contains(['!', '=']) {
                return Err(format!(
                    "{}: `{token}` is not a token name",
                    at("token_name")
                ));
            }
            Credentials::Token(ApiToken {
                id: format!("{user}!{token}"),
                secret: value,
            })
        }
        (Some(_), None, _) => {
            return Err(format!(
                "module {name}: token_name needs token_value (or token_value_file)"
            ));
        }
        (None, Some(_), _) => {
            return Err(format!("module {name}: token_value needs token_name"));
        }
        (None, None, Some(password)) => Credentials::Password(Login {
            user,
            password,
            renew_after: crate::pve::dispatcher::TICKET_RENEWAL,
        }),
        (None, None, None) => {
            return Err(format!(
                "module {name}: needs token_name and token_value, or password"
            ));
        }
    };
    let secret_file = match &credentials {
        Credentials::Token(_) => file_of("token_value"),
        Credentials::Password(_) => file_of("password"),
    };
    let verify_ssl = match settings.get("verify_ssl") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(format!("{}: expected true or false", at("verify_ssl"))),
    };
    let timeout = match settings.get("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(v) => v
            .as_f64()
            .filter(|t| t.is_finite() && *t > 0.0 && *t <= 3600.0)
            .ok_or_else(|| {
                format!(
                    "{}: expected seconds, above 0 and up to 3600",
                    at("timeout")
                )
            })?,
    };
    let port = match settings.get("port") {
        None => product.default_port(),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{}: expected a port number (1-65535)", at("port")))?,
    };
    let path_prefix = text("path_prefix")?
        .map(|p| p.trim_matches('/').to_owned())
        .filter(|p| !p.is_empty());
    if let Some(prefix) = &path_prefix
        && prefix.contains(['?', '#', ' '])
    {
        return Err(format!(
            "{}: `{prefix}` is not a URL path",
            at("path_prefix")
        ));
    }
    let allowed = match settings.get("allowed_targets") {
        None | Some(Value::Null) => None,
        Some(Value::String(list)) => Some(AllowList::parse(list.split(','))),
        Some(Value::Array(items)) => {
            let entries: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            match entries {
                Some(entries) => Some(AllowList::parse(entries)),
                None => {
                    return Err(format!(
                        "{}: expected a list of hosts",
                        at("allowed_targets")
                    ));
                }
            }
        }
        Some(_) => {
            return Err(format!(
                "{}: expected a list of hosts",
                at("allowed_targets")
            ));
        }
    }
    .transpose()
    .map_err(|e| format!("{}: {e}", at("allowed_targets")))?;
    let plain_http = match text("scheme")?
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("https") => false,
        Some("http") => true,
        Some(_) => return Err(format!("{}: expected https or http", at("scheme"))),
    };
    Ok(Module {
        product,
        credentials,
        verify_ssl,
        timeout: Duration::from_secs_f64(timeout),
        port,
        path_prefix,
        allowed,
        plain_http,
        secret_file,
        fingerprint: {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            // serde_json's maps are sorted: the same settings give the same text.
            Value::Object(settings.clone())
                .to_string()
                .hash(&mut hasher);
            hasher.finish()
        },
    })
}

impl Module {
    /// The API endpoints of `target` (see [`super::target`]), when the module may be used
    /// with every host in it. Nothing is connected to here.
    pub fn endpoints(&self, name: &str, target: &str) -> Result<Vec<reqwest::Url>, Refusal> {
        let bad = |reason: String| Refusal::Bad {
            target: target.to_owned(),
            reason,
        };
        let hosts = target::parse(target, self.port).map_err(bad)?;
        if let Some(allowed) = &self.allowed
            && let Some(outside) = hosts.iter().find(|h| !allowed.allows(h))
        {
            return Err(Refusal::NotAllowed {
                target: target.to_owned(),
                host: outside.authority(),
                module: name.to_owned(),
            });
        }
        let scheme = if self.plain_http { "http" } else { "https" };
        hosts
            .iter()
            .map(|host| {
                let base = format!("{scheme}://{}/", host.authority());
                let url = match &self.path_prefix {
                    Some(prefix) => format!("{base}{prefix}/"),
                    None => base,
                };
                reqwest::Url::parse(&url).map_err(|e| bad(format!("not a host: {e}")))
            })
            .collect()
    }

    /// Whether the credentials would travel in plain text to a host off this machine.
    pub fn plain_text_off_machine(&self, target: &str) -> bool {
        self.plain_http
            && target::parse(target, self.port)
                .is_ok_and(|hosts| hosts.iter().any(|h| !h.is_loopback()))
    }
}

impl Modules {
    /// Gives `allowed` (`--allowed-targets`) to the modules without a list of their own, and
    /// notes what an operator must know at start: modules that any client can point at any
    /// host, and modules whose credentials would travel in plain text.
    pub fn with_default_allowed(mut self, allowed: Option<&AllowList>) -> Self {
        let mut open = Vec::new();
        for (name, module) in &mut self.modules {
            if module.allowed.is_none() {
                module.allowed = allowed.cloned();
            }
            if module.allowed.is_none() {
                open.push(name.as_str());
            }
            let stays_here = module
                .allowed
                .as_ref()
                .is_some_and(AllowList::only_loopback);
            if module.plain_http && !stays_here {
                self.warnings.push(format!(
                    "module {name}: `scheme: http` sends its credentials unencrypted to the \
                     targets off this machine"
                ));
            }
        }
        if !open.is_empty() {
            self.warnings.push(format!(
                "module(s) {} may be used with any target: any client that reaches this \
                 exporter can make it send their credentials to a host of its choice; list \
                 the targets in each module's allowed_targets or with --allowed-targets",
                open.join(", ")
            ));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn parse(text: &str) -> Result<Modules, String> {
        Modules::parse(text, Path::new("/nonexistent"))
    }

    #[test]
    fn the_peers_file_reads_as_it_does_there() {
        let modules = parse(
            "default:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: abc-123\n\
             other:\n  user: root@pam\n  password: hunter2\n  verify_ssl: false\n  timeout: 12\n  \
             port: 443\n",
        )
        .unwrap();
        assert!(modules.warnings.is_empty());
        let default = &modules.modules["default"];
        match &default.credentials {
            Credentials::Token(t) => {
                assert_eq!(t.id, "monitoring@pve!exporter");
                assert_eq!(t.secret.expose_secret(), "abc-123");
            }
            other => panic!("{other:?}"),
        }
        assert!(default.verify_ssl);
        assert_eq!(default.timeout, Duration::from_secs(5));
        assert_eq!(default.port, 8006);
        let other = &modules.modules["other"];
        assert!(matches!(&other.credentials, Credentials::Password(l)
            if l.user == "root@pam" && l.password.expose_secret() == "hunter2"));
        assert!(!other.verify_ssl);
        assert_eq!(other.timeout, Duration::from_secs(12));
        assert_eq!(other.port, 443);
    }

    #[test]
    fn bad_keys_and_values_name_the_module_and_key() {
        let base = "m:\n  user: u@pve\n  token_name: t\n  token_value: v\n";
        for (extra, expected) in [
            ("  verify_sl: true\n", "module m, key verify_sl: unknown"),
            (
                "  verify_ssl: maybe\n",
                "module m, key verify_ssl: expected true or false",
            ),
            ("  timeout: -1\n", "module m, key timeout: expected seconds"),
            (
                "  port: 70000\n",
                "module m, key port: expected a port number",
            ),
            ("  otp: 123456\n", "module m, key otp: not supported"),
            (
                "  backend: ssh_paramiko\n",
                "module m, key backend: only `https`",
            ),
            (
                "  token_value_file: /x\n",
                "give either token_value or token_value_file",
            ),
        ] {
            let err = parse(&format!("{base}{extra}")).unwrap_err();
            assert!(err.contains(expected), "{extra}: {err}");
            assert!(!err.contains(": v\n") && !err.contains("`v`"), "{err}");
        }
        for (text, expected) in [
            ("", "no module"),
            ("- a\n- b\n", "expected a mapping"),
            ("m: 3\n", "module m: expected a mapping"),
            ("m: {}\n", "module m: no settings"),
            (
                "m:\n  token_name: t\n  token_value: v\n",
                "`user` is missing",
            ),
            (
                "m:\n  user: u@pve\n",
                "needs token_name and token_value, or password",
            ),
            (
                "m:\n  user: u@pve\n  token_name: t\n",
                "token_name needs token_value",
            ),
            (
                "m:\n  user: u@pve\n  token_value: v\n",
                "token_value needs token_name",
            ),
            (
                "m:\n  user: [1]\n  password: p\n",
                "module m, key user: expected text",
            ),
            ("m: [\n", "not valid YAML"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn keys_that_mean_nothing_here_are_warned_about() {
        let modules = parse(
            "m:\n  user: u@pve\n  token_name: t\n  token_value: v\n  backend: https\n  \
             service: pve\n  mode: json\n  password: p\n",
        )
        .unwrap();
        assert_eq!(modules.warnings.len(), 4, "{:?}", modules.warnings);
        assert!(modules.warnings[0].contains("module m, key backend: ignored"));
        assert!(modules.warnings[3].contains("the token is used"));
    }

    #[test]
    fn secrets_from_files() {
        let dir = std::env::temp_dir().join(format!("modules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "  from-file-77\n").unwrap();
        std::fs::write(dir.join("empty"), "\n").unwrap();
        let text = "m:\n  user: u@pve\n  token_name: t\n  token_value_file: token\n";
        let modules = Modules::parse(text, &dir).unwrap();
        assert_eq!(
            modules.modules["m"].credentials.secret().expose_secret(),
            "from-file-77"
        );
        let text = "m:\n  user: u@pve\n  password_file: empty\n";
        let err = Modules::parse(text, &dir).unwrap_err();
        assert!(
            err.contains("module m, key password_file") && err.contains("empty"),
            "{err}"
        );
        let text = "m:\n  user: u@pve\n  password_file: absent\n";
        assert!(
            Modules::parse(text, &dir)
                .unwrap_err()
                .contains("cannot read")
        );
    }

    #[test]
    fn the_environment_makes_one_module() {
        let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(
            Modules::from_env(vars(&[("PVE_TOKEN_NAME", "t")]))
                .unwrap()
                .is_none()
        );
        let modules = Modules::from_env(vars(&[
            ("PVE_USER", "u@pve"),
            ("PVE_TOKEN_NAME", "t"),
            ("PVE_TOKEN_VALUE", "v"),
            ("PVE_VERIFY_SSL", "False"),
            ("PVE_MODULE", "lab"),
        ]))
        .unwrap()
        .unwrap();
        let lab = &modules.modules["lab"];
        assert!(!lab.verify_ssl);
        assert!(matches!(&lab.credentials, Credentials::Token(t) if t.id == "u@pve!t"));
        let modules = Modules::from_env(vars(&[
            ("PVE_USER", "u@pve"),
            ("PVE_PASSWORD", "p"),
            ("PVE_VERIFY_SSL", "yes"),
        ]))
        .unwrap()
        .unwrap();
        assert!(modules.modules["default"].verify_ssl);
        let err = Modules::from_env(vars(&[("PVE_USER", "u@pve")])).unwrap_err();
        assert!(
            err.contains("PVE_* variables: module default: needs"),
            "{err}"
        );
    }

    #[test]
    fn targets_become_endpoints() {
        let module = parse("m:\n  user: u@pve\n  password: p\n").unwrap().modules["m"].clone();
        let shown = |t: &str| -> Vec<String> {
            module
                .endpoints("m", t)
                .unwrap()
                .iter()
                .map(|u| u.to_string())
                .collect()
        };
        assert_eq!(shown("pve1"), ["https://pve1:8006/"]);
        assert_eq!(shown("10.0.0.1:443"), ["https://10.0.0.1/"]);
        assert_eq!(
            shown("pve1, pve2:8007"),
            ["https://pve1:8006/", "https://pve2:8007/"]
        );
        assert_eq!(shown("fd00::1"), ["https://[fd00::1]:8006/"]);
        assert_eq!(shown("[fd00::1]:8443"), ["https://[fd00::1]:8443/"]);
        assert_eq!(shown("https://127.0.0.1:9/"), ["https://127.0.0.1:9/"]);
        assert!(module.endpoints("m", "").is_err());
        assert!(module.endpoints("m", "a b").is_err());
        assert!(module.endpoints("m", "https://u:p@pve1/").is_err());
        assert!(module.endpoints("m", "http://127.0.0.1:9/").is_err());
        let prefixed = parse("m:\n  user: u@pve\n  password: p\n  path_prefix: /pve/\n").unwrap();
        assert_eq!(
            prefixed.modules["m"].endpoints("m", "h").unwrap()[0].as_str(),
            "https://h:8006/pve/"
        );
    }

    #[test]
    fn a_module_goes_only_to_its_allowed_targets() {
        let modules = parse(
            "m:\n  user: u@pve\n  password: p\n  allowed_targets: [pve1, \"*.lab.example\", 10.0.0.0/8]\n\
             open:\n  user: u@pve\n  password: p\n\
             listed:\n  user: u@pve\n  password: p\n  allowed_targets: pve9, pve10\n",
        )
        .unwrap();
        let m = &modules.modules["m"];
        assert!(m.endpoints("m", "pve1").is_ok());
        assert!(m.endpoints("m", "a.lab.example,10.1.2.3").is_ok());
        assert_eq!(
            m.endpoints("m", "pve1,evil.example:8006"),
            Err(Refusal::NotAllowed {
                target: "pve1,evil.example:8006".into(),
                host: "evil.example:8006".into(),
                module: "m".into(),
            })
        );
        assert!(
            modules.modules["listed"]
                .endpoints("listed", "pve10")
                .is_ok()
        );
        // The flag's list goes to modules without their own; a warning names the rest.
        let global = AllowList::parse(["pve2"]).unwrap();
        let given = modules.clone().with_default_allowed(Some(&global));
        assert!(given.modules["open"].endpoints("open", "pve2").is_ok());
        assert!(given.modules["open"].endpoints("open", "pve1").is_err());
        assert!(given.modules["m"].endpoints("m", "pve1").is_ok());
        assert!(given.warnings.is_empty(), "{:?}", given.warnings);
        let open = modules.with_default_allowed(None);
        assert!(
            open.warnings
                .iter()
                .any(|w| w.contains("module(s) open may be used with any target"))
        );
        let error =
            parse("m:\n  user: u@pve\n  password: p\n  allowed_targets: [\"a*\"]\n").unwrap_err();
        assert!(
            error.contains("module m, key allowed_targets: `a*`"),
            "{error}"
        );
    }

    #[test]
    fn plain_http_only_when_the_module_says_so_and_it_is_said_at_start() {
        let modules = parse(
            "sim:\n  user: u@pve\n  password: p\n  scheme: http\n  allowed_targets: [127.0.0.1]\n\
             lab:\n  user: u@pve\n  password: p\n  scheme: http\n  allowed_targets: [pve1]\n",
        )
        .unwrap()
        .with_default_allowed(None);
        let sim = &modules.modules["sim"];
        assert_eq!(
            sim.endpoints("sim", "127.0.0.1:9").unwrap()[0].as_str(),
            "http://127.0.0.1:9/"
        );
        assert!(!sim.plain_text_off_machine("127.0.0.1:9"));
        assert!(modules.modules["lab"].plain_text_off_machine("pve1"));
        assert_eq!(modules.warnings.len(), 1, "{:?}", modules.warnings);
        assert!(modules.warnings[0].contains("module lab: `scheme: http`"));
        assert!(parse("m:\n  user: u@pve\n  password: p\n  scheme: ftp\n").is_err());
    }
}
