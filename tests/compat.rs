//! `/pve` against prometheus-pve-exporter itself: both scrape the same simulated clusters and
//! must give the same `pve_*` series (names and labels), values and TYPE lines. Needs the
//! peer from PyPI (`.ci/run` installs it into `target/bench-venv`; `PVE_EXPORTER_BIN` names
//! another); without it the test says SKIPPED and passes.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use proxmox_exporter::sim::{Answers, SimApi, self_signed};
use support::{get_text, serve_targets, targets};

const TOKEN_ID: &str = "monitoring@pve!exporter";
const SECRET: &str = "compat-secret";

fn peer_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PVE_EXPORTER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-venv/bin/pve_exporter")
        });
    path.exists().then_some(path)
}

/// One exposition: TYPE by family, value by series (name and sorted labels).
#[derive(Debug, Default)]
struct Parsed {
    types: BTreeMap<String, String>,
    series: BTreeMap<String, f64>,
}

/// Reads the classic text format, label values with their escapes.
fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            parsed.types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, rest) = match line.find('{') {
            Some(open) => (&line[..open], &line[open..]),
            None => {
                let (name, value) = line.split_once(' ').expect("sample");
                parsed
                    .series
                    .insert(name.to_owned(), value.parse().expect("value"));
                continue;
            }
        };
        let mut labels = Vec::new();
        let mut chars = rest[1..].chars().peekable();
        let mut consumed = 1;
        loop {
            let mut key = String::new();
            while let Some(&c) = chars.peek() {
                consumed += c.len_utf8();
                chars.next();
                if c == '=' {
                    break;
                }
                if c == '}' {
                    break;
                }
                if c != ',' {
                    key.push(c);
                }
            }
            if key.is_empty() {
                break;
            }
            assert_eq!(chars.next(), Some('"'), "{line}");
            consumed += 1;
            let mut value = String::new();
            while let Some(c) = chars.next() {
                consumed += c.len_utf8();
                match c {
                    '\\' => {
                        let e = chars.next().expect("escape");
                        consumed += e.len_utf8();
                        value.push(match e {
                            'n' => '\n',
                            other => other,
                        });
                    }
                    '"' => break,
                    other => value.push(other),
                }
            }
            labels.push((key, value));
            if chars.peek() == Some(&'}') {
                chars.next();
                consumed += 1;
                break;
            }
        }
        labels.sort();
        let value: f64 = rest[consumed..].trim().parse().expect(line);
        let shown: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let key = format!("{name}{{{}}}", shown.join(","));
        assert!(
            parsed.series.insert(key, value).is_none(),
            "series twice: {line}"
        );
    }
    parsed
}

fn family_of(series: &str) -> &str {
    series.split('{').next().unwrap_or(series)
}

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `url` answers at all.
async fn wait_for(url: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if reqwest::get(url).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered");
}

const PVE_YML: &str = "default:\n  user: monitoring@pve\n  token_name: exporter\n  \
                       token_value: compat-secret\n  verify_ssl: false\n";

/// Serves `/pve` of this exporter for the module above on a loopback port.
async fn ours() -> String {
    serve_targets(targets(PVE_YML, 10, Duration::from_secs(600))).await
}

async fn compare(peer: &PathBuf, name: &str, nodes: usize, guests: usize) {
    let answers = Answers::generate(nodes, guests, 3, SystemTime::now());
    let api = SimApi::new(answers, TOKEN_ID, SECRET);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = listener.local_addr().unwrap();
    tokio::spawn(api.clone().serve_tls(listener, self_signed().unwrap()));

    let dir = std::env::temp_dir().join(format!("compat-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pve.yml"), PVE_YML).unwrap();
    let port = free_port();
    let _peer = Peer(
        Command::new(peer)
            .arg("--config.file")
            .arg(dir.join("pve.yml"))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Its subscription due date is midnight in its own time zone; ours is UTC.
            .env("TZ", "UTC")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-pve-exporter"),
    );
    let theirs_base = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{theirs_base}/")).await;
    let ours_base = ours().await;

    for query in ["", "&cluster=1&node=0", "&cluster=0&node=1"] {
        let path = format!("/pve?target=127.0.0.1:{}{query}", sim.port());
        let (status, theirs) = get_text(&format!("{theirs_base}{path}")).await;
        assert_eq!(status, 200, "{name}{query}: the peer failed: {theirs}");
        let (status, mine) = get_text(&format!("{ours_base}{path}")).await;
        assert_eq!(status, 200, "{name}{query}: {mine}");
        let (theirs, mine) = (parse(&theirs), parse(&mine));
        let mut differences = Vec::new();
        for (series, value) in &theirs.series {
            match mine.series.get(series) {
                None => differences.push(format!("missing here: {series} {value}")),
                Some(v) if (v - value).abs() > value.abs() * 1e-12 => {
                    differences.push(format!("{series}: {v} here, {value} there"))
                }
                _ => {}
            }
        }
        for series in mine.series.keys() {
            let ours_only = !theirs.series.contains_key(series);
            if ours_only && family_of(series).starts_with("pve_") {
                differences.push(format!("only here: {series}"));
            }
        }
        for (family, kind) in &theirs.types {
            if mine.types.get(family) != Some(kind) {
                differences.push(format!(
                    "TYPE {family}: {kind} there, {:?} here",
                    mine.types.get(family)
                ));
            }
        }
        // What this exporter adds is its own (documented in the README), never `pve_*`.
        let added: BTreeSet<&str> = mine
            .types
            .keys()
            .filter(|f| !theirs.types.contains_key(*f))
            .map(String::as_str)
            .collect();
        for family in &added {
            if !family.starts_with("proxmox_") {
                differences.push(format!("a family only here: {family}"));
            }
        }
        assert!(
            differences.is_empty(),
            "{name}{query}: {} differences:\n{}",
            differences.len(),
            differences.join("\n")
        );
        let failed: Vec<&String> = mine
            .series
            .iter()
            .filter(|(s, v)| s.starts_with("proxmox_exporter_collector_success") && **v != 1.0)
            .map(|(s, _)| s)
            .collect();
        assert!(failed.is_empty(), "{name}{query}: {failed:?}");
        assert!(
            theirs.series.len() > 10,
            "{name}{query}: too little to compare"
        );
        eprintln!(
            "{name}{query}: {} series, {} families the same",
            theirs.series.len(),
            theirs.types.len()
        );
    }
}

#[tokio::test]
async fn pve_gives_what_prometheus_pve_exporter_gives() {
    let Some(peer) = peer_binary() else {
        assert!(
            std::env::var_os("PVE_EXPORTER_REQUIRED").is_none(),
            "PVE_EXPORTER_REQUIRED is set but prometheus-pve-exporter is not installed"
        );
        eprintln!(
            "SKIPPED: prometheus-pve-exporter is not installed (target/bench-venv, or \
             PVE_EXPORTER_BIN); .ci/run installs it"
        );
        return;
    };
    // HA, replication, a QDevice, subscriptions, locked and template guests.
    compare(&peer, "three-node", 3, 60).await;
    // No cluster entry, no QDevice.
    compare(&peer, "standalone", 1, 12).await;
    compare(&peer, "twenty-node", 20, 400).await;
}
