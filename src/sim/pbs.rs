//! A simulated Proxmox Backup Server's answers ([`Answers::generate_pbs`]), in PBS 3.x
//! shapes: datastores with namespaces and backup groups, one nearly full with an estimated
//! full date, one in offline maintenance; a failed garbage collection, a failed verify job, a
//! sync job that never ran; the host's status, subscription, version and failed tasks.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Answer, Answers, json_answer};

const DAY: i64 = 86_400;
const TB: i64 = 1 << 40;

/// The namespaces of every datastore but the first: the root, `prod` and `prod/db`.
const NAMESPACES: [&str; 3] = ["", "prod", "prod/db"];

impl Answers {
    /// A backup server with `datastores` datastores in use (at least 2) and one in offline
    /// maintenance, each in-use datastore holding `groups` backup groups spread over its
    /// namespaces; the same for the same `seed`. Dates count from `now`.
    pub fn generate_pbs(datastores: usize, groups: usize, seed: u64, now: SystemTime) -> Answers {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut rng = fastrand::Rng::with_seed(seed);
        let stores: Vec<String> = (1..=datastores.max(2))
            .map(|i| format!("store{i}"))
            .collect();
        let mut answers = HashMap::new();
        let mut usage = Vec::new();
        let mut listed = Vec::new();
        let mut gc = Vec::new();
        let mut verify = Vec::new();
        let mut prune = Vec::new();
        for (i, store) in stores.iter().enumerate() {
            let total = (4 + rng.i64(0..12)) * TB;
            // The first datastore is 90 % full and growing: full within days.
            let (used, full) = if i == 0 {
                (total / 10 * 9, now + 5 * DAY)
            } else {
                (total * rng.i64(10..60) / 100, 0)
            };
            let index_bytes = used * rng.i64(5..30);
            usage.push(json!({
                "store": store, "total": total, "used": used, "avail": total - used,
                "history": [0.84, 0.86, null, 0.88, 0.9],
                "history-start": now - 30 * DAY, "history-delta": DAY,
                "estimated-full-date": full,
                "gc-status": {
                    "upid": format!("UPID:pbs1:00001A2B:0003C4D5:00000002:{:08X}:garbage_collection:{store}:root@pam:", now - DAY),
                    "index-file-count": groups * 3, "index-data-bytes": index_bytes,
                    "disk-bytes": used, "disk-chunks": used / (4 << 20),
                    "removed-bytes": used / 50, "removed-chunks": used / 50 / (4 << 20),
                    "pending-bytes": 0, "pending-chunks": 0, "removed-bad": 0, "still-bad": 0,
                },
            }));
            listed.push(if i == 0 {
                json!({ "store": store, "comment": "daily backups" })
            } else {
                json!({ "store": store })
            });
            // The second datastore's garbage collection failed.
            let gc_state = if i == 1 {
                "unable to acquire lock"
            } else {
                "ok"
            };
            gc.push(json!({
                "store": store, "schedule": "daily", "next-run": now + DAY / 2,
                "last-run-endtime": now - DAY / 2, "last-run-state": gc_state,
                "duration": rng.i64(60..4000),
                "upid": format!("UPID:pbs1:00001A2B:0003C4D5:00000002:{:08X}:garbage_collection:{store}:root@pam:", now - DAY),
            }));
            // The second datastore's verify job failed.
            let verify_state = if i == 1 {
                "verification failed - please check the log for details"
            } else {
                "ok"
            };
            verify.push(json!({
                "id": format!("v-{store}"), "store": store, "schedule": "daily",
                "next-run": now + DAY / 3, "last-run-state": verify_state,
                "last-run-upid": format!("UPID:pbs1:0000A1:0000B2:00000003:{:08X}:verificationjob:{store}:root@pam:", now - DAY),
                "last-run-endtime": now - DAY / 3,
            }));
            prune.push(json!({
                "id": format!("p-{store}"), "store": store, "schedule": "daily", "keep-daily": 7,
                "next-run": now + DAY / 4, "last-run-state": "ok", "last-run-endtime": now - DAY / 4,
            }));
            let namespaces: &[&str] = if i == 0 {
                &NAMESPACES[..1]
            } else {
                &NAMESPACES
            };
            let ns_list: Vec<Value> = namespaces.iter().map(|ns| json!({ "ns": ns })).collect();
            answers.insert(
                format!("/admin/datastore/{store}/namespace"),
                json_answer(Value::Array(ns_list)),
            );
            for (n, ns) in namespaces.iter().enumerate() {
                let count = groups / namespaces.len() + usize::from(n < groups % namespaces.len());
                let list: Vec<Value> = (0..count)
                    .map(|g| group(&mut rng, now, i, n * 100_000 + g))
                    .collect();
                let path = format!("/admin/datastore/{store}/groups");
                let key = if ns.is_empty() {
                    path
                } else {
                    let ns: String = url::form_urlencoded::byte_serialize(ns.as_bytes()).collect();
                    format!("{path}?ns={ns}")
                };
                answers.insert(key, json_answer(Value::Array(list)));
            }
        }
        // A datastore in offline maintenance: listed, its usage an error, never opened.
        let offline = "offsite";
        usage.push(json!({ "store": offline, "error": "offline maintenance mode: disk swap" }));
        listed
            .push(json!({ "store": offline, "maintenance": "type=offline,message=\"disk swap\"" }));
        answers.insert(
            format!("/admin/datastore/{offline}/namespace"),
            Answer::Message(400, "offline maintenance mode: disk swap".into()),
        );
        let sync = json!([{
            "id": "s-offsite", "store": stores[1], "remote": "pbs-remote", "remote-store": "main",
            "schedule": "hourly", "next-run": now + 3600, "sync-direction": "pull",
        }]);
        let tasks = json!([
            {
                "upid": "UPID:pbs1:00002000:00030000:00000004:00000000:garbage_collection:store2:root@pam:",
                "node": "pbs1", "starttime": now - DAY / 2 - 2, "endtime": now - DAY / 2,
                "worker_type": "garbage_collection", "worker_id": stores[1],
                "user": "root@pam", "status": "unable to acquire lock",
            },
            {
                "upid": "UPID:pbs1:00002001:00030001:00000005:00000000:backup:store1:root@pam:",
                "node": "pbs1", "starttime": now - 3600, "endtime": now - 3000,
                "worker_type": "backup", "worker_id": "store1:vm/100",
                "user": "root@pam", "status": "WARNINGS: 1",
            },
        ]);
        for (path, data) in [
            ("/status/datastore-usage", Value::Array(usage)),
            ("/admin/datastore", Value::Array(listed)),
            ("/admin/gc", Value::Array(gc)),
            ("/admin/verify", Value::Array(verify)),
            ("/admin/prune", Value::Array(prune)),
            ("/admin/sync", sync),
            ("/nodes/localhost/tasks", tasks),
            ("/nodes/localhost/status", host_status()),
            ("/nodes/localhost/subscription", subscription()),
            (
                "/version",
                json!({ "version": "3.4", "release": "1", "repoid": "0c0f5a3e" }),
            ),
        ] {
            answers.insert(path.to_owned(), json_answer(data));
        }
        Answers(answers)
    }
}

/// A backup group: VMs, containers and a few hosts, last backed up within the last day (the
/// first datastore's fifth group two days ago: overdue).
fn group(rng: &mut fastrand::Rng, now: i64, store: usize, n: usize) -> Value {
    let (kind, id) = match n % 10 {
        9 => ("host", format!("host{n}")),
        5..=8 => ("ct", (200 + n).to_string()),
        _ => ("vm", (100 + n).to_string()),
    };
    let age = if store == 0 && n == 4 {
        2 * DAY
    } else {
        rng.i64(600..DAY)
    };
    json!({
        "backup-type": kind, "backup-id": id, "last-backup": now - age,
        "backup-count": rng.u32(1..40), "owner": "root@pam",
        "comment": format!("guest{n}"),
        "files": ["index.json.blob", "drive-scsi0.img.fidx"],
    })
}

fn host_status() -> Value {
    json!({
        "memory": { "total": 67_275_878_400_i64, "used": 20_184_264_704_i64, "free": 47_091_613_696_i64 },
        "root": { "total": 100_861_726_720_i64, "used": 5_601_427_456_i64, "avail": 95_260_299_264_i64 },
        "swap": { "total": 8_589_930_496_i64, "used": 0, "free": 8_589_930_496_i64 },
        "uptime": 1_209_600, "loadavg": [0.42, 0.38, 0.35], "cpu": 0.031, "wait": 0.002,
        "kversion": "Linux 6.8.12-4-pve #1 SMP PREEMPT_DYNAMIC",
        "cpuinfo": { "model": "AMD EPYC 7302P 16-Core Processor", "sockets": 1, "cpus": 32 },
    })
}

fn subscription() -> Value {
    json!({
        "status": "active", "serverid": "0123456789ABCDEF0123456789ABCDEF",
        "key": "pbsc-0123456789", "nextduedate": "2027-03-01",
        "productname": "Proxmox Backup Server Community Subscription 1 CPU/year",
    })
}
