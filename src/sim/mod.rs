//! A simulated Proxmox VE API: serves a fixed set of answers over HTTP the way PVE does
//! (token check, `{"data": ...}` bodies, PVE's error statuses), for tests, `--demo` and
//! benchmarks. Answers come from a fixture scenario directory or from a generated cluster.

mod conn;
mod pbs;

pub use conn::{Behaviour, Stats};

use crate::lock;
use crate::pve::Product;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What the simulated API answers for one path.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with this JSON body.
    Json(Bytes),
    /// This status with PVE's `{"data":null}` body.
    Status(u16),
    /// This status with PVE's message in the status line (`500 binary not installed: …`),
    /// as PVE answers when a handler fails.
    Message(u16, String),
    /// This answer after a pause, like PVE's 595 for an unreachable node.
    Delayed(Duration, Box<Answer>),
    /// This answer after holding the node's worker this long besides its usual work: an
    /// agent call waiting for the guest (PVE waits up to its QMP timeout, 3 s by default for
    /// agent commands, plus the agent's sync). The worker stays held if the client gives up.
    Held(Duration, Box<Answer>),
    /// This answer after the simulator's latency once more for each of this many nodes: the
    /// node asked collects the others' parts one after the other (`/cluster/metrics/export`).
    FanOut(usize, Box<Answer>),
}

impl Answer {
    /// The body's size in bytes (0 for a bare status).
    fn size(&self) -> usize {
        match self {
            Answer::Json(body) => body.len(),
            Answer::Message(_, message) => message.len(),
            Answer::Status(_) => 0,
            Answer::Delayed(_, inner) | Answer::FanOut(_, inner) | Answer::Held(_, inner) => {
                inner.size()
            }
        }
    }
}

/// The answers of one simulated cluster, by API path (below `/api2/json`).
#[derive(Clone, Debug, Default)]
pub struct Answers(pub HashMap<String, Answer>);

impl Answers {
    /// Reads a fixture scenario: `cluster/resources.json` answers `/cluster/resources`, and a
    /// `nodes/x/disks/list.status` file holding `595` makes that path answer 595.
    pub fn from_dir(dir: &Path) -> std::io::Result<Answers> {
        let mut answers = HashMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            for entry in std::fs::read_dir(&current)? {
                let path = entry?.path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let Ok(relative) = path.strip_prefix(dir) else {
                    continue;
                };
                let api_path = format!("/{}", relative.with_extension("").display());
                match path.extension().and_then(|e| e.to_str()) {
                    Some("json") => {
                        answers.insert(api_path, Answer::Json(Bytes::from(std::fs::read(&path)?)));
                    }
                    Some("status") => {
                        // `595`, or `500 binary not installed: /usr/bin/ceph-mon`.
                        let text = std::fs::read_to_string(&path)?;
                        let (code, message) =
                            text.trim().split_once(' ').unwrap_or((text.trim(), ""));
                        let code = code.parse().map_err(|_| {
                            std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!("{}: not an HTTP status", path.display()),
                            )
                        })?;
                        let answer = if message.is_empty() {
                            Answer::Status(code)
                        } else {
                            Answer::Message(code, message.trim().to_owned())
                        };
                        answers.insert(api_path, answer);
                    }
                    _ => {}
                }
            }
        }
        Ok(Answers(answers))
    }

    /// A broken answer for `path`: `kind` is an HTTP status (`500`), `html` (an error page
    /// with status 200), `truncated` (the path's JSON cut in half) or `slow:MILLISECONDS`
    /// (the path's answer, late).
    pub fn fault(&self, path: &str, kind: &str) -> Result<Answer, String> {
        let current = self.0.get(path).cloned().unwrap_or(Answer::Status(501));
        Ok(match kind {
            "html" => Answer::Json(Bytes::from_static(
                b"<html><body><h1>502 Bad Gateway</h1></body></html>",
            )),
            "truncated" => match current {
                Answer::Json(body) => Answer::Json(body.slice(..body.len() / 2)),
                _ => Answer::Json(Bytes::from_static(b"{\"data\":[{\"id\":")),
            },
            _ => match kind.strip_prefix("slow:") {
                Some(ms) => {
                    let ms: u64 = ms
                        .parse()
                        .map_err(|_| format!("`{ms}` is not milliseconds"))?;
                    Answer::Delayed(Duration::from_millis(ms), Box::new(current))
                }
                None => Answer::Status(kind.parse().map_err(|_| {
                    format!("`{kind}` is not a status, html, truncated or slow:MILLISECONDS")
                })?),
            },
        })
    }

    /// A cluster of `nodes` nodes and `guests` guests, the same for the same `seed`, with the
    /// quirks of real answers (numbers as strings, 0/1 booleans, templates, `N/A` wear-out).
    /// Certificates expire relative to `now`.
    pub fn generate(nodes: usize, guests: usize, seed: u64, now: SystemTime) -> Answers {
        Answers::generate_with_offline(nodes, guests, seed, now, 0, Duration::ZERO)
    }

    /// The benchmarks' agents: every other running VM's agent answers its file systems after
    /// holding the node's worker for `agent` (the guest's round trip), the others have none
    /// configured. `hung`: every agent of that node hangs instead (PVE holds the worker 6 s,
    /// its own timeout, then answers 500 `got timeout`).
    pub fn answer_half_of_the_agents(&mut self, agent: Duration, hung: Option<&str>) {
        let mut paths: Vec<String> = (self.0.keys())
            .filter(|p| p.ends_with("/agent/get-fsinfo"))
            .cloned()
            .collect();
        paths.sort();
        let Some(sample) = paths.iter().find_map(|p| match &self.0[p] {
            Answer::Json(body) => Some(body.clone()),
            _ => None,
        }) else {
            return;
        };
        for (i, path) in paths.iter().enumerate() {
            let node = path.split('/').nth(2).unwrap_or("");
            let answer = if hung == Some(node) {
                let vmid = path.split('/').nth(4).unwrap_or("");
                Answer::Held(
                    Duration::from_secs(6),
                    Box::new(Answer::Message(
                        500,
                        format!("VM {vmid} qmp command 'guest-get-fsinfo' failed - got timeout"),
                    )),
                )
            } else if i % 2 == 0 {
                let body = match &self.0[path] {
                    Answer::Json(body) => body.clone(),
                    _ => sample.clone(),
                };
                Answer::Held(agent, Box::new(Answer::Json(body)))
            } else {
                Answer::Message(500, "No QEMU guest agent configured".into())
            };
            self.0.insert(path.clone(), answer);
        }
    }

    /// Like [`Answers::generate`], with the last `offline` nodes down: listed with only their
    /// status, their guests `unknown`, and their own paths answering 595 after `delay`.
    pub fn generate_with_offline(
        nodes: usize,
        guests: usize,
        seed: u64,
        now: SystemTime,
        offline: usize,
        delay: Duration,
    ) -> Answers {
        let mut rng = fastrand::Rng::with_seed(seed);
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let names: Vec<String> = (1..=nodes).map(|i| format!("pve{i:02}")).collect();
        let mut rows = Vec::new();
        let mut answers = HashMap::new();
        let cluster_ca = "/CN=Proxmox Virtual Environment/OU=3c5e0a1f-sim/O=PVE Cluster Manager CA";
        let first_offline = nodes.saturating_sub(offline);
        for (i, name) in names.iter().enumerate() {
            if i >= first_offline {
                rows.push(json!({
                    "id": format!("node/{name}"), "type": "node", "node": name, "status": "offline",
                }));
                for path in crate::collectors::per_node_paths() {
                    let unreachable = Answer::Delayed(delay, Box::new(Answer::Status(595)));
                    answers.insert(format!("/nodes/{name}/{path}"), unreachable);
                }
                continue;
            }
            let cpus = [16, 32, 48, 64][rng.usize(..4)];
            let gib = [64u64, 128, 256, 512][rng.usize(..4)];
            rows.push(json!({
                "id": format!("node/{name}"), "type": "node", "node": name, "status": "online",
                "maxcpu": cpus, "cpu": rng.f64() / 2.0, "maxmem": gib << 30,
                "mem": (gib << 30) / 3, "maxdisk": 100_861_726_720u64, "disk": 5_601_427_456u64,
                "uptime": 86_400 * (1 + rng.u64(..300)), "level": "", "cgroup-mode": 2,
            }));
            for (storage, plugin, shared, total, content) in [
                ("local", "dir", 0, 100_861_726_720u64, "iso,vztmpl,backup"),
                (
                    "local-lvm",
                    "lvmthin",
                    0,
                    1_884_119_105_536,
                    "images,rootdir",
                ),
                ("ceph-vm", "rbd", 1, 2_406_956_265_150, "images,rootdir"),
            ] {
                let used = total / 100 * rng.u64(1..90);
                rows.push(json!({
                    "id": format!("storage/{name}/{storage}"), "type": "storage",
                    "storage": storage, "node": name, "status": "available",
                    "plugintype": plugin, "shared": shared, "content": content,
                    // PVE 7 sent sizes as strings; keep some that way.
                    "maxdisk": if i % 2 == 0 { json!(total.to_string()) } else { json!(total) },
                    "disk": used,
                }));
            }
            let disks: Vec<Value> = (0..2 + rng.usize(..4))
                .map(|d| {
                    let health = match rng.usize(..40) {
                        0 => "FAILED",
                        1 => "UNKNOWN",
                        _ if d == 0 => "OK",
                        _ => "PASSED",
                    };
                    json!({
                        "devpath": if d == 0 { "/dev/nvme0n1".to_owned() }
                                   else { format!("/dev/sd{}", (b'a' + d as u8 - 1) as char) },
                        "type": if d == 0 { "nvme" } else { "hdd" },
                        "health": health, "size": 2_000_398_934_016u64,
                        "wearout": if d == 0 { json!(100 - rng.u64(..10)) } else { json!("N/A") },
                        "rpm": if d == 0 { json!(0) } else { json!("7200") },
                        "gpt": 1, "osdid": -1, "osdid-list": null,
                        "serial": format!("SIM{i:03}{d:02}"),
                        "model": if d == 0 { "Sim NVMe 2TB" } else { "Sim HDD 2TB" },
                        "wwn": format!("0x5000c5{i:05x}{d:03x}"),
                    })
                })
                .collect();
            for disk in &disks {
                let devpath = disk["devpath"].as_str().unwrap_or("");
                answers.insert(
                    crate::collectors::smart::path(name, devpath),
                    smart_answer(i, devpath),
                );
            }
            answers.insert(
                format!("/nodes/{name}/disks/list"),
                Answer::Json(Bytes::from(json!({ "data": disks }).to_string())),
            );
            let node_cert_days = 200 + rng.i64(0..500);
            let certs = json!({ "data": [
                { "filename": "pve-root-ca.pem", "subject": cluster_ca, "issuer": cluster_ca,
                  "notbefore": now - 86_400 * 400, "notafter": now + 86_400 * 3_250 + 3_600 },
                { "filename": "pve-ssl.pem",
                  "subject": format!("/OU=PVE Cluster Node/O=Proxmox Virtual Environment/CN={name}.sim.lan"),
                  "issuer": cluster_ca, "notbefore": now - 86_400 * 400,
                  "notafter": (now + 86_400 * node_cert_days + 3_600).to_string(),
                  "san": ["127.0.0.1", "localhost", name, format!("{name}.sim.lan")] },
            ]});
            answers.insert(
                format!("/nodes/{name}/certificates/info"),
                Answer::Json(Bytes::from(certs.to_string())),
            );
            let status = node_status(&mut rng, name, cpus, gib << 30);
            answers.insert(format!("/nodes/{name}/status"), json_answer(status));
            let subscription = match i % 3 {
                0 => json!({
                    "status": "active", "level": "c", "productname": "Proxmox VE Community Subscription 2 CPUs/year",
                    "nextduedate": due_date(now + 86_400 * (20 + rng.i64(0..300))),
                    "regdate": "2025-01-15 00:00:00", "checktime": now - 3_600,
                    "key": format!("pve2c-{i:010}"), "serverid": format!("SIMSERVERID{i:021}"),
                    "sockets": 2,
                }),
                1 => json!({
                    "status": "notfound", "level": "",
                    "message": "There is no subscription key", "url": "https://www.proxmox.com/en/proxmox-virtual-environment/pricing",
                    "serverid": format!("SIMSERVERID{i:021}"),
                }),
                _ => json!({
                    "status": "expired", "level": "b", "productname": "Proxmox VE Basic Subscription 1 CPU/year",
                    "nextduedate": due_date(now - 86_400 * 12), "checktime": now - 7_200,
                    "key": format!("pve1b-{i:010}"), "serverid": format!("SIMSERVERID{i:021}"),
                    "sockets": 1,
                }),
            };
            answers.insert(
                format!("/nodes/{name}/subscription"),
                json_answer(subscription),
            );
        }
        for g in 0..guests {
            let vmid = 100 + g;
            let node = &names[rng.usize(..names.len().max(1))];
            let lxc = rng.usize(..5) == 0;
            // Every fortieth guest at least is a template.
            let template = rng.usize(..40) == 0 || g % 40 == 7;
            let running = !template && rng.usize(..8) != 0;
            let kind = if lxc { "lxc" } else { "qemu" };
            let node_index = names.iter().position(|n| n == node).unwrap_or(0);
            if node_index >= first_offline {
                rows.push(json!({
                    "id": format!("{kind}/{vmid}"), "type": kind, "vmid": vmid, "node": node,
                    "name": format!("{}-{vmid}", if lxc { "ct" } else { "vm" }),
                    "status": "unknown", "template": u8::from(template),
                }));
                continue;
            }
            let maxmem: u64 = [1u64, 2, 4, 8, 16, 32][rng.usize(..6)] << 30;
            let maxcpu = [1, 2, 4, 8][rng.usize(..4)];
            rows.push(json!({
                "id": format!("{kind}/{vmid}"), "type": kind,
                "vmid": if g % 7 == 0 { json!(vmid.to_string()) } else { json!(vmid) },
                "name": format!("{}-{vmid}", if lxc { "ct" } else { "vm" }),
                "node": node, "status": if running { "running" } else { "stopped" },
                "template": u8::from(template), "maxcpu": maxcpu,
                "maxmem": maxmem, "mem": if running { maxmem / 2 } else { 0 },
                "memhost": if running { maxmem / 2 } else { 0 },
                "maxdisk": 34_359_738_368u64, "disk": 0, "cpu": rng.f64() / 10.0,
                "uptime": if running { 3_600 * rng.u64(1..2_000) } else { 0 },
                "netin": rng.u64(..1 << 40), "netout": rng.u64(..1 << 40),
                "diskread": rng.u64(..1 << 38), "diskwrite": rng.u64(..1 << 38),
                "tags": TAGS[g % TAGS.len()],
                "lock": if g % 97 == 3 { json!("backup") } else { json!(null) },
                // HA manages every tenth guest if it is a VM (see `ha_replication_zfs`).
                "hastate": if !lxc && g % 10 == 0 {
                    json!(if g % 50 == 0 { "error" } else { "started" })
                } else { json!(null) },
                "pool": if g % 4 == 0 { json!("tenant-a") } else { json!(null) },
            }));
            if !template {
                let snapshots = snapshot_list(&mut rng, now, lxc);
                answers.insert(
                    format!("/nodes/{node}/{kind}/{vmid}/snapshot"),
                    json_answer(snapshots),
                );
            }
            if running && !lxc {
                answers.insert(
                    format!("/nodes/{node}/qemu/{vmid}/agent/get-fsinfo"),
                    agent_fsinfo(g),
                );
            }
        }
        netstat(&mut answers, &names[..first_offline], &rows);
        tasks(&mut answers, &names[..first_offline], now);
        let body = |data: Value| Answer::Json(Bytes::from(json!({ "data": data }).to_string()));
        for (filter, kinds) in [
            ("vm", &["qemu", "lxc"][..]),
            ("storage", &["storage"][..]),
            ("node", &["node"][..]),
        ] {
            let some: Vec<&Value> = rows
                .iter()
                .filter(|r| kinds.iter().any(|k| r["type"] == *k))
                .collect();
            answers.insert(
                format!("/cluster/resources?type={filter}"),
                body(json!(some)),
            );
        }
        ha_replication_zfs(&mut answers, &names, first_offline, &rows, now);
        other_exporters_paths(&mut answers, &names, first_offline, &rows);
        answers.insert(
            "/cluster/metrics/export".into(),
            Answer::FanOut(
                first_offline.saturating_sub(1),
                Box::new(json_answer(json!({ "data": metrics_export(&rows, now) }))),
            ),
        );
        answers.insert("/cluster/resources".into(), body(json!(rows)));
        Answers(answers)
    }
}

/// Tags of generated guests, in PVE's `;`-separated form, not always sorted.
const TAGS: [&str; 5] = ["", "prod", "prod;db", "web;prod", "dev"];

fn json_answer(data: Value) -> Answer {
    Answer::Json(Bytes::from(json!({ "data": data }).to_string()))
}

/// `/nodes/{node}/status` of a node with `cpus` threads and `memory` bytes, shaped as PVE 9
/// sends it (load averages as strings, `current-kernel`, `memory.available`).
fn node_status(rng: &mut fastrand::Rng, name: &str, cpus: u64, memory: u64) -> Value {
    let used = memory / 100 * rng.u64(20..90);
    let swap_total = 8u64 << 30;
    let swap_used = if rng.usize(..4) == 0 {
        rng.u64(..swap_total / 2)
    } else {
        0
    };
    let load = |base: f64| format!("{:.2}", base * cpus as f64);
    let busy = rng.f64() / 2.0;
    json!({
        "uptime": 86_400 * (1 + rng.u64(..300)), "idle": 0,
        "cpu": busy, "wait": rng.f64() / 50.0,
        "loadavg": [load(busy * 1.1), load(busy), load(busy * 0.9)],
        "cpuinfo": { "cpus": cpus, "cores": cpus / 2, "sockets": if cpus > 32 { 2 } else { 1 },
                     "model": "AMD EPYC 7313P 16-Core Processor", "mhz": "3000.000",
                     "user_hz": 100, "hvm": "1", "flags": "fpu vme de pse tsc msr pae" },
        "memory": { "total": memory, "used": used, "free": memory - used,
                    "available": memory - used + memory / 20 },
        "swap": { "total": swap_total, "used": swap_used, "free": swap_total - swap_used },
        "rootfs": { "total": 100_861_726_720u64, "used": 5_601_427_456u64 + rng.u64(..1 << 34),
                    "avail": 90_000_000_000u64, "free": 95_000_000_000u64 },
        "ksm": { "shared": if rng.bool() { rng.u64(..1 << 32) } else { 0 } },
        "pveversion": "pve-manager/9.1.3/5e1a2b3c4d5e6f70",
        "kversion": "Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z)",
        "current-kernel": { "sysname": "Linux", "release": "6.17.2-1-pve", "machine": "x86_64",
                            "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z)" },
        "boot-info": { "mode": "efi", "secureboot": 0 },
        "name": name,
    })
}

/// A disk's SMART answer as PVE gives it: smartctl's text for NVMe, the attribute table for
/// the others. (From the node's number, not the cluster's random numbers.)
fn smart_answer(node: usize, devpath: &str) -> Answer {
    let hours = 8_000 + 37 * node as u64;
    let data = if devpath.starts_with("/dev/nvme") {
        let text = format!(
            "\nSMART/Health Information (NVMe Log 0x02, NSID 0xffffffff)\n\
             Critical Warning:                   0x00\n\
             Temperature:                        {} Celsius\n\
             Available Spare:                    100%\n\
             Available Spare Threshold:          10%\n\
             Percentage Used:                    {}%\n\
             Power On Hours:                     {hours}\n\
             Unsafe Shutdowns:                   {}\n\
             Media and Data Integrity Errors:    0\n",
            34 + node % 9,
            node % 12,
            node % 30,
        );
        json!({ "health": "PASSED", "type": "text", "text": text, "wearout": 100 - node % 12 })
    } else {
        let attribute = |id: &str, name: &str, value: u64, threshold: u64, raw: String| {
            json!({ "id": id, "name": name, "value": value, "normalized": value, "worst": value,
                    "threshold": threshold, "raw": raw, "fail": "-", "flags": "-O--CK" })
        };
        let reallocated = if node.is_multiple_of(11) { 8 } else { 0 };
        json!({ "health": "PASSED", "type": "ata", "attributes": [
            attribute("  5", "Reallocated_Sector_Ct", 100, 10, reallocated.to_string()),
            attribute("  9", "Power_On_Hours", 91, 0, hours.to_string()),
            attribute(" 12", "Power_Cycle_Count", 100, 20, "41".into()),
            attribute("194", "Temperature_Celsius", 62, 0, format!("{} (Min/Max 18/45)", 30 + node % 7)),
            attribute("197", "Current_Pending_Sector", 100, 0, "0".into()),
            attribute("198", "Offline_Uncorrectable", 100, 0, "0".into()),
            attribute("199", "UDMA_CRC_Error_Count", 200, 0, "0".into()),
        ]})
    };
    json_answer(data)
}

/// Each online node's `/nodes/{node}/tasks?errors=1…`: what did not end `OK` in the last two
/// days. Every third node had a backup end with warnings an hour ago, every fifth a guest that
/// failed to start two hours ago, every seventh a failed backup yesterday. (From the node's
/// number, not the cluster's random numbers, which stay as they were.)
fn tasks(answers: &mut HashMap<String, Answer>, online: &[String], now: i64) {
    for (i, node) in online.iter().enumerate() {
        let task = |kind: &str, vmid: &str, ago: i64, took: i64, status: &str| {
            let start = now - ago - took;
            json!({
                "upid": format!("UPID:{node}:{:08X}:{:08X}:{start:08X}:{kind}:{vmid}:root@pam:", 4_000 + i, 9_000 + i),
                "node": node, "pid": 4_000 + i, "pstart": 9_000 + i, "starttime": start,
                "endtime": now - ago, "type": kind, "id": vmid, "user": "root@pam", "status": status,
            })
        };
        let mut failed = Vec::new();
        if i.is_multiple_of(3) {
            failed.push(task("vzdump", "", 3_600, 1_800, "WARNINGS: 1"));
        }
        if i.is_multiple_of(5) {
            failed.push(task(
                "qmstart",
                "100",
                7_200,
                5,
                "start failed: QEMU exited with code 1",
            ));
        }
        if i.is_multiple_of(7) {
            failed.push(task("vzdump", "", 86_400, 2_400, "job errors"));
        }
        answers.insert(format!("/nodes/{node}/tasks"), json_answer(json!(failed)));
    }
}

/// Each online node's `/nodes/{node}/netstat`: a device per running guest's interface
/// (`net0`, and `net1` for every third guest), with PVE's `in` and `out` from the guest's side.
fn netstat(answers: &mut HashMap<String, Answer>, online: &[String], rows: &[Value]) {
    for node in online {
        let mut devices = Vec::new();
        for row in rows
            .iter()
            .filter(|r| r["node"] == node.as_str() && r["status"] == "running")
        {
            let Some(vmid) = row["vmid"]
                .as_u64()
                .or_else(|| row["vmid"].as_str()?.parse().ok())
            else {
                continue;
            };
            for net in 0..(1 + u64::from(vmid % 3 == 0)) {
                devices.push(json!({
                    "vmid": vmid.to_string(), "dev": format!("net{net}"),
                    "in": (vmid * 7_919 + net) * 1_048_576, "out": (vmid * 104_729 + net) * 4_096,
                }));
            }
        }
        answers.insert(
            format!("/nodes/{node}/netstat"),
            json_answer(json!(devices)),
        );
    }
}

/// What a running VM's guest agent says of its file systems: most run Linux with an agent,
/// some Windows; some have no agent configured, some one that is not running (PVE's 500s).
/// (Sizes come from `g`, not the cluster's random numbers, which stay as they were.)
fn agent_fsinfo(g: usize) -> Answer {
    if g % 5 == 1 {
        return Answer::Message(500, "No QEMU guest agent configured".into());
    }
    if g % 11 == 2 {
        return Answer::Message(500, "QEMU guest agent is not running".into());
    }
    let disk = |name: &str, mountpoint: &str, fstype: &str, total: u64, used: u64| {
        json!({
            "name": name, "mountpoint": mountpoint, "type": fstype,
            "total-bytes": total, "used-bytes": used,
            "disk": [{"bus-type": "scsi", "bus": 0, "target": 0, "unit": 0, "dev": format!("/dev/{name}")}],
        })
    };
    let total: u64 = [16u64, 32, 64, 128][g % 4] << 30;
    let used = total / 100 * (5 + (g as u64 * 37) % 93);
    let result = if g % 13 == 3 {
        json!([
            disk(
                "\\\\?\\Volume{6e6a2c5d-0000-0000-0000-100000000000}\\",
                "C:\\",
                "NTFS",
                total,
                used
            ),
            disk(
                "\\\\?\\Volume{6e6a2c5d-0000-0000-0000-200000000000}\\",
                "System Reserved",
                "NTFS",
                52_424_704,
                30_000_000
            ),
        ])
    } else {
        json!([
            disk("sda1", "/", "ext4", total, used),
            disk("sda15", "/boot/efi", "vfat", 109_422_592, 6_291_456),
            disk("sda1", "/var/lib/docker", "ext4", total, used),
            {"name": "tmpfs", "mountpoint": "/run", "type": "tmpfs", "total-bytes": 209_715_200, "used-bytes": 1_048_576, "disk": []},
            {"name": "loop0", "mountpoint": "/snap/core22/1380", "type": "squashfs", "total-bytes": 77_594_624, "used-bytes": 77_594_624, "disk": []},
        ])
    };
    json_answer(json!({ "result": result }))
}

/// A guest's snapshot list: up to three snapshots, then PVE's `current` entry.
fn snapshot_list(rng: &mut fastrand::Rng, now: i64, lxc: bool) -> Value {
    let mut list = Vec::new();
    let mut parent: Option<String> = None;
    let count = rng.usize(..4);
    for n in 0..count {
        let name = format!("snap{}", n + 1);
        let mut snapshot = json!({
            "name": name, "description": "",
            "snaptime": now - 86_400 * rng.i64(1..60) - rng.i64(0..86_400),
        });
        if !lxc {
            snapshot["vmstate"] = json!(u8::from(n % 2 == 0));
        }
        if let Some(parent) = &parent {
            snapshot["parent"] = json!(parent);
        }
        parent = Some(name);
        list.push(snapshot);
    }
    let mut current = json!({ "name": "current", "description": "You are here!", "running": 1,
                              "digest": "3f1e2d3c4b5a69788796a5b4c3d2e1f001020304" });
    if let Some(parent) = parent {
        current["parent"] = json!(parent);
    }
    list.push(current);
    json!(list)
}

/// `YYYY-MM-DD` of a Unix time.
fn due_date(unix: i64) -> String {
    // Civil date from days since 1970-01-01 (proleptic Gregorian), in 400-year eras.
    let days = unix.div_euclid(86_400) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// HA status (every tenth running VM HA-managed, one in error, the offline nodes' LRMs dead
/// and their resources fenced), replication jobs (every twentieth guest, one failing) and ZFS
/// pools (a DEGRADED one on every seventh node).
fn ha_replication_zfs(
    answers: &mut HashMap<String, Answer>,
    names: &[String],
    first_offline: usize,
    rows: &[Value],
    now: i64,
) {
    let stamp = |ts: i64| format!("{ts}");
    let mut ha = vec![
        json!({ "id": "quorum", "type": "quorum", "node": names.first(),
                              "status": "OK", "quorate": 1 }),
    ];
    if let Some(master) = names.first() {
        ha.push(json!({ "id": "master", "type": "master", "node": master,
                        "status": format!("{master} (active, {})", stamp(now)), "timestamp": now }));
    }
    let mut jobs: HashMap<&str, Vec<Value>> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let state = if i < first_offline {
            "active"
        } else {
            "old timestamp - dead?"
        };
        ha.push(
            json!({ "id": format!("lrm:{name}"), "type": "lrm", "node": name,
                        "status": format!("{name} ({state}, {})", stamp(now)), "timestamp": now }),
        );
    }
    let online = |node: &str| {
        names
            .iter()
            .position(|n| n == node)
            .is_some_and(|i| i < first_offline)
    };
    for (g, row) in rows
        .iter()
        .filter(|r| r["type"] == "qemu" || r["type"] == "lxc")
        .enumerate()
    {
        let (Some(node), Some(vmid)) = (row["node"].as_str(), row["id"].as_str()) else {
            continue;
        };
        let vmid = vmid.rsplit('/').next().unwrap_or("0");
        if row["type"] == "qemu" && g % 10 == 0 {
            let state = if !online(node) {
                "fence"
            } else if g % 50 == 0 {
                "error"
            } else {
                "started"
            };
            let sid = format!("vm:{vmid}");
            ha.push(json!({ "id": format!("service:{sid}"), "type": "service", "sid": sid,
                            "node": node, "state": state, "crm_state": state,
                            "request_state": "started", "status": format!("{sid} ({node}, {state})"),
                            "max_restart": 1, "max_relocate": 1 }));
        }
        if g % 20 == 5 && online(node) && names.len() > 1 {
            let target = names
                .iter()
                .find(|n| n.as_str() != node)
                .cloned()
                .unwrap_or_default();
            let failing = g % 100 == 5;
            let mut job = json!({ "id": format!("{vmid}-0"), "guest": vmid.parse::<u64>().unwrap_or(0),
                                  "jobnum": 0, "target": target, "type": "local", "schedule": "*/15",
                                  "last_sync": now - if failing { 7_200 } else { 600 },
                                  "duration": 1.5 + (g % 7) as f64, "fail_count": u8::from(failing) * 2,
                                  "next_sync": now + 300, "source": node, "vmtype": row["type"],
                                  "last_try": now - if failing { 60 } else { 600 } });
            if failing {
                job["error"] = json!(format!("{target}: no route to host"));
            }
            jobs.entry(node).or_default().push(job);
        }
    }
    answers.insert("/cluster/ha/status/current".into(), json_answer(json!(ha)));
    backups(answers, names, first_offline, rows, now);
    let osds = 4 * first_offline;
    let total: u64 = 8 << 40;
    answers.insert(
        "/cluster/ceph/status".into(),
        json_answer(json!({
            "health": { "status": if first_offline < names.len() { "HEALTH_WARN" } else { "HEALTH_OK" },
                        "checks": {}, "mutes": [] },
            "quorum_names": names.iter().take(first_offline.min(3)).collect::<Vec<_>>(),
            "monmap": { "epoch": 3, "num_mons": names.len().min(3) },
            "osdmap": { "epoch": 90, "num_osds": 4 * names.len(), "num_up_osds": osds, "num_in_osds": osds },
            "pgmap": { "pgs_by_state": [{ "state_name": "active+clean", "count": 128 }],
                       "num_pgs": 128, "bytes_used": total / 4, "bytes_avail": total - total / 4,
                       "bytes_total": total },
        })),
    );
    for (i, name) in names.iter().enumerate().take(first_offline) {
        let list = jobs.remove(name.as_str()).unwrap_or_default();
        for job in &list {
            if let Some(id) = job["id"].as_str() {
                answers.insert(
                    format!("/nodes/{name}/replication/{id}/status"),
                    json_answer(job.clone()),
                );
            }
        }
        answers.insert(
            format!("/nodes/{name}/replication"),
            json_answer(json!(list)),
        );
        let size: u64 = 1_992_864_825_344;
        let mut pools = vec![json!({ "name": "rpool", "health": "ONLINE", "size": size,
                                     "alloc": size / 5, "free": size - size / 5,
                                     "frag": 5 + i % 20, "dedup": 1.0 })];
        if i % 7 == 3 {
            pools.push(
                json!({ "name": "tank", "health": "DEGRADED", "size": size * 8,
                               "alloc": size * 3, "free": size * 5, "frag": 19, "dedup": 1.0 }),
            );
        }
        answers.insert(
            format!("/nodes/{name}/disks/zfs"),
            json_answer(json!(pools)),
        );
    }
}

/// Backups on each online node's `local` storage (two per guest, a day apart), guests no job
/// covers (every ninth), and each node's last vzdump task (every fifth node's failed).
fn backups(
    answers: &mut HashMap<String, Answer>,
    names: &[String],
    first_offline: usize,
    rows: &[Value],
    now: i64,
) {
    let guests: Vec<&Value> = rows
        .iter()
        .filter(|r| r["type"] == "qemu" || r["type"] == "lxc")
        .collect();
    let vmid = |r: &Value| -> u64 {
        let id = r["id"].as_str().unwrap_or("");
        id.rsplit('/')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut tasks = Vec::new();
    for (i, name) in names.iter().enumerate().take(first_offline) {
        let mut volumes = Vec::new();
        for guest in guests.iter().filter(|g| g["node"] == name.as_str()) {
            let (id, kind) = (vmid(guest), guest["type"].as_str().unwrap_or("qemu"));
            for days in [1, 2] {
                let ctime = now - 86_400 * days - 3_600;
                volumes.push(json!({
                    "volid": format!("local:backup/vzdump-{kind}-{id}-{ctime}.vma.zst"),
                    "vmid": id, "ctime": ctime, "size": 2_147_483_648u64 + id * 1_048_576,
                    "format": "vma.zst", "subtype": kind, "content": "backup",
                }));
            }
        }
        answers.insert(
            format!("/nodes/{name}/storage/local/content"),
            json_answer(json!(volumes)),
        );
        let end = now - 86_400 + 1_800;
        tasks.push(json!({
            "upid": format!("UPID:{name}:000A1B2C:0F0E0D0C:{:08X}:vzdump::root@pam:", end - 1_800),
            "node": name, "type": "vzdump", "id": "", "user": "root@pam",
            "starttime": end - 1_800, "endtime": end,
            "status": if i % 5 == 4 { "job errors" } else { "OK" },
        }));
    }
    let uncovered: Vec<Value> = guests
        .iter()
        .enumerate()
        .filter(|(g, _)| g % 9 == 8)
        .map(|(_, r)| json!({ "vmid": vmid(r), "name": r["name"], "type": r["type"] }))
        .collect();
    answers.insert(
        "/cluster/backup-info/not-backed-up".into(),
        json_answer(json!(uncovered)),
    );
    answers.insert("/cluster/tasks".into(), json_answer(json!(tasks)));
}

/// What `/cluster/metrics/export` answers: gauges and counters for every online node, guest
/// and storage, as PVE's pull-metrics cache holds them.
fn metrics_export(rows: &[Value], now: i64) -> Vec<Value> {
    let mut metrics = Vec::new();
    let mut add = |id: &Value, metric: &str, value: &Value, kind: &str| {
        metrics.push(
            json!({ "id": id, "metric": metric, "value": value.as_f64().or_else(
            || value.as_str().and_then(|s| s.parse().ok())).unwrap_or(0.0),
            "timestamp": now, "type": kind }),
        );
    };
    for row in rows {
        let id = &row["id"];
        match row["type"].as_str() {
            Some("node") if row["status"] == "online" => {
                for (metric, field) in [
                    ("uptime", "uptime"),
                    ("cpu_current", "cpu"),
                    ("cpu_max", "maxcpu"),
                    ("mem_total", "maxmem"),
                    ("mem_used", "mem"),
                    ("disk_total", "maxdisk"),
                    ("disk_used", "disk"),
                ] {
                    add(id, metric, &row[field], "gauge");
                }
                for metric in [
                    "cpu_avg1",
                    "cpu_avg5",
                    "cpu_avg15",
                    "cpu_iowait",
                    "swap_total",
                    "swap_used",
                ] {
                    add(id, metric, &json!(0), "gauge");
                }
                add(id, "net_in", &json!(0), "derive");
                add(id, "net_out", &json!(0), "derive");
            }
            Some("qemu" | "lxc") if row["status"] != "unknown" => {
                for (metric, field) in [
                    ("uptime", "uptime"),
                    ("cpu_max", "maxcpu"),
                    ("mem_total", "maxmem"),
                    ("disk_total", "maxdisk"),
                ] {
                    add(id, metric, &row[field], "gauge");
                }
                if row["status"] == "running" {
                    add(id, "cpu_current", &row["cpu"], "gauge");
                    add(id, "mem_used", &row["mem"], "gauge");
                    for (metric, field) in [
                        ("disk_read", "diskread"),
                        ("disk_write", "diskwrite"),
                        ("net_in", "netin"),
                        ("net_out", "netout"),
                    ] {
                        add(id, metric, &row[field], "derive");
                    }
                }
            }
            Some("storage") => {
                add(id, "disk_total", &row["maxdisk"], "gauge");
                add(id, "disk_used", &row["disk"], "gauge");
            }
            _ => {}
        }
    }
    metrics
}

/// The answers another exporter (prometheus-pve-exporter) asks for, so that benchmarks can
/// compare both against the same simulated cluster: cluster status, version, guest lists and
/// configurations of every online node, replication, subscription, backup information.
fn other_exporters_paths(
    answers: &mut HashMap<String, Answer>,
    names: &[String],
    first_offline: usize,
    rows: &[Value],
) {
    let body = |data: Value| Answer::Json(Bytes::from(json!({ "data": data }).to_string()));
    // A single node is a standalone node: no cluster entry, no corosync.
    let mut status = Vec::new();
    if names.len() > 1 {
        status.push(json!({
            "type": "cluster", "id": "cluster", "name": "sim", "nodes": names.len(),
            "quorate": 1, "version": names.len(),
        }));
    }
    for (i, name) in names.iter().enumerate() {
        status.push(json!({
            "type": "node", "id": format!("node/{name}"), "name": name, "nodeid": i + 1,
            "online": u8::from(i < first_offline), "local": u8::from(i == 0), "level": "",
            "ip": format!("192.0.2.{}", 1 + i % 250),
        }));
    }
    answers.insert("/cluster/status".into(), body(json!(status)));
    // Small clusters have a QDevice (a tie-breaking vote); without one PVE answers `{}`.
    let qdevice = if names.len() > 1 && names.len() < 10 {
        json!({ "Model": "Net", "Node ID": "1", "Membership node list": "1, 2",
                "QNetd host": "192.0.2.250:5403", "Algorithm": "Fifty-Fifty split",
                "Tie-breaker": "Node with lowest node ID", "KAP Tie-breaker": "Enabled",
                "State": "Connected" })
    } else {
        json!({})
    };
    answers.insert("/cluster/config/qdevice".into(), body(qdevice));
    answers.insert(
        "/version".into(),
        body(json!({ "version": "9.1.3", "release": "9.1", "repoid": "5e1a2b3c" })),
    );
    for name in names.iter().take(first_offline) {
        for kind in ["qemu", "lxc"] {
            let guests: Vec<&Value> = rows
                .iter()
                .filter(|r| r["type"] == kind && r["node"] == name.as_str())
                .collect();
            for guest in &guests {
                let config = json!({
                    "name": guest["name"], "onboot": 1, "cores": guest["maxcpu"],
                    "memory": guest["maxmem"].as_u64().unwrap_or(0) >> 20,
                });
                answers.insert(
                    format!(
                        "/nodes/{name}/{kind}/{}/config",
                        guest["vmid"].to_string().trim_matches('"')
                    ),
                    body(config),
                );
            }
            // PVE 9's lists carry each running guest's pressure (percent, over 10 s).
            let listed: Vec<Value> = guests
                .iter()
                .map(|g| {
                    let mut g = (*g).clone();
                    if g["status"] == "running" {
                        let seed = g["vmid"]
                            .to_string()
                            .trim_matches('"')
                            .parse::<u64>()
                            .unwrap_or(0);
                        let percent = |n: u64| ((seed * n) % 400) as f64 / 100.0;
                        g["pressurecpusome"] = json!(percent(7));
                        g["pressureiosome"] = json!(percent(11));
                        g["pressureiofull"] = json!(percent(3));
                        g["pressurememorysome"] = json!(percent(5) / 4.0);
                        g["pressurememoryfull"] = json!(0.0);
                        if kind == "qemu" {
                            g["pressurecpufull"] = json!(percent(2) / 2.0);
                        }
                    }
                    g
                })
                .collect();
            answers.insert(format!("/nodes/{name}/{kind}"), body(json!(listed)));
        }
    }
}

struct Shared {
    answers: Answers,
    /// What the simulator plays: PVE, or a backup server (its token header, cookie and error
    /// answers).
    product: Product,
    authorization: Mutex<String>,
    latency: Mutex<Duration>,
    status_override: Mutex<Option<u16>>,
    /// Answers set while running; they win over `answers`.
    overrides: Mutex<HashMap<String, Answer>>,
    /// A user that may log in with a password, and how long its tickets are taken.
    login: Mutex<Option<(String, String, Duration)>>,
    /// Tickets handed out, and when.
    tickets: Mutex<HashMap<String, std::time::Instant>>,
    logins: AtomicU64,
    behaviour: Mutex<Behaviour>,
    /// Each node's workers and counters, made when first needed.
    nodes: Mutex<HashMap<String, Arc<Node>>>,
    /// The next this many requests are not answered: the connection is closed instead.
    hang_ups: AtomicU64,
    /// Bumped to close every idle connection at once (as 30 s without a scrape would).
    close_idle: tokio::sync::watch::Sender<u64>,
    /// Requests by path (query aside), once [`SimApi::count_paths`] asked for it.
    asked: Mutex<Option<HashMap<String, u64>>>,
    /// While counting: requests under way by path (query aside), and the most there were at
    /// once.
    under_way: Mutex<HashMap<String, (u64, u64)>>,
}

/// One node's pveproxy: its workers and what it has done.
struct Node {
    workers: Option<Arc<tokio::sync::Semaphore>>,
    counters: Arc<conn::Counters>,
}

impl Shared {
    fn node(&self, name: &str) -> Arc<Node> {
        lock(&self.nodes)
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Node {
                    workers: behaviour_workers(self),
                    counters: Arc::default(),
                })
            })
            .clone()
    }

    /// Holds one of `node`'s workers for the work an answer of `bytes` costs, and `waiting`
    /// more (an agent call). A wait is not cut short when the client leaves.
    async fn work(&self, node: &Arc<Node>, bytes: usize, waiting: Duration) {
        let spent = lock(&self.behaviour).work(bytes);
        if waiting.is_zero() {
            self.hold(node, spent).await;
            return;
        }
        let node = node.clone();
        let _ = tokio::spawn(async move { Shared::hold_node(&node, spent + waiting).await }).await;
    }

    /// Holds one of `node`'s workers for `spent`.
    pub(crate) async fn hold(&self, node: &Node, spent: Duration) {
        Shared::hold_node(node, spent).await;
    }

    async fn hold_node(node: &Node, spent: Duration) {
        let _worker = match &node.workers {
            Some(workers) => workers.clone().acquire_owned().await.ok(),
            None => None,
        };
        // Counted as it is spent, a tenth of a second at a time: a long hold (an agent call)
        // shows in the intervals it spans, not all in the one it ends in.
        const STEP: Duration = Duration::from_millis(100);
        let mut left = spent;
        while left > STEP {
            tokio::time::sleep(STEP).await;
            node.counters.add_work(STEP);
            left -= STEP;
        }
        if !left.is_zero() {
            tokio::time::sleep(left).await;
        }
        node.counters.add_work(left);
    }
}

/// One endpoint of the simulated cluster: the node it is, and its link's state.
struct Endpoint {
    /// The node this endpoint is (`/nodes/{other}/…` is proxied from here).
    node: Option<String>,
    counters: Arc<conn::Counters>,
    /// When the endpoint's link is free again (with a bandwidth limit).
    link_free: Mutex<std::time::Instant>,
}

/// A running simulated API endpoint.
#[derive(Clone)]
pub struct SimApi {
    shared: Arc<Shared>,
    endpoint: Arc<Endpoint>,
}

impl SimApi {
    /// Serves `answers` to clients that send token `token_id` with `secret`. The endpoint is
    /// the node `/cluster/status` marks `local`; [`SimApi::endpoint`] makes the others.
    pub fn new(answers: Answers, token_id: &str, secret: &str) -> SimApi {
        SimApi::new_for(Product::Pve, answers, token_id, secret)
    }

    /// [`SimApi::new`] for `product`: a backup server ([`Answers::generate_pbs`]) takes
    /// `PBSAPIToken=ID:SECRET` and `PBSAuthCookie`, and writes its errors in the body.
    pub fn new_for(product: Product, answers: Answers, token_id: &str, secret: &str) -> SimApi {
        let local = local_node(&answers);
        let shared = Arc::new(Shared {
            answers,
            product,
            authorization: Mutex::new(product.token_header(token_id, secret)),
            latency: Mutex::new(Duration::ZERO),
            status_override: Mutex::new(None),
            overrides: Mutex::new(HashMap::new()),
            login: Mutex::new(None),
            tickets: Mutex::new(HashMap::new()),
            logins: AtomicU64::new(0),
            behaviour: Mutex::new(Behaviour::default()),
            nodes: Mutex::new(HashMap::new()),
            hang_ups: AtomicU64::new(0),
            close_idle: tokio::sync::watch::Sender::new(0),
            asked: Mutex::new(None),
            under_way: Mutex::default(),
        });
        SimApi::endpoint_of(shared, local)
    }

    fn endpoint_of(shared: Arc<Shared>, node: Option<String>) -> SimApi {
        let counters = match &node {
            Some(name) => shared.node(name).counters.clone(),
            None => Arc::default(),
        };
        SimApi {
            shared,
            endpoint: Arc::new(Endpoint {
                node,
                counters,
                link_free: Mutex::new(std::time::Instant::now()),
            }),
        }
    }

    /// Takes token `token_id` with `secret` from now on, and no other (a rotated token).
    pub fn set_token(&self, token_id: &str, secret: &str) {
        *lock(&self.shared.authorization) = self.shared.product.token_header(token_id, secret);
    }

    /// Another endpoint of the same cluster: node `node`'s pveproxy (serve it on a listener
    /// of its own). Answers, faults, logins and behaviour are shared with this one.
    pub fn endpoint(&self, node: &str) -> SimApi {
        SimApi::endpoint_of(self.shared.clone(), Some(node.to_owned()))
    }

    /// The node this endpoint is, if the answers name one.
    pub fn node(&self) -> Option<&str> {
        self.endpoint.node.as_deref()
    }

    /// How every endpoint of the cluster serves from now on (new connections, and workers
    /// made afresh).
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
        let mut nodes = lock(&self.shared.nodes);
        for node in nodes.values_mut() {
            *node = Arc::new(Node {
                workers: behaviour_workers(&self.shared),
                counters: node.counters.clone(),
            });
        }
    }

    pub fn behaviour(&self) -> Behaviour {
        lock(&self.shared.behaviour).clone()
    }

    /// What this endpoint has done so far.
    pub fn stats(&self) -> Stats {
        self.endpoint.counters.stats()
    }

    /// What every node has done so far, requests proxied to it included, by node name.
    pub fn cluster_stats(&self) -> std::collections::BTreeMap<String, Stats> {
        lock(&self.shared.nodes)
            .iter()
            .map(|(name, node)| (name.clone(), node.counters.stats()))
            .collect()
    }

    /// The next `n` requests (to any endpoint) are not answered: the connection is closed
    /// under them, as when a server goes away mid-request.
    pub fn hang_up_next(&self, n: u64) {
        self.shared.hang_ups.store(n, Ordering::SeqCst);
    }

    /// Closes every connection of the cluster that is not answering a request now, as
    /// pveproxy's idle timeout does between scrapes 30 s apart.
    pub fn close_idle_connections(&self) {
        self.shared
            .close_idle
            .send_modify(|generation| *generation += 1);
    }

    /// Every answer waits this long first.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.shared.latency) = latency;
    }

    /// Every request gets this status instead of its answer (`None`: answer normally).
    pub fn set_status_override(&self, status: Option<u16>) {
        *lock(&self.shared.status_override) = status;
    }

    /// Lets `user` log in with `password` (`POST /access/ticket`); its tickets are taken for
    /// `lifetime` (PVE: two hours), then answered 401.
    pub fn set_login(&self, user: &str, password: &str, lifetime: Duration) {
        *lock(&self.shared.login) = Some((user.to_owned(), password.to_owned(), lifetime));
    }

    /// Successful logins so far.
    pub fn logins(&self) -> u64 {
        self.shared.logins.load(Ordering::SeqCst)
    }

    /// Requests this endpoint received so far.
    /// Counts the requests by path (query aside) from now on, at every endpoint.
    pub fn count_paths(&self) {
        lock(&self.shared.asked).get_or_insert_with(HashMap::new);
    }

    /// The requests by path since [`SimApi::count_paths`], and forgets them.
    pub fn take_paths(&self) -> HashMap<String, u64> {
        lock(&self.shared.asked)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub fn requests(&self) -> u64 {
        self.endpoint.counters.requests.load(Ordering::SeqCst)
    }

    /// Since [`SimApi::count_paths`]: the most requests for each path (query aside) that
    /// were under way at once, at every endpoint.
    pub fn peaks(&self) -> HashMap<String, u64> {
        (lock(&self.shared.under_way).iter())
            .map(|(path, (_, most))| (path.clone(), *most))
            .collect()
    }

    /// Answers every request with `answer` for `path` from now on (fault injection).
    pub fn set_answer(&self, path: &str, answer: Answer) {
        lock(&self.shared.overrides).insert(path.to_owned(), answer);
    }

    /// Drops every answer set with [`SimApi::set_answer`]: the API heals.
    pub fn clear_answers(&self) {
        lock(&self.shared.overrides).clear();
    }

    /// TCP connections clients opened to this endpoint so far.
    pub fn connections(&self) -> usize {
        usize::try_from(self.stats().connections).unwrap_or(usize::MAX)
    }

    fn counters(&self) -> &conn::Counters {
        &self.endpoint.counters
    }

    /// Serves plain HTTP on `listener` until the task is dropped or the runtime ends.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        self.accept(listener, None).await
    }

    /// Serves HTTPS on `listener` with `tls` (see [`self_signed`]), as PVE does on port 8006.
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        tls: tokio_rustls::TlsAcceptor,
    ) -> std::io::Result<()> {
        self.accept(listener, Some(tls)).await
    }

    /// Serves the cluster over TLS (a self-signed certificate) on `count` loopback addresses,
    /// the first as this endpoint, the others as nodes `pve02`, `pve03`, … (each proxying to
    /// the others as pveproxy does): the servers' tasks and their addresses.
    pub async fn serve_tls_endpoints(
        &self,
        count: usize,
    ) -> std::io::Result<(
        Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
        Vec<std::net::SocketAddr>,
    )> {
        // One certificate for all of them: making one takes a key pair.
        let tls = self_signed().map_err(std::io::Error::other)?;
        let mut servers = Vec::new();
        let mut addresses = Vec::new();
        for i in 0..count {
            let endpoint = if i == 0 {
                self.clone()
            } else {
                self.endpoint(&format!("pve{:02}", i + 1))
            };
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            addresses.push(listener.local_addr()?);
            servers.push(tokio::spawn(endpoint.serve_tls(listener, tls.clone())));
        }
        Ok((servers, addresses))
    }
}

fn behaviour_workers(shared: &Shared) -> Option<Arc<tokio::sync::Semaphore>> {
    lock(&shared.behaviour)
        .workers
        .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1))))
}

/// The node `/cluster/status` marks `local`.
fn local_node(answers: &Answers) -> Option<String> {
    let Some(Answer::Json(body)) = answers.0.get("/cluster/status") else {
        return None;
    };
    let status: Value = serde_json::from_slice(body).ok()?;
    status["data"]
        .as_array()?
        .iter()
        .find(|entry| entry["type"] == "node" && entry["local"].as_u64() == Some(1))
        .and_then(|entry| entry["name"].as_str())
        .map(str::to_owned)
}

/// The simulator's certificate, self-signed for `localhost` and 127.0.0.1 and valid for a
/// century, like the one a new PVE node makes for itself. Its key is public on purpose: it
/// serves only the simulator on loopback.
pub const LOCALHOST_CERT_PEM: &str = include_str!("tls/localhost.crt");
/// The private key of [`LOCALHOST_CERT_PEM`].
pub const LOCALHOST_KEY_PEM: &str = include_str!("tls/localhost.key");

/// A TLS acceptor with the simulator's self-signed certificate ([`LOCALHOST_CERT_PEM`]).
pub fn self_signed() -> Result<tokio_rustls::TlsAcceptor, String> {
    self_signed_with_pem().map(|(acceptor, _)| acceptor)
}

/// [`self_signed`], and the certificate in PEM, for clients that should trust it.
pub fn self_signed_with_pem() -> Result<(tokio_rustls::TlsAcceptor, String), String> {
    crate::pve::dispatcher::install_crypto_provider();
    use rustls::pki_types::pem::PemObject;
    let chain = vec![
        rustls::pki_types::CertificateDer::from_pem_slice(LOCALHOST_CERT_PEM.as_bytes())
            .map_err(|e| e.to_string())?,
    ];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(LOCALHOST_KEY_PEM.as_bytes())
        .map_err(|e| e.to_string())?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    Ok((
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        LOCALHOST_CERT_PEM.to_owned(),
    ))
}

/// Answers one request as the endpoint `api`, with the cluster's behaviour.
async fn answer(api: &SimApi, request: Request) -> Response {
    let shared = &api.shared;
    let (uri, headers) = (request.uri(), request.headers());
    if uri.path() == "/_sim/requests" {
        // Not PVE: lets a benchmark in another process read the API request count.
        return api.requests().to_string().into_response();
    }
    if uri.path() == "/_sim/close-idle" {
        // Not PVE: closes every idle connection (this one closes after its answer).
        api.close_idle_connections();
        return StatusCode::NO_CONTENT.into_response();
    }
    if uri.path() == "/_sim/stats" {
        // Not PVE: every node's counts, for a benchmark in another process.
        return json_response(&json!(api.cluster_stats()));
    }
    api.counters().requests.fetch_add(1, Ordering::SeqCst);
    let mut _under_way = None;
    if let Some(asked) = lock(&shared.asked).as_mut() {
        let path = uri.path().strip_prefix("/api2/json").unwrap_or(uri.path());
        *asked.entry(path.to_owned()).or_default() += 1;
        _under_way = Some(UnderWay::enter(shared, path));
    }
    let behaviour = api.behaviour();
    let latency = *lock(&shared.latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if uri.path() == "/api2/json/access/ticket" && request.method() == axum::http::Method::POST {
        return log_in(shared, request).await;
    }
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| *v == *lock(&shared.authorization))
        || ticket_valid(shared, headers);
    if !authorized {
        tokio::time::sleep(behaviour.unauthorized_delay).await;
        return status(401);
    }
    let hung_up = shared
        .hang_ups
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if hung_up {
        let mut response = status(500);
        response.extensions_mut().insert(conn::HangUp);
        return response;
    }
    if let Some(code) = *lock(&shared.status_override) {
        return status(code);
    }
    let Some(path) = uri.path().strip_prefix("/api2/json") else {
        return status(404);
    };
    let accepts_gzip =
        crate::exporter::accepts_gzip(headers.get(axum::http::header::ACCEPT_ENCODING));
    // An answer for the path with its query (`/cluster/resources?type=vm`) comes first.
    let with_query = uri.query().map(|q| format!("{path}?{q}"));
    let overridden = {
        let overrides = lock(&shared.overrides);
        (with_query.as_ref().and_then(|k| overrides.get(k)))
            .or_else(|| overrides.get(path))
            .cloned()
    };
    let found = overridden
        .as_ref()
        .or_else(|| with_query.and_then(|k| shared.answers.0.get(&k)))
        .or_else(|| shared.answers.0.get(path));
    let size = found.map_or(0, Answer::size);
    let waiting = match found {
        Some(Answer::Held(waiting, _)) => *waiting,
        _ => Duration::ZERO,
    };
    // The receiving node's worker handles the request; one for another node is passed on to
    // that node's pveproxy, whose worker then does the work.
    let owner = path
        .strip_prefix("/nodes/")
        .and_then(|rest| rest.split('/').next())
        .filter(|owner| api.node().is_some_and(|local| local != *owner));
    match (behaviour.proxy_hop, owner) {
        (Some(hop), Some(owner)) => {
            shared.work(&shared.node_of(api), 0, Duration::ZERO).await;
            tokio::time::sleep(hop).await;
            let node = shared.node(owner);
            node.counters.proxied.fetch_add(1, Ordering::SeqCst);
            shared.work(&node, size, waiting).await;
        }
        _ => shared.work(&shared.node_of(api), size, waiting).await,
    }
    let response = match found {
        Some(Answer::FanOut(others, inner)) => {
            tokio::time::sleep(latency * u32::try_from(*others).unwrap_or(u32::MAX)).await;
            respond(inner, shared.product).await
        }
        Some(found) => respond(found, shared.product).await,
        // PVE answers 501 for a path it does not implement.
        None => status(501),
    };
    api.send(response, &behaviour, accepts_gzip).await
}

impl Shared {
    /// The node behind `api`, or a node of its own when the answers name none.
    pub(crate) fn node_of(&self, api: &SimApi) -> Arc<Node> {
        match api.node() {
            Some(name) => self.node(name),
            None => Arc::new(Node {
                workers: None,
                counters: api.endpoint.counters.clone(),
            }),
        }
    }
}

impl SimApi {
    /// The answer as it leaves the endpoint: gzipped when asked and allowed, at the link's
    /// pace, counted.
    async fn send(
        &self,
        response: Response,
        behaviour: &Behaviour,
        accepts_gzip: bool,
    ) -> Response {
        let (mut parts, body) = response.into_parts();
        let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
            return status(500);
        };
        let started = std::time::Instant::now();
        let body = match conn::maybe_gzip(behaviour, accepts_gzip, &body) {
            Some(compressed) => {
                self.counters().add_work(started.elapsed());
                parts.headers.insert(
                    axum::http::header::CONTENT_ENCODING,
                    axum::http::HeaderValue::from_static("gzip"),
                );
                compressed
            }
            None => body,
        };
        let bytes = body.len() as u64;
        self.counters()
            .bytes_sent
            .fetch_add(bytes, Ordering::SeqCst);
        if let Some(rate) = behaviour.bandwidth.filter(|r| *r > 0) {
            // The answers of one endpoint share its link: each waits for those before it.
            let on_the_wire = Duration::from_secs_f64(bytes as f64 / rate as f64);
            let done = {
                let mut free = lock(&self.endpoint.link_free);
                let start = (*free).max(std::time::Instant::now());
                *free = start + on_the_wire;
                *free
            };
            tokio::time::sleep_until(done.into()).await;
        }
        Response::from_parts(parts, axum::body::Body::from(body))
    }
}

/// `POST /access/ticket`: a ticket for the configured user and password, else 401.
/// A request under way while paths are counted ([`SimApi::peaks`]), until dropped.
struct UnderWay<'a> {
    shared: &'a Shared,
    path: String,
}

impl<'a> UnderWay<'a> {
    fn enter(shared: &'a Shared, path: &str) -> Self {
        let mut under_way = lock(&shared.under_way);
        let (now, most) = under_way.entry(path.to_owned()).or_default();
        *now += 1;
        *most = (*most).max(*now);
        UnderWay {
            shared,
            path: path.to_owned(),
        }
    }
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        if let Some((now, _)) = lock(&self.shared.under_way).get_mut(&self.path) {
            *now = now.saturating_sub(1);
        }
    }
}

async fn log_in(shared: &Shared, request: Request) -> Response {
    let Ok(body) = axum::body::to_bytes(request.into_body(), 64 << 10).await else {
        return status(400);
    };
    let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some((user, password, _)) = lock(&shared.login).clone() else {
        return status(401);
    };
    if sent["username"] != user.as_str() || sent["password"] != password.as_str() {
        return status(401);
    }
    let n = shared.logins.fetch_add(1, Ordering::SeqCst) + 1;
    let issued = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // PVE's shape: `PVE:USER:HEXTIME::SIGNATURE`.
    let ticket = format!("PVE:{user}:{issued:08X}::simsignature{n}");
    lock(&shared.tickets).insert(ticket.clone(), std::time::Instant::now());
    json_response(&json!({ "data": {
        "ticket": ticket, "username": user, "CSRFPreventionToken": format!("{issued:08X}:sim{n}"),
    }}))
}

/// Whether the request's `PVEAuthCookie` is a ticket handed out and not expired.
fn ticket_valid(shared: &Shared, headers: &axum::http::HeaderMap) -> bool {
    let Some(lifetime) = lock(&shared.login).as_ref().map(|l| l.2) else {
        return false;
    };
    let ticket = headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == shared.product.cookie_name()).then_some(value)
        });
    ticket.is_some_and(|t| {
        lock(&shared.tickets)
            .get(t)
            .is_some_and(|issued| issued.elapsed() < lifetime)
    })
}

fn json_response(body: &Value) -> Response {
    (
        [("content-type", "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

async fn respond(answer: &Answer, product: Product) -> Response {
    let mut answer = answer;
    loop {
        match answer {
            Answer::Delayed(pause, inner) => {
                tokio::time::sleep(*pause).await;
                answer = inner;
            }
            // The worker was held for it already.
            Answer::Held(_, inner) => answer = inner,
            _ => break,
        }
    }
    match answer {
        Answer::Json(body) => (
            [("content-type", "application/json;charset=UTF-8")],
            body.clone(),
        )
            .into_response(),
        Answer::Status(code) => status(*code),
        // A backup server writes a handler's error in the body, as plain text.
        Answer::Message(code, message) if product == Product::Pbs => {
            let code = StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_REQUEST);
            (code, message.clone()).into_response()
        }
        Answer::Message(code, message) => {
            let mut response = status(*code);
            if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(message.clone()) {
                response.extensions_mut().insert(reason);
            }
            response
        }
        Answer::Delayed(..) | Answer::FanOut(..) | Answer::Held(..) => status(500),
    }
}

fn status(code: u16) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [("content-type", "application/json;charset=UTF-8")],
        "{\"data\":null}",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_clusters_are_deterministic_and_sized() {
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let a = Answers::generate(3, 30, 7, now);
        let b = Answers::generate(3, 30, 7, now);
        let body = |x: &Answers| match x.0.get("/cluster/resources") {
            Some(Answer::Json(b)) => b.clone(),
            _ => panic!("no resources"),
        };
        assert_eq!(body(&a), body(&b));
        let rows: Value = serde_json::from_slice(&body(&a)).unwrap();
        let rows = rows["data"].as_array().unwrap();
        let count = |t: &str| rows.iter().filter(|r| r["type"] == t).count();
        assert_eq!(count("node"), 3);
        assert_eq!(count("qemu") + count("lxc"), 30);
        assert_eq!(count("storage"), 9);
        assert!(a.0.contains_key("/cluster/resources?type=vm"));
        assert!(a.0.contains_key("/nodes/pve01/qemu"));
    }

    #[test]
    fn faults() {
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let a = Answers::generate(2, 4, 1, now);
        let path = "/cluster/resources";
        let Some(Answer::Json(whole)) = a.0.get(path) else {
            panic!("no resources");
        };
        match a.fault(path, "truncated").unwrap() {
            Answer::Json(cut) => {
                assert_eq!(cut.len(), whole.len() / 2);
                assert!(serde_json::from_slice::<Value>(&cut).is_err());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(a.fault(path, "403").unwrap(), Answer::Status(403)));
        assert!(
            matches!(a.fault(path, "html").unwrap(), Answer::Json(b) if b.starts_with(b"<html>"))
        );
        assert!(matches!(
            a.fault(path, "slow:250").unwrap(),
            Answer::Delayed(d, _) if d == Duration::from_millis(250)
        ));
        assert!(a.fault(path, "slow:soon").is_err());
        assert!(a.fault(path, "broken").is_err());
    }

    #[test]
    fn offline_nodes_answer_595_and_list_only_their_status() {
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let a = Answers::generate_with_offline(3, 60, 7, now, 1, Duration::from_millis(5));
        let Some(Answer::Json(body)) = a.0.get("/cluster/resources") else {
            panic!("no resources");
        };
        let rows: Value = serde_json::from_slice(body).unwrap();
        let rows = rows["data"].as_array().unwrap();
        let down = rows.iter().find(|r| r["id"] == "node/pve03").unwrap();
        assert_eq!(
            down,
            &json!({"id": "node/pve03", "type": "node", "node": "pve03", "status": "offline"})
        );
        assert!(
            rows.iter()
                .filter(|r| r["node"] == "pve03" && r["type"] == "qemu")
                .all(|r| r["status"] == "unknown")
        );
        assert!(matches!(
            a.0.get("/nodes/pve03/disks/list"),
            Some(Answer::Delayed(_, inner)) if matches!(**inner, Answer::Status(595))
        ));
    }
}
