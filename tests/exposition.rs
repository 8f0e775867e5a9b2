//! The whole exposition for each fixture scenario in `tests/fixtures/<scenario>/`, pinned by an
//! insta snapshot in `snapshots/`. Each goes the real way: a simulated PVE over HTTP, the
//! dispatcher, the cache and the server.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::FakeEndpoint;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Scrapes the scenario once with the default collectors, or all of them with `all`; returns
/// the classic text exposition with the parts that differ from run to run or release to
/// release (the simulator's port, durations, the version) masked, and the API requests it
/// cost.
async fn scrape(scenario: &str, all: bool) -> (String, u64) {
    let api = FakeEndpoint::scenario(&fixtures().join(scenario)).await;
    let collectors = if all {
        support::all_collectors()
    } else {
        proxmox_exporter::collectors::defaults()
    };
    let (url, _) =
        support::exporter_with(vec![api.url.clone()], Duration::from_secs(29), collectors).await;
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    let port = api.url.port().unwrap().to_string();
    let masked = body
        .lines()
        .map(|line| {
            if line.starts_with("proxmox_exporter_collector_duration_seconds{") {
                let (series, _) = line.rsplit_once(' ').unwrap();
                format!("{series} [duration]")
            } else {
                line.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:[port]")
                    .replace(
                        concat!("version=\"", env!("CARGO_PKG_VERSION"), "\""),
                        "version=\"[version]\"",
                    )
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    (masked + "\n", api.api.requests())
}

fn rows(scenario: &str) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(fixtures().join(scenario).join("cluster/resources.json")).unwrap();
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    rows["data"].as_array().unwrap().clone()
}

/// The `node` values of the online nodes' rows.
fn online(rows: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    rows.iter()
        .filter(|r| r["type"] == "node" && r["status"] == "online")
        .map(|r| &r["node"])
        .collect()
}

fn online_nodes(scenario: &str) -> u64 {
    online(&rows(scenario)).len() as u64
}

/// Guests (templates aside) on online nodes: the ones whose snapshots are asked for.
fn snapshot_guests(scenario: &str) -> u64 {
    let rows = rows(scenario);
    let online = online(&rows);
    let template = |r: &serde_json::Value| matches!(r["template"].as_u64(), Some(1));
    rows.iter()
        .filter(|r| (r["type"] == "qemu" || r["type"] == "lxc") && !template(r))
        .filter(|r| online.contains(&&r["node"]))
        .count() as u64
}

/// Running VMs (templates aside) on online nodes: the ones whose guest agent is asked.
/// The disks `disks/list` names on the online nodes (SMART is asked of each).
fn disks(scenario: &str) -> u64 {
    let dir = fixtures().join(scenario);
    let rows = rows(scenario);
    online(&rows)
        .iter()
        .filter_map(|node| {
            let list = dir
                .join("nodes")
                .join(node.as_str()?)
                .join("disks/list.json");
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(list).ok()?).ok()
        })
        .map(|list| support::listed_disks(&list))
        .sum()
}

fn running_vms(scenario: &str) -> u64 {
    let rows = rows(scenario);
    let online = online(&rows);
    let template = |r: &serde_json::Value| matches!(r["template"].as_u64(), Some(1));
    rows.iter()
        .filter(|r| r["type"] == "qemu" && !template(r) && r["status"] == "running")
        .filter(|r| online.contains(&&r["node"]))
        .count() as u64
}

/// Storages holding backups on online nodes, a shared one once.
fn backup_storages(scenario: &str) -> u64 {
    let rows = rows(scenario);
    let online = online(&rows);
    let mut shared = std::collections::BTreeSet::new();
    rows.iter()
        .filter(|r| r["type"] == "storage" && online.contains(&&r["node"]))
        .filter(|r| {
            r["content"]
                .as_str()
                .is_some_and(|c| c.split(',').any(|t| t == "backup"))
        })
        .filter(|r| {
            let is_shared = r["shared"] == 1 || r["shared"] == true;
            !is_shared || shared.insert(r["storage"].to_string())
        })
        .count() as u64
}

fn every_collectors_cost(n: u64, g: u64, s: u64, v: u64, d: u64) -> u64 {
    use proxmox_exporter::collectors::{Collector, REGISTRY, find};
    let cost = |c: &dyn Collector| support::declared_requests(c.cost(), (n, g, s, v, d));
    // A collector reading another's answers (every one is on) adds only what it asks beyond.
    REGISTRY
        .iter()
        .map(|c| cost(*c) - c.shares().and_then(find).map_or(0, cost))
        .sum()
}

fn snapshot(name: &str, exposition: &str) {
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, exposition);
    });
}

macro_rules! scenario {
    ($test:ident, $dir:literal) => {
        mod $test {
            use super::*;

            #[tokio::test]
            async fn default_collectors() {
                let (exposition, requests) = scrape($dir, false).await;
                // One cluster-wide request, then two per online node: never one per guest.
                assert_eq!(requests, 1 + 2 * online_nodes($dir), "API requests");
                snapshot($dir, &exposition);
            }

            /// Every collector on: the README's request counts add up.
            #[tokio::test]
            async fn every_collector() {
                let (exposition, requests) = scrape($dir, true).await;
                // The inventory, then what each collector declares (and the README says).
                let (n, g, s) = (
                    online_nodes($dir),
                    snapshot_guests($dir),
                    backup_storages($dir),
                );
                let (v, d) = (running_vms($dir), disks($dir));
                let expected = 1 + every_collectors_cost(n, g, s, v, d);
                assert_eq!(requests, expected, "API requests with every collector");
                assert!(!exposition.contains("_success{collector=\"snapshots\"} 0"));
                snapshot(&format!("all-{}", $dir), &exposition);
            }
        }
    };
}

scenario!(three_node_cluster, "three-node");
scenario!(standalone_node, "standalone");
scenario!(cluster_with_an_offline_node, "offline-node");
scenario!(pve7_numbers_as_strings, "pve7-strings");
scenario!(pve8_with_ceph, "pve8-ceph");
scenario!(pve9_additions, "pve9");
scenario!(templates_are_not_guests, "templates");
scenario!(empty_cluster, "empty");
scenario!(every_quirk, "quirks");
scenario!(backups_on_pbs_and_nfs, "backups");

#[test]
fn every_fixture_scenario_has_a_snapshot_test() {
    let source = std::fs::read_to_string(file!()).unwrap();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            source.contains(&format!("\"{name}\")")),
            "tests/fixtures/{name} has no scenario!(…) line in {}",
            file!()
        );
    }
}
