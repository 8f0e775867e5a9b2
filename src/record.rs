//! `proxmox-exporter record --out DIR`: asks a live cluster for every answer the collectors
//! use (all of them, whether enabled or not), with the exporter's own token and TLS settings, and writes them as a fixture scenario
//! (`cluster/resources.json`, `nodes/<node>/disks/list.json`, …; an error answer as a
//! `.status` file) that the snapshot tests read as they are.
//!
//! Everything that identifies the cluster is replaced, consistently across all files (the same
//! name always becomes the same stand-in) and irreversibly (stand-ins are numbered in order of
//! appearance, not derived from what they replace): node and guest names, host names, IP
//! addresses, serial numbers, WWNs, fingerprints, certificate subjects, issuers and SANs, tags,
//! pool and cluster names, subscription server ids. Certificates' PEM text, subscription keys
//! and signatures, and snapshot descriptions are dropped. The token never reaches a file.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use progenitor_client::{ClientInfo, ResponseValue};
use serde_json::Value;

use crate::pve::{ApiError, Dispatcher, ErrorKind};

/// An answer as recorded: its JSON body, or the error status it came with (and PVE's message
/// in the status line, as for a VM without a guest agent).
enum Recorded {
    Json(Value),
    Status(u16),
    Message(u16, String),
}

/// Records the scenario into `out`; returns the files written.
pub async fn record(
    dispatcher: &Arc<Dispatcher>,
    out: &Path,
    secret: &str,
) -> Result<Vec<PathBuf>, String> {
    let mut answers: BTreeMap<String, Recorded> = BTreeMap::new();
    let resources = match fetch(dispatcher, "/cluster/resources").await? {
        Recorded::Json(value) => value,
        Recorded::Status(code) | Recorded::Message(code, _) => {
            return Err(format!(
                "/cluster/resources answered HTTP {code}: nothing to record"
            ));
        }
    };
    // Decoded the way the collectors decode it, to ask what they would ask.
    let rows: crate::collectors::cluster_resources::Rows =
        serde_json::from_value(resources["data"].clone())
            .map_err(|e| format!("/cluster/resources does not decode: {e}"))?;
    let nodes = crate::collectors::cluster_resources::online_nodes(&rows);
    // What every collector asks: per online node, and per guest (templates aside) on one.
    let mut paths: Vec<String> = crate::collectors::cluster_paths()
        .into_iter()
        .map(str::to_owned)
        .collect();
    for node in &nodes {
        for what in crate::collectors::per_node_paths() {
            paths.push(format!("/nodes/{node}/{what}"));
        }
    }
    paths.extend(crate::collectors::snapshots::paths(&rows, &nodes));
    paths.extend(crate::collectors::backup::paths(&rows, &nodes));
    paths.extend(crate::collectors::guest_filesystems::paths(&rows, &nodes));
    answers.insert("/cluster/resources".into(), Recorded::Json(resources));
    for path in paths {
        let answer = fetch(dispatcher, &path).await?;
        answers.insert(path, answer);
    }
    // SMART is asked per disk that a node's list names, the disk as the query.
    let mut per_disk = Vec::new();
    for node in &nodes {
        if let Some(Recorded::Json(list)) = answers.get(&format!("/nodes/{node}/disks/list")) {
            let devpaths = list["data"].as_array().into_iter().flatten();
            let devpaths = devpaths.filter_map(|d| d["devpath"].as_str());
            per_disk.extend(devpaths.map(|d| crate::collectors::smart::path(node, d)));
        }
    }
    for path in per_disk {
        let answer = fetch(dispatcher, &path).await?;
        answers.insert(path, answer);
    }

    let mut anonymiser = Anonymiser::default();
    // Node names first, so they are replaced inside ids, paths and subjects as well; then a
    // first pass over every answer learns all the other names, so that the second pass
    // replaces them wherever they appear (a serial inside a by-id link, a host in a subject).
    for node in &nodes {
        anonymiser.name("node", node);
    }
    for answer in answers.values() {
        if let Recorded::Json(value) = answer {
            anonymiser.value(&mut value.clone(), None);
        }
    }
    let mut written = Vec::new();
    for (path, answer) in answers {
        // A query the collector always asks (`?content=backup`) stays out of the file's name;
        // a disk's (`smart?disk=%2Fdev%2Fsda`) names the answer.
        let path = match path.split_once('?') {
            Some((at, _)) if !at.ends_with(crate::collectors::smart::PER_DISK) => at,
            _ => &path,
        };
        let path = anonymiser.text(path);
        let (file, body) = match answer {
            Recorded::Json(mut value) => {
                anonymiser.value(&mut value, None);
                let mut text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
                text.push('\n');
                (
                    out.join(format!("{}.json", path.trim_start_matches('/'))),
                    text,
                )
            }
            Recorded::Status(code) => (
                out.join(format!("{}.status", path.trim_start_matches('/'))),
                format!("{code}\n"),
            ),
            // Names in the message (`VM 101 qmp command …`) are replaced like any others.
            Recorded::Message(code, message) => (
                out.join(format!("{}.status", path.trim_start_matches('/'))),
                format!("{code} {}\n", anonymiser.text(&message)),
            ),
        };
        if !secret.is_empty() && body.contains(secret) {
            return Err(format!(
                "{}: would contain the token; not written",
                file.display()
            ));
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&file, body).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        written.push(file);
    }
    Ok(written)
}

/// The raw answer for `path`, through the dispatcher (endpoint choice, retry, TLS, token).
async fn fetch(dispatcher: &Dispatcher, path: &str) -> Result<Recorded, String> {
    let result = dispatcher
        .call(path, |c| {
            let url = format!("{}{path}", c.baseurl());
            async move {
                let response = c
                    .raw_get(&url)
                    .send()
                    .await
                    .map_err(progenitor_client::Error::CommunicationError)?;
                let (status, headers) = (response.status(), response.headers().clone());
                if !status.is_success() {
                    return Err(progenitor_client::Error::UnexpectedResponse(response));
                }
                let body: Bytes = response
                    .bytes()
                    .await
                    .map_err(progenitor_client::Error::ResponseBodyError)?;
                Ok(ResponseValue::new(body, status, headers))
            }
        })
        .await;
    match result {
        Ok(body) => serde_json::from_slice(&body)
            .map(Recorded::Json)
            .map_err(|e| format!("{path}: the answer is not JSON: {e}")),
        Err(ApiError {
            kind: ErrorKind::Status(status),
            ..
        }) => Ok(Recorded::Status(status.as_u16())),
        Err(ApiError {
            kind: ErrorKind::Refused { status, reason },
            ..
        }) => Ok(Recorded::Message(status.as_u16(), reason)),
        Err(e) => Err(e.to_string()),
    }
}

/// Replaces identifying values by numbered stand-ins, the same one for the same value.
#[derive(Default)]
struct Anonymiser {
    /// Original → stand-in, for every kind; applied inside longer strings too.
    replaced: HashMap<String, String>,
    /// The same pairs, longest original first: the order `text` replaces them in.
    by_length: Vec<(String, String)>,
    counters: HashMap<&'static str, usize>,
}

impl Anonymiser {
    /// The stand-in for `original` of `kind` (`node` → `node1`, `guest` → `guest1`, …).
    fn name(&mut self, kind: &'static str, original: &str) -> String {
        if original.is_empty() {
            return String::new();
        }
        if let Some(known) = self.replaced.get(original) {
            return known.clone();
        }
        let n = self.counters.entry(kind).or_default();
        *n += 1;
        let stand_in = match kind {
            "ip4" => format!("192.0.2.{}", *n % 250 + 1),
            "ip6" => format!("2001:db8::{:x}", *n),
            "host" => format!("host{n}.example.invalid"),
            "fingerprint" => (0..32)
                .map(|i| format!("{:02X}", (*n * 31 + i) % 256))
                .collect::<Vec<_>>()
                .join(":"),
            _ => format!("{kind}{n}"),
        };
        self.remember(original, &stand_in);
        stand_in
    }

    fn remember(&mut self, original: &str, stand_in: &str) {
        self.replaced
            .insert(original.to_owned(), stand_in.to_owned());
        let at = self
            .by_length
            .partition_point(|(o, _)| o.len() >= original.len());
        self.by_length
            .insert(at, (original.to_owned(), stand_in.to_owned()));
    }

    /// `text` with every known original replaced, longest first.
    fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (original, stand_in) in &self.by_length {
            if out.contains(original.as_str()) {
                out = out.replace(original.as_str(), stand_in);
            }
        }
        out
    }

    /// Anonymises `value` in place; `key` is the field it sits in.
    fn value(&mut self, value: &mut Value, key: Option<&str>) {
        match value {
            Value::Object(map) => {
                let kind = map.get("type").and_then(Value::as_str).map(str::to_owned);
                for (k, v) in map.iter_mut() {
                    let field = match (k.as_str(), kind.as_deref()) {
                        ("name", Some("qemu" | "lxc")) => "guest-name",
                        ("name", Some("cluster")) => "cluster-name",
                        (k, _) => k,
                    };
                    self.value(v, Some(field));
                }
                // Certificates' PEM and subscriptions' signature and key are dropped whole.
                for secretish in ["pem", "signature", "key"] {
                    if map.contains_key(secretish) {
                        map.insert(secretish.into(), Value::String("(removed)".into()));
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.value(item, key);
                }
            }
            Value::String(s) => *s = self.field(key.unwrap_or(""), s),
            _ => {}
        }
    }

    fn field(&mut self, key: &str, value: &str) -> String {
        match key {
            "node" => self.name("node", value),
            "guest-name" => self.name("guest", value),
            "pool" => self.name("pool", value),
            "cluster-name" => self.name("cluster", value),
            "serverid" => self.name("server-id", value),
            "fsid" => self.name("ceph-fsid", value),
            // Backup notes and task ids are free text.
            "notes" => String::new(),
            // Snapshot descriptions are free text.
            "description" => String::new(),
            "serial" => self.name("serial", value),
            "wwn" => self.name("wwn", value),
            "fingerprint" => self.name("fingerprint", value),
            "tags" => value
                .split([';', ',', ' '])
                .filter(|t| !t.is_empty())
                .map(|t| self.name("tag", t))
                .collect::<Vec<_>>()
                .join(";"),
            "san" => self.host_or_ip(value),
            "subject" | "issuer" => {
                // `/CN=pve1.lan/OU=…`: host names and addresses inside are replaced.
                let parts: Vec<String> = value
                    .split('/')
                    .map(|part| match part.split_once('=') {
                        Some((attr, v)) if attr == "CN" && v.contains('.') => {
                            format!("{attr}={}", self.host_or_ip(v))
                        }
                        // PVE's cluster CA carries the cluster's UUID as its OU.
                        Some((attr, v))
                            if attr == "OU"
                                && v.contains('-')
                                && v.chars().any(|c| c.is_ascii_digit()) =>
                        {
                            format!("{attr}={}", self.name("cluster-id", v))
                        }
                        _ => part.to_owned(),
                    })
                    .collect();
                self.text(&parts.join("/"))
            }
            "by_id_link" | "model" => self.text(value),
            _ => {
                if value.parse::<IpAddr>().is_ok() {
                    return self.host_or_ip(value);
                }
                self.text(value)
            }
        }
    }

    fn host_or_ip(&mut self, value: &str) -> String {
        match value.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => value.to_owned(),
            Ok(IpAddr::V4(_)) => self.name("ip4", value),
            Ok(IpAddr::V6(_)) => self.name("ip6", value),
            Err(_) if self.replaced.contains_key(value) => self.replaced[value].clone(),
            Err(_) if value == "localhost" => value.to_owned(),
            Err(_) => {
                // A node's own short name stays the node's stand-in; anything else is a host.
                let short = value.split('.').next().unwrap_or(value);
                match self.replaced.get(short) {
                    Some(node) if value.contains('.') => {
                        let host = format!("{node}.example.invalid");
                        self.remember(value, &host);
                        host
                    }
                    Some(node) => node.clone(),
                    None => self.name("host", value),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_name_gets_the_same_stand_in_everywhere() {
        let mut a = Anonymiser::default();
        a.name("node", "pve-prod-1");
        let mut resources = json!({"data": [
            {"id": "node/pve-prod-1", "type": "node", "node": "pve-prod-1"},
            {"id": "qemu/100", "type": "qemu", "node": "pve-prod-1", "name": "payroll-db",
             "tags": "finance;prod", "pool": "accounting"},
            {"id": "storage/pve-prod-1/local", "type": "storage", "node": "pve-prod-1"},
        ]});
        a.value(&mut resources, None);
        let text = resources.to_string();
        for secret in ["pve-prod-1", "payroll-db", "finance", "accounting"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(resources["data"][0]["id"], "node/node1");
        assert_eq!(resources["data"][1]["node"], "node1");
        assert_eq!(resources["data"][1]["name"], "guest1");
        assert_eq!(resources["data"][1]["tags"], "tag1;tag2");
        assert_eq!(resources["data"][2]["id"], "storage/node1/local");
        assert_eq!(
            a.text("/nodes/pve-prod-1/disks/list"),
            "/nodes/node1/disks/list"
        );
    }

    #[test]
    fn certificates_and_disks_lose_what_identifies_them() {
        let mut a = Anonymiser::default();
        a.name("node", "hv7");
        let mut certs = json!({"data": [{
            "subject": "/OU=PVE Cluster Node/O=Proxmox Virtual Environment/CN=hv7.corp.example.com",
            "issuer": "/CN=Proxmox Virtual Environment/OU=5b7d2c1e-8f3a-4e6b/O=PVE Cluster Manager CA",
            "san": ["127.0.0.1", "10.20.30.40", "fd00::7", "hv7", "hv7.corp.example.com", "localhost"],
            "fingerprint": "AA:BB", "pem": "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----",
            "notafter": 1_800_000_000,
        }]});
        let mut disks = json!({"data": [{"devpath": "/dev/sda", "serial": "S3Z9NB0K123456",
            "wwn": "0x5002538e40a1b2c3", "by_id_link": "/dev/disk/by-id/ata-Samsung_S3Z9NB0K123456"}]});
        // Two passes, as `record` does: the first learns the names.
        for _ in 0..2 {
            a.value(&mut certs.clone(), None);
            a.value(&mut disks.clone(), None);
        }
        a.value(&mut certs, None);
        a.value(&mut disks, None);
        let text = format!("{certs}{disks}");
        for secret in [
            "hv7",
            "corp.example.com",
            "10.20.30.40",
            "fd00::7",
            "AA:BB",
            "MII",
            "S3Z9NB0K123456",
            "0x5002538e40a1b2c3",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let cert = &certs["data"][0];
        assert_eq!(cert["san"][0], "127.0.0.1");
        assert_eq!(cert["san"][3], "node1");
        assert_eq!(cert["san"][4], "node1.example.invalid");
        assert!(
            cert["subject"]
                .as_str()
                .unwrap()
                .ends_with("CN=node1.example.invalid")
        );
        assert_eq!(cert["notafter"], 1_800_000_000);
        assert_eq!(disks["data"][0]["devpath"], "/dev/sda");
        assert_eq!(
            disks["data"][0]["by_id_link"],
            "/dev/disk/by-id/ata-Samsung_serial1"
        );
    }
}
