//! `proxmox-exporter record` against the simulated PVE: a complete, anonymised scenario that
//! the exporter then serves exactly as it would the live cluster.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use proxmox_exporter::sim::{Answer, Answers};
use support::{FakeEndpoint, TOKEN_ID, TOKEN_SECRET};

fn files(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                found.push((name, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_an_anonymised_scenario_that_serves_the_same_metrics() {
    let answers = Answers::generate(4, 40, 3, SystemTime::now());
    let live = FakeEndpoint::serve(answers).await;
    live.api
        .set_answer("/nodes/pve02/disks/list", Answer::Status(500));
    let out = std::env::temp_dir().join(format!("pe-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let endpoint = live.url.to_string();
    let recorded = Command::new(env!("CARGO_BIN_EXE_proxmox-exporter"))
        .args(["--proxmox-endpoints", &endpoint])
        .args([
            "--proxmox-token-id",
            TOKEN_ID,
            "--proxmox-token",
            TOKEN_SECRET,
        ])
        .args(["record", "--out", &out.display().to_string()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );

    let written = files(&out);
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    let snapshots = names
        .iter()
        .filter(|n| n.ends_with("/snapshot.json"))
        .count();
    assert!(snapshots > 20, "{names:?}");
    let agents = names
        .iter()
        .filter(|n| n.contains("/agent/get-fsinfo."))
        .count();
    assert!(agents > 10, "{names:?}");
    // A VM without an agent: PVE's message kept, as the simulator gave it.
    let absent = written
        .iter()
        .find(|(n, _)| n.ends_with("/agent/get-fsinfo.status"))
        .map(|(_, text)| text.as_str());
    assert!(
        absent.is_some_and(|t| t.starts_with("500 ") && t.contains("QEMU guest agent")),
        "{absent:?}"
    );
    let disks = names.iter().filter(|n| n.contains("/disks/smart?")).count();
    assert!(disks > 5, "{names:?}");
    // The inventory; cluster, HA and Ceph status, guests without backup, tasks; ten answers
    // per node and its backup storage; one per guest, one per running VM's agent, one per
    // disk.
    assert_eq!(
        names.len(),
        6 + 11 * 4 + snapshots + agents + disks,
        "{names:?}"
    );
    assert!(names.contains(&"cluster/resources.json"));
    assert!(names.contains(&"cluster/status.json"));
    assert!(
        names.contains(&"nodes/node2/disks/list.status"),
        "{names:?}"
    );
    for (name, text) in &written {
        for identifying in [
            "pve01",
            "pve02",
            "sim.lan",
            "SIM00",
            "vm-1",
            "ct-1",
            "pve2c-",
            "SIMSERVERID",
            "\"sim\"",
            "tenant-a",
            TOKEN_SECRET,
        ] {
            assert!(!text.contains(identifying), "{identifying} in {name}");
        }
    }

    // The recording, served by the simulator, gives the live cluster's metrics with the
    // stand-in names: the same count of every family.
    let replay = FakeEndpoint::scenario(&out).await;
    let all = support::all_collectors;
    let (live_url, _) =
        support::exporter_with(vec![live.url.clone()], Duration::from_secs(29), all()).await;
    let (replay_url, _) =
        support::exporter_with(vec![replay.url.clone()], Duration::from_secs(29), all()).await;
    let shape = |text: String| {
        let mut families: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("proxmox_exporter_"))
            .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
            .collect();
        families.sort();
        families
    };
    let live_metrics = reqwest::get(&live_url).await.unwrap().text().await.unwrap();
    let replay_metrics = reqwest::get(&replay_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(replay_metrics.contains("proxmox_node_up{name=\"node1\",type=\"node\"} 1"));
    assert!(!replay_metrics.contains("pve0"));
    assert_eq!(shape(live_metrics), shape(replay_metrics));
}
