//! The collector registry: what each collector costs the cluster per window (the README's
//! table, counted on the simulator), refresh across windows, a failing collector costing only
//! its own families, and the operations each collector declares.

mod support;

use std::time::{Duration, UNIX_EPOCH};

use proxmox_exporter::collectors::REGISTRY;
use proxmox_exporter::pve::operations::parse_operations;
use proxmox_exporter::sim::{Answer, Answers};
use serde_json::Value;
use support::{FakeEndpoint, all_collectors, exporter_with, only};

/// A generated cluster: 5 nodes, the last offline, 60 guests.
fn cluster() -> Answers {
    let now = UNIX_EPOCH + Duration::from_secs(1_780_272_000);
    Answers::generate_with_offline(5, 60, 11, now, 1, Duration::from_millis(20))
}

/// (online nodes, guests whose snapshots are asked: templates aside, on online nodes,
/// storages holding backups on online nodes, a shared one once).
fn sizes(answers: &Answers) -> (u64, u64, u64) {
    let (rows, online) = rows_and_online(answers);
    let online: Vec<&Value> = online.iter().collect();
    let guests = rows
        .iter()
        .filter(|r| r["type"] == "qemu" || r["type"] == "lxc")
        .filter(|r| r["template"] != 1 && online.contains(&&r["node"]))
        .count();
    let mut shared = std::collections::BTreeSet::new();
    let stores = rows
        .iter()
        .filter(|r| r["type"] == "storage" && online.contains(&&r["node"]))
        .filter(|r| {
            r["content"]
                .as_str()
                .is_some_and(|c| c.split(',').any(|t| t == "backup"))
        })
        .filter(|r| r["shared"] != 1 || shared.insert(r["storage"].to_string()))
        .count();
    (online.len() as u64, guests as u64, stores as u64)
}

/// The inventory's rows, and the names of its online nodes.
fn rows_and_online(answers: &Answers) -> (Vec<Value>, Vec<Value>) {
    let Some(Answer::Json(body)) = answers.0.get("/cluster/resources") else {
        panic!("no resources");
    };
    let rows: Value = serde_json::from_slice(body).unwrap();
    let rows = rows["data"].as_array().unwrap().clone();
    let online = rows
        .iter()
        .filter(|r| r["type"] == "node" && r["status"] == "online")
        .map(|r| r["node"].clone())
        .collect();
    (rows, online)
}

/// The disks `disks/list` names on the online nodes: the ones whose SMART data is asked.
fn disks(answers: &Answers) -> u64 {
    let (_, online) = rows_and_online(answers);
    online
        .iter()
        .filter_map(|node| {
            match answers
                .0
                .get(&format!("/nodes/{}/disks/list", node.as_str()?))
            {
                Some(Answer::Json(body)) => serde_json::from_slice::<Value>(body).ok(),
                _ => None,
            }
        })
        .map(|list| support::listed_disks(&list))
        .sum()
}

/// Running VMs (templates aside) on online nodes: the ones whose guest agent is asked.
fn running_vms(answers: &Answers) -> u64 {
    let (rows, online) = rows_and_online(answers);
    rows.iter()
        .filter(|r| r["type"] == "qemu" && r["template"] != 1 && r["status"] == "running")
        .filter(|r| online.contains(&r["node"]))
        .count() as u64
}

async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

fn success(exposition: &str, collector: &str) -> bool {
    exposition.contains(&format!(
        "proxmox_exporter_collector_success{{collector=\"{collector}\"}} 1"
    ))
}

/// Requests per window besides the one `/cluster/resources`, for N online nodes, G guests and
/// S backup storages, V running VMs and D disks, as the README's collectors table gives them
/// (`0 (the inventory)`, `N`, `1`, `G, every 5 min`, `2 + S, every 5 min`, `D, every hour`).
fn cost(collector: &str, (n, g, s, v, d): (u64, u64, u64, u64, u64)) -> u64 {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with(&format!("| `{collector}` |")))
        .unwrap_or_else(|| panic!("no README row for collector {collector}"));
    let cell = row.split('|').nth(3).unwrap().trim();
    let formula = cell.split([',', '(']).next().unwrap();
    formula
        .split('+')
        .map(|term| match term.trim() {
            "N" => n,
            "G" => g,
            "S" => s,
            "V" => v,
            "D" => d,
            "2N" => 2 * n,
            number => number
                .parse()
                .unwrap_or_else(|_| panic!("README cost of {collector}: `{cell}`")),
        })
        .sum()
}

#[tokio::test]
async fn each_collector_costs_what_the_readme_says() {
    let answers = cluster();
    let (n, g, s) = sizes(&answers);
    let v = running_vms(&answers);
    assert_eq!(n, 4);
    assert!(g > 40, "{g} guests");
    assert!(s >= n, "{s} backup storages");
    assert!(v > 10 && v < g, "{v} running VMs");
    costs_as_the_readme_says(&answers).await;
}

/// The same count on the fixtures in the shapes of PVE 7.4, 8.4 and 9.1.
#[tokio::test]
async fn each_collector_costs_what_the_readme_says_on_each_pve_version() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for version in ["pve7-strings", "pve8-ceph", "pve9"] {
        let answers = Answers::from_dir(&fixtures.join(version)).unwrap();
        let (n, g, _) = sizes(&answers);
        assert!(n > 0 && g > 0 && running_vms(&answers) > 0, "{version}");
        costs_as_the_readme_says(&answers).await;
    }
}

/// Each collector alone asks the inventory and its README cost on `answers`, the second
/// scrape of a window nothing; all together, the sum.
async fn costs_as_the_readme_says(answers: &Answers) {
    let (n, g, s) = sizes(answers);
    let v = running_vms(answers);
    let d = disks(answers);
    for collector in REGISTRY {
        let name = collector.name();
        let api = FakeEndpoint::serve(answers.clone()).await;
        let (url, _) = exporter_with(
            vec![api.url.clone()],
            Duration::from_secs(60),
            only(name, None),
        )
        .await;
        let text = scrape(&url).await;
        assert!(success(&text, name), "{name}:\n{text}");
        // The collector's own declaration agrees with the README.
        let declared = support::declared_requests(collector.cost(), (n, g, s, v, d));
        assert_eq!(
            declared,
            cost(name, (n, g, s, v, d)),
            "declared cost of {name}"
        );
        assert_eq!(
            api.api.requests(),
            1 + cost(name, (n, g, s, v, d)),
            "requests of {name}"
        );
        // A second scrape in the window costs nothing.
        scrape(&url).await;
        assert_eq!(
            api.api.requests(),
            1 + cost(name, (n, g, s, v, d)),
            "{name}, cached"
        );
    }
    // All together: the sum.
    let api = FakeEndpoint::serve(answers.clone()).await;
    let (url, _) = exporter_with(
        vec![api.url.clone()],
        Duration::from_secs(60),
        all_collectors(),
    )
    .await;
    scrape(&url).await;
    // A collector reading another's answers (`disks`, `smart`: `node_disks`' disk lists)
    // adds only what it asks beyond them.
    let sizes = (n, g, s, v, d);
    let total: u64 = (REGISTRY.iter())
        .map(|c| cost(c.name(), sizes) - c.shares().map_or(0, |other| cost(other, sizes)))
        .sum();
    assert_eq!(api.api.requests(), 1 + total);
}

#[tokio::test]
async fn answers_are_asked_again_only_when_their_refresh_is_over() {
    let answers = cluster();
    let (n, g, _) = sizes(&answers);
    let api = FakeEndpoint::serve(answers).await;
    // No cache window: every scrape is a new collection.
    let mut collectors = only("snapshots", None); // 5 minutes
    // Refreshes are durations: this test waits one out. 1 s leaves room for two scrapes on
    // a loaded machine before it ends.
    collectors.extend(only("subscription", Some(Duration::from_secs(1))));
    collectors.extend(only("node", None)); // every window
    let (url, _) = exporter_with(vec![api.url.clone()], Duration::ZERO, collectors).await;
    let first = scrape(&url).await;
    assert_eq!(api.api.requests(), 1 + g + n + n);
    let second = scrape(&url).await;
    // Only the inventory and the node collector's requests.
    assert_eq!(api.api.requests(), (1 + g + n + n) + (1 + n));
    // Reused answers still show, with when they were fetched.
    for text in [&first, &second] {
        assert!(text.contains("proxmox_guest_snapshots{"), "{text}");
        assert!(text.contains("proxmox_node_subscription_active{"), "{text}");
        assert!(
            text.contains(
                "proxmox_exporter_collector_last_success_timestamp_seconds{collector=\"snapshots\"} 1780272000"
            ),
            "{text}"
        );
    }
    // The node collector's answers last one window: no timestamp for it.
    assert!(!second.contains("last_success_timestamp_seconds{collector=\"node\"}"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    scrape(&url).await;
    // The subscription refresh is over: asked again; snapshots are not.
    assert_eq!(api.api.requests(), (1 + g + n + n) + (1 + n) + (1 + n + n));
}

#[tokio::test]
async fn a_failed_collector_is_asked_again_in_the_next_window() {
    let answers = cluster();
    let (_, g, _) = sizes(&answers);
    let mut paths: Vec<&String> = answers
        .0
        .keys()
        .filter(|p| p.ends_with("/snapshot"))
        .collect();
    paths.sort();
    let broken = paths[0].clone();
    let api = FakeEndpoint::serve(answers.clone()).await;
    let (url, _) = exporter_with(
        vec![api.url.clone()],
        Duration::ZERO,
        only("snapshots", None),
    )
    .await;
    api.api.set_answer(&broken, Answer::Status(500));
    let text = scrape(&url).await;
    assert!(!success(&text, "snapshots"));
    api.api.clear_answers();
    // The next window asks the failed guest again, and only it; after the first sweep a
    // scrape does not wait for the sweep, so its answer shows in the scrape after.
    let before = api.api.requests();
    let mut scrapes = 0u64;
    let text = loop {
        let text = scrape(&url).await;
        scrapes += 1;
        if success(&text, "snapshots") || scrapes == 100 {
            break text;
        }
        // Only waiting shows when the answer has come.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(success(&text, "snapshots"), "{text}");
    assert!(
        scrapes >= 2,
        "the retry's answer showed in the scrape that asked it"
    );
    // The inventory per scrape, and the one guest.
    assert_eq!(api.api.requests() - before, scrapes + 1);
    assert!(g > 1);
}

#[tokio::test]
async fn one_failing_collector_leaves_the_others_intact() {
    let api = FakeEndpoint::serve(cluster()).await;
    let (url, _) = exporter_with(vec![api.url.clone()], Duration::ZERO, all_collectors()).await;
    let healthy = scrape(&url).await;
    let families = |text: &str| -> Vec<String> {
        let mut names: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
            .collect();
        names.dedup();
        names
    };
    for collector in REGISTRY {
        assert!(success(&healthy, collector.name()), "{}", collector.name());
    }

    // The cluster-wide status breaks: only the cluster collector's families go.
    api.api.set_answer("/cluster/status", Answer::Status(500));
    let broken = scrape(&url).await;
    assert!(!success(&broken, "cluster"));
    let lost: Vec<String> = families(&healthy)
        .into_iter()
        .filter(|f| !families(&broken).contains(f))
        .collect();
    assert_eq!(
        lost,
        [
            "proxmox_cluster_nodes",
            "proxmox_cluster_nodes_online",
            "proxmox_cluster_quorate",
            "proxmox_cluster_info"
        ]
    );
    for collector in REGISTRY.iter().filter(|c| c.name() != "cluster") {
        assert!(success(&broken, collector.name()), "{}", collector.name());
    }
    api.api.clear_answers();

    // One node's status answers garbage: the other nodes' status samples stay.
    api.api.set_answer(
        "/nodes/pve02/status",
        Answer::Json(bytes::Bytes::from_static(b"<html>502</html>")),
    );
    let broken = scrape(&url).await;
    assert!(!success(&broken, "node"));
    assert!(broken.contains("proxmox_node_load1{node=\"pve01\"}"));
    assert!(!broken.contains("proxmox_node_load1{node=\"pve02\"}"));
    assert!(success(&broken, "subscription"));
}

#[tokio::test]
async fn offline_nodes_and_their_guests_are_not_asked() {
    let answers = cluster();
    let api = FakeEndpoint::serve(answers).await;
    let (url, _) = exporter_with(vec![api.url.clone()], Duration::ZERO, all_collectors()).await;
    let text = scrape(&url).await;
    // pve05 is offline: none of its paths was asked (they would answer 595 after 20 ms).
    assert!(!text.contains("status=\"595\""), "{text}");
    assert!(!text.contains("proxmox_node_load1{node=\"pve05\"}"));
    assert!(text.contains("proxmox_node_up{name=\"pve05\",type=\"node\"} 0"));
    for collector in REGISTRY {
        assert!(success(&text, collector.name()), "{}", collector.name());
    }
}

#[test]
fn the_operations_list_and_the_collectors_agree() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/operations.txt"),
    )
    .unwrap();
    let listed: Vec<String> = parse_operations(&text, "operations.txt")
        .unwrap()
        .iter()
        .map(|op| op.to_string())
        .collect();
    // The inventory, and the dispatcher's password login.
    let mut claimed: Vec<String> = vec![
        "GET /cluster/resources".into(),
        "POST /access/ticket".into(),
    ];
    let parts = proxmox_exporter::compat::families::PARTS
        .iter()
        .map(|p| *p as &dyn proxmox_exporter::collectors::Collector);
    for collector in REGISTRY.iter().copied().chain(parts) {
        for op in collector.operations() {
            assert!(
                listed.contains(&(*op).to_owned()),
                "collector {} calls `{op}`, which schema/operations.txt does not list",
                collector.name()
            );
            claimed.push((*op).to_owned());
        }
    }
    for op in &listed {
        assert!(
            claimed.contains(op),
            "no collector calls `{op}`: drop it from operations.txt"
        );
    }
}

#[tokio::test]
async fn pve_7_4_without_the_pull_metrics_endpoint_still_has_node_figures() {
    // PVE 7.4 has no /cluster/metrics/export (the simulator answers 501 for it, as PVE does
    // for unknown paths); the node collector asks each node's status, which 7.4 has.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pve7-strings");
    let api = FakeEndpoint::scenario(&dir).await;
    let (url, _) = exporter_with(vec![api.url.clone()], Duration::ZERO, only("node", None)).await;
    let text = scrape(&url).await;
    assert!(success(&text, "node"), "{text}");
    for node in ["old1", "old2"] {
        for family in [
            "proxmox_node_load1",
            "proxmox_node_memory_used_bytes",
            "proxmox_node_uptime_seconds",
        ] {
            assert!(
                text.contains(&format!("{family}{{node=\"{node}\"}}")),
                "{family} {node}"
            );
        }
        assert!(text.contains(&format!(
            "proxmox_node_version{{node=\"{node}\",version=\"pve-manager/7.4-17/513c62be\"}} 1"
        )));
    }
    // PVE 7.4 sends no available memory: no series rather than a made-up one.
    assert!(!text.contains("proxmox_node_memory_available_bytes{"));
    assert!(!text.contains("status=\"501\""), "{text}");
    assert_eq!(api.api.requests(), 1 + 2);
}

#[tokio::test]
async fn no_ceph_is_not_a_failure_but_a_broken_ceph_is() {
    let api = FakeEndpoint::serve(cluster()).await;
    let (url, _) = exporter_with(vec![api.url.clone()], Duration::ZERO, only("ceph", None)).await;
    let healthy = scrape(&url).await;
    // One node of the generated cluster is down: Ceph warns.
    assert!(
        healthy.contains("proxmox_ceph_health_status 1"),
        "{healthy}"
    );
    for (reason, fails) in [
        ("binary not installed: /usr/bin/ceph-mon", false),
        ("pveceph configuration not initialized", false),
        ("rados_connect failed - No such file or directory", true),
    ] {
        api.api.set_answer(
            "/cluster/ceph/status",
            Answer::Message(500, reason.to_owned()),
        );
        let before = api.api.requests();
        let text = scrape(&url).await;
        assert_eq!(success(&text, "ceph"), !fails, "{reason}:\n{text}");
        assert!(!text.contains("proxmox_ceph_"), "{reason}");
        // PVE's own answer: not asked again elsewhere, the endpoint not held against.
        assert_eq!(api.api.requests() - before, 2, "{reason}");
    }
    // A 500 without PVE's message is the endpoint's failure, as before.
    api.api
        .set_answer("/cluster/ceph/status", Answer::Status(500));
    assert!(!success(&scrape(&url).await, "ceph"));
}

/// An exporter with only `node_disks` over `answers`, scraped once (successfully): the
/// endpoint, the scrape URL and that first exposition.
async fn node_disks_scraped_once(answers: &Answers) -> (FakeEndpoint, String, String) {
    let api = FakeEndpoint::serve(answers.clone()).await;
    let (url, _) = exporter_with(
        vec![api.url.clone()],
        Duration::ZERO,
        only("node_disks", None),
    )
    .await;
    let first = scrape(&url).await;
    assert!(success(&first, "node_disks"), "{first}");
    (api, url, first)
}

/// The `node_disks` collector's series.
fn disk_lines(exposition: &str) -> Vec<&str> {
    exposition
        .lines()
        .filter(|l| l.starts_with("proxmox_node_disk"))
        .collect()
}

/// `/cluster/resources` as generated, and the same with `node` offline.
fn resources_with_offline(answers: &Answers, node: &str) -> (Answer, Answer) {
    let Some(Answer::Json(body)) = answers.0.get("/cluster/resources") else {
        panic!("no resources");
    };
    let mut rows: Value = serde_json::from_slice(body).unwrap();
    for row in rows["data"].as_array_mut().unwrap() {
        if row["type"] == "node" && row["node"] == node {
            row["status"] = "offline".into();
        }
    }
    let changed = Answer::Json(serde_json::to_vec(&rows).unwrap().into());
    (Answer::Json(body.clone()), changed)
}

/// From the second collection on, the per-node requests go out on the last collection's
/// nodes while `/cluster/resources` is still on its way, instead of after it.
#[tokio::test]
async fn per_node_requests_do_not_wait_for_the_inventory_when_the_nodes_are_known() {
    let answers = cluster();
    let (n, _, _) = sizes(&answers);
    let (api, url, first) = node_disks_scraped_once(&answers).await;
    let (resources, _) = resources_with_offline(&answers, "-");
    let slow = Duration::from_millis(3000);
    api.api.set_answer(
        "/cluster/resources",
        Answer::Delayed(slow, Box::new(resources)),
    );
    let before = api.api.requests();
    let second = tokio::spawn(async move { scrape(&url).await });
    // Every online node is asked while the inventory has not answered yet: the scrape, which
    // cannot end before the inventory does, is still under way. (Polled: how soon the
    // requests arrive depends on the machine's load, their order does not.)
    let asked = std::time::Instant::now();
    while api.api.requests() - before < 1 + n && asked.elapsed() < slow {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(api.api.requests() - before, 1 + n);
    assert!(!second.is_finished(), "the inventory answered first");
    let second = second.await.unwrap();
    assert!(success(&second, "node_disks"), "{second}");
    assert_eq!(api.api.requests() - before, 1 + n);
    assert_eq!(disk_lines(&second), disk_lines(&first));
}

/// When the nodes changed since the last collection, the answers asked early are dropped
/// and the per-node collectors ask the nodes the new inventory lists: what a node that went
/// offline answered must not show.
#[tokio::test]
async fn per_node_answers_follow_the_new_inventory_when_the_nodes_changed() {
    let answers = cluster();
    let (api, url, first) = node_disks_scraped_once(&answers).await;
    let node = first
        .lines()
        .find(|l| l.starts_with("proxmox_node_disk_smart_status{"))
        .and_then(|l| l.split("node=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("a disk with its node")
        .to_owned();

    let (_, changed) = resources_with_offline(&answers, &node);
    // Slow enough that the early requests have answered before the inventory comes.
    api.api.set_answer(
        "/cluster/resources",
        Answer::Delayed(Duration::from_millis(300), Box::new(changed)),
    );
    let second = scrape(&url).await;
    assert!(success(&second, "node_disks"), "{second}");
    let shown = format!("node=\"{node}\"");
    let disks = disk_lines(&second);
    assert!(!disks.is_empty(), "{second}");
    assert!(
        disks.iter().all(|l| !l.contains(&shown)),
        "{node} is offline now:\n{second}"
    );
}

/// While `/cluster/resources` keeps failing, the nodes are not asked ahead of it: after the
/// first failed inventory, a collection costs the one request the seed's did.
#[tokio::test]
async fn a_failing_inventory_stops_the_early_per_node_requests() {
    let (api, url, _) = node_disks_scraped_once(&cluster()).await;
    api.api
        .set_answer("/cluster/resources", Answer::Status(500));
    // The nodes were asked early once more, their answers dropped with the failed inventory.
    let text = scrape(&url).await;
    assert!(!text.contains("proxmox_node_disk_smart_status{"), "{text}");
    let before = api.api.requests();
    scrape(&url).await;
    assert_eq!(api.api.requests() - before, 1);
}

/// PVE can list things whose name is empty: an HA LRM entry `lrm:` (written when the HA
/// manager's node status has an empty key), and rows without a node, vmid, storage, pool,
/// replication id or device path. None of them becomes a series with an empty key label, and
/// no request goes to `/nodes//…`.
#[tokio::test]
async fn entries_without_a_name_make_no_series_and_no_request() {
    let resources = r#"{"data":[
        {"id":"node/pve1","type":"node","node":"pve1","status":"online","maxcpu":4,"maxmem":8},
        {"id":"node/","type":"node","node":"","status":"online","maxcpu":4,"maxmem":8},
        {"id":"qemu/100","type":"qemu","vmid":100,"node":"pve1","name":"web","status":"running"},
        {"id":"qemu/","type":"qemu","node":"pve1","name":"ghost","status":"running"},
        {"id":"storage/pve1/","type":"storage","node":"pve1","storage":"","plugintype":"dir",
         "status":"available","maxdisk":10,"disk":5}]}"#;
    let ha = r#"{"data":[
        {"id":"quorum","type":"quorum","node":"pve1","status":"OK","quorate":1},
        {"id":"master","type":"master","node":"pve1","status":"pve1 (active, Sun May 31 23:10:00 2026)"},
        {"id":"lrm:pve1","type":"lrm","node":"pve1","status":"pve1 (active, Sun May 31 23:10:00 2026)"},
        {"id":"lrm:","type":"lrm","node":"","status":" (unable to read lrm status)"},
        {"id":"service:","type":"service","sid":"","node":"pve1","state":"started"}]}"#;
    let zfs = r#"{"data":[{"name":"","health":"ONLINE","size":1},
        {"name":"rpool","health":"ONLINE","size":2,"alloc":1,"free":1,"frag":0,"dedup":1}]}"#;
    let replication = r#"{"data":[{"id":"","guest":100,"target":"pve2","source":"pve1"}]}"#;
    let disks =
        r#"{"data":[{"devpath":"","health":"PASSED"},{"devpath":"/dev/sda","health":"PASSED"}]}"#;
    let bodies = [
        ("/cluster/resources", resources),
        ("/cluster/ha/status/current", ha),
        ("/nodes/pve1/disks/zfs", zfs),
        ("/nodes/pve1/replication", replication),
        ("/nodes/pve1/disks/list", disks),
    ];
    let api = FakeEndpoint::start(support::Mode::Serve, &bodies).await;
    let collectors = [
        "cluster_resources",
        "ha",
        "zfs",
        "replication",
        "node_disks",
    ]
    .iter()
    .flat_map(|name| only(name, None))
    .collect();
    let (url, _) = exporter_with(vec![api.url.clone()], Duration::from_secs(60), collectors).await;
    let text = scrape(&url).await;
    for key in ["node", "vmid", "storage", "sid", "pool", "id", "devpath"] {
        let empty = format!("{key}=\"\"");
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(&empty)).collect();
        assert!(
            lines.is_empty(),
            "series with {empty}:\n{}",
            lines.join("\n")
        );
    }
    // What has a name is still there.
    for series in [
        "proxmox_ha_node_state{node=\"pve1\",state=\"active\"} 1",
        "proxmox_zfs_pool_healthy{node=\"pve1\",pool=\"rpool\"} 1",
        "proxmox_node_disk_smart_status{devpath=\"/dev/sda\",node=\"pve1\"} 1",
        "proxmox_guest_up{host=\"pve1\",name=\"web\",type=\"qemu\",vmid=\"100\"} 1",
    ] {
        assert!(text.contains(series), "missing {series}:\n{text}");
    }
    // Each per-node collector asked pve1 only: the inventory, HA, and one request per
    // collector (zfs, replication, node_disks) for the one named online node.
    assert_eq!(api.hits(), 1 + 1 + 3, "{text}");
}

/// A VM without an answering agent is its state: no series, the collector successful, and
/// its 500 is neither retried on another endpoint nor held against the one that answered.
/// Agent requests go to one node at a time each: a node's VMs are asked one after another.
#[tokio::test]
async fn guest_agents_are_asked_one_per_node_and_their_absence_is_no_failure() {
    let answers = cluster();
    let v = running_vms(&answers);
    let first = FakeEndpoint::serve(answers.clone()).await;
    let second = FakeEndpoint::serve(answers.clone()).await;
    let latency = Duration::from_millis(40);
    for endpoint in [&first, &second] {
        endpoint.api.set_latency(latency);
    }
    let (url, _) = exporter_with(
        vec![first.url.clone(), second.url.clone()],
        Duration::from_secs(60),
        only("guest_filesystems", None),
    )
    .await;
    let started = std::time::Instant::now();
    let text = scrape(&url).await;
    let took = started.elapsed();
    assert!(success(&text, "guest_filesystems"), "{text}");
    assert_eq!(
        first.hits() + second.hits(),
        1 + v as usize,
        "retried elsewhere"
    );
    let absent = text
        .lines()
        .filter(|l| {
            l.starts_with("proxmox_exporter_api_requests_total{") && l.contains("status=\"500\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum::<u64>();
    assert!(
        absent > 0,
        "the generated cluster has VMs without an agent: {text}"
    );
    assert!(
        text.contains("proxmox_guest_filesystem_used_bytes{"),
        "{text}"
    );
    // No endpoint went into backoff for them: a 500 with PVE's reason is an answer.
    assert!(!text.contains("status=\"connection_error\""), "{text}");
    // One at a time per node: the busiest node's VMs take their latencies in a row (a lower
    // bound, which a loaded machine can only exceed).
    let (rows, online) = rows_and_online(&answers);
    let mut per_node = std::collections::BTreeMap::<String, u32>::new();
    for r in &rows {
        let running_vm = r["type"] == "qemu" && r["template"] != 1 && r["status"] == "running";
        if running_vm && online.contains(&r["node"]) {
            *per_node.entry(r["node"].to_string()).or_default() += 1;
        }
    }
    let busiest = per_node.values().copied().max().unwrap();
    assert!(busiest > 2, "{per_node:?}");
    assert!(
        took >= latency * busiest,
        "{took:?} for {busiest} VMs on one node"
    );
}

/// An agent that never answers costs its VM's series for this sweep and at most the agent
/// timeout of the scrape: the other VMs, and the node's other VMs after it, are still asked.
#[tokio::test]
async fn a_hung_guest_agent_costs_its_vm_and_the_agent_timeout_only() {
    use proxmox_exporter::collectors::guest_filesystems::AGENT_TIMEOUT;
    let answers = cluster();
    let api = FakeEndpoint::serve(answers.clone()).await;
    // The first running VM with an agent answer hangs far beyond the agent timeout.
    let hung = answers
        .0
        .iter()
        .filter(|(path, answer)| {
            path.ends_with("/agent/get-fsinfo") && matches!(answer, Answer::Json(_))
        })
        .map(|(path, _)| path.clone())
        .min()
        .unwrap();
    let original = answers.0[&hung].clone();
    api.api.set_answer(
        &hung,
        Answer::Delayed(AGENT_TIMEOUT * 6, Box::new(original)),
    );
    let (url, _) = exporter_with(
        vec![api.url.clone()],
        Duration::from_secs(60),
        only("guest_filesystems", None),
    )
    .await;
    let started = std::time::Instant::now();
    let text = scrape(&url).await;
    let took = started.elapsed();
    assert!(
        took < AGENT_TIMEOUT * 3,
        "the scrape waited {took:?} for the hung agent"
    );
    assert!(success(&text, "guest_filesystems"), "{text}");
    let vmid = hung.split('/').nth(4).unwrap();
    assert!(!text.contains(&format!("vmid=\"{vmid}\"")), "{text}");
    assert!(
        text.contains("proxmox_guest_filesystem_used_bytes{"),
        "{text}"
    );
    assert_eq!(api.hits(), 1 + running_vms(&answers) as usize);
}

/// The snapshot list paths among `asked`, with their counts.
fn snapshot_paths(asked: &std::collections::HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut paths: Vec<(String, u64)> = asked
        .iter()
        .filter(|(path, _)| path.ends_with("/snapshot"))
        .map(|(path, n)| (path.clone(), *n))
        .collect();
    paths.sort();
    paths
}

/// `collector` alone, with `refresh`, on `answers`, without a cache window (every scrape is a
/// collection): its first sweep scraped (and successful), and the paths it asked.
async fn first_sweep(
    answers: &Answers,
    collector: &str,
    refresh: Duration,
) -> (FakeEndpoint, String, std::collections::HashMap<String, u64>) {
    let api = FakeEndpoint::serve(answers.clone()).await;
    api.api.count_paths();
    let (url, _) = exporter_with(
        vec![api.url.clone()],
        Duration::ZERO,
        only(collector, Some(refresh)),
    )
    .await;
    let text = scrape(&url).await;
    assert!(success(&text, collector), "{text}");
    let asked = api.api.take_paths();
    (api, url, asked)
}

/// After the first sweep, a per-guest collector asks each guest once per refresh, a few in
/// each window rather than all of them when the refresh is over; a guest that appears is
/// asked in the next window.
#[tokio::test]
async fn per_guest_sweeps_trickle_over_their_refresh() {
    let answers = cluster();
    let (_, g, _) = sizes(&answers);
    // The refresh is a duration this test waits out; 3 s leaves room for many collections
    // in it on a loaded machine.
    let refresh = Duration::from_secs(3);
    let (api, url, first) = first_sweep(&answers, "snapshots", refresh).await;
    let first = snapshot_paths(&first);
    assert_eq!(first.len() as u64, g, "the first sweep asks every guest");
    assert!(first.iter().all(|(_, n)| *n == 1));

    // A guest created now: a row in the inventory, and its snapshot list.
    let Some(Answer::Json(body)) = answers.0.get("/cluster/resources") else {
        panic!("no resources");
    };
    let mut resources: Value = serde_json::from_slice(body).unwrap();
    let (_, online) = rows_and_online(&answers);
    let node = online[0].as_str().unwrap().to_owned();
    resources["data"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": "qemu/9999", "type": "qemu", "vmid": 9999, "name": "new", "node": node,
            "status": "running", "template": 0, "maxmem": 1, "maxcpu": 1, "maxdisk": 1,
        }));
    let new_guest = format!("/nodes/{node}/qemu/9999/snapshot");

    let started = std::time::Instant::now();
    let mut per_window: Vec<u64> = Vec::new();
    let mut asked = std::collections::BTreeMap::<String, u64>::new();
    let mut new_guest_after = None;
    while started.elapsed() < refresh + Duration::from_millis(1500) {
        if per_window.len() == 3 {
            api.api.set_answer(
                "/cluster/resources",
                Answer::Json(serde_json::to_vec(&resources).unwrap().into()),
            );
            api.api
                .set_answer(&new_guest, Answer::Json(r#"{"data":[]}"#.into()));
        }
        let text = scrape(&url).await;
        assert!(success(&text, "snapshots"), "{text}");
        let window = snapshot_paths(&api.api.take_paths());
        per_window.push(window.iter().map(|(_, n)| n).sum());
        for (path, n) in window {
            if path == new_guest && new_guest_after.is_none() {
                new_guest_after = Some(per_window.len() - 3);
            }
            *asked.entry(path).or_default() += n;
        }
        // Collections a tenth of the refresh apart; only waiting shows the trickle.
        tokio::time::sleep(refresh / 30).await;
    }
    // Every guest asked again within the refresh (and a half), none more than twice.
    for (path, _) in &first {
        let n = asked.get(path).copied().unwrap_or(0);
        assert!((1..=2).contains(&n), "{path} asked {n} times: {asked:?}");
    }
    // A trickle: no window asks more than half the guests (all at once would be all).
    let most = per_window.iter().copied().max().unwrap_or(0);
    assert!(
        most <= g / 2,
        "{most} of {g} guests in one window: {per_window:?}"
    );
    // The new guest is asked within a window or two of appearing (its answer comes in the
    // background, so the collection that asks it may count it in the next one).
    assert!(
        new_guest_after.is_some_and(|w| w <= 2),
        "new guest asked after {new_guest_after:?} windows: {per_window:?}"
    );
}

/// A failed `/cluster/resources` leaves the sweeps' targets unknown, not gone: when it
/// answers again, the guests are not all asked again at once.
#[tokio::test]
async fn a_failed_inventory_keeps_the_sweeps_answers() {
    let answers = cluster();
    let (_, g, _) = sizes(&answers);
    let (api, url, first) = first_sweep(&answers, "snapshots", Duration::from_secs(600)).await;
    assert_eq!(snapshot_paths(&first).len() as u64, g);
    let resources = answers.0["/cluster/resources"].clone();
    api.api
        .set_answer("/cluster/resources", Answer::Status(500));
    let text = scrape(&url).await;
    assert!(text.contains("proxmox_up 0"), "{text}");
    api.api.set_answer("/cluster/resources", resources);
    let text = scrape(&url).await;
    assert!(text.contains("proxmox_up 1"), "{text}");
    let asked = snapshot_paths(&api.api.take_paths());
    assert!(asked.is_empty(), "asked again: {asked:?}");
    let series = text
        .lines()
        .filter(|l| l.starts_with("proxmox_guest_snapshots{"))
        .count();
    assert_eq!(series as u64, g, "the kept answers are shown again: {text}");
}

/// A VM whose guest agent is absent is not asked again at the next refresh but after a
/// backoff (twice the refresh at first); VMs whose agent answers are.
#[tokio::test]
async fn vms_without_an_agent_wait_for_a_backoff() {
    let answers = cluster();
    let refresh = Duration::from_secs(2);
    let (api, url, first) = first_sweep(&answers, "guest_filesystems", refresh).await;
    let fsinfo = |path: &&String| path.ends_with("/agent/get-fsinfo");
    let (mut answering, mut silent) = (Vec::new(), Vec::new());
    for path in first.keys().filter(fsinfo) {
        match &answers.0[path] {
            Answer::Json(_) => answering.push(path.clone()),
            _ => silent.push(path.clone()),
        }
    }
    assert!(!answering.is_empty() && !silent.is_empty());
    // Until every answering VM has been asked again (within one refresh), or 3.5 s: less
    // than the silent VMs' backoff of twice the refresh.
    let started = std::time::Instant::now();
    let mut again = std::collections::BTreeSet::new();
    let mut silent_asked = Vec::new();
    while started.elapsed() < Duration::from_millis(3500) && again.len() < answering.len() {
        scrape(&url).await;
        for path in api.api.take_paths().into_keys() {
            if answering.contains(&path) {
                again.insert(path);
            } else if silent.contains(&path) {
                silent_asked.push(path);
            }
        }
        // Only waiting shows when the sweep asks.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(again.len(), answering.len(), "answering VMs asked again");
    assert!(
        silent_asked.is_empty(),
        "asked before their backoff: {silent_asked:?}"
    );
}

/// `tasks`' series for one node, sorted.
fn task_lines<'a>(exposition: &'a str, node: &str) -> Vec<&'a str> {
    let mut lines: Vec<&str> = exposition
        .lines()
        .filter(|l| l.starts_with("proxmox_node_task") && l.contains(&format!("node=\"{node}\"")))
        .collect();
    lines.sort_unstable();
    lines
}

/// A task's entry in a node's archive as `/nodes/{node}/tasks` lists it.
fn task(kind: &str, end: u64, status: &str) -> Value {
    serde_json::json!({
        "upid": format!("UPID:pve01:0000A{end:X}:00B00000:{:08X}:{kind}::root@pam:", end - 60),
        "node": "pve01", "type": kind, "user": "root@pam", "id": "",
        "starttime": end - 60, "endtime": end, "status": status,
    })
}

/// The failed tasks are counted from the node's archive: a second scrape in the window, the
/// next window and a restarted exporter (a new one on the same cluster) count each task
/// once, and none is lost: a task that failed between two windows adds exactly one.
#[tokio::test]
async fn failed_tasks_count_once_across_windows_and_restarts() {
    let midnight = 1_780_272_000; // the tests' "now" (support::fixed_now)
    let tasks = |list: Vec<Value>| {
        Answer::Json(
            serde_json::json!({ "data": list })
                .to_string()
                .into_bytes()
                .into(),
        )
    };
    let mut archive = vec![
        task("vzdump", midnight - 100, "job errors"), // yesterday: not today's count
        task("vzdump", midnight + 100, "job errors"),
        task("qmstart", midnight + 50, "WARNINGS: 1"),
    ];
    let api = FakeEndpoint::serve(cluster()).await;
    api.api
        .set_answer("/nodes/pve01/tasks", tasks(archive.clone()));
    let window = Duration::from_millis(400);
    let (first, _) = exporter_with(vec![api.url.clone()], window, only("tasks", None)).await;
    let before = scrape(&first).await;
    assert!(success(&before, "tasks"), "{before}");
    let counted = task_lines(&before, "pve01");
    assert_eq!(
        counted,
        [
            "proxmox_node_task_last_failure_timestamp_seconds{node=\"pve01\",type=\"vzdump\"} 1780272100",
            "proxmox_node_tasks_failed_total{node=\"pve01\",type=\"qmstart\"} 0",
            "proxmox_node_tasks_failed_total{node=\"pve01\",type=\"vzdump\"} 1",
            "proxmox_node_tasks_warned_total{node=\"pve01\",type=\"qmstart\"} 1",
            "proxmox_node_tasks_warned_total{node=\"pve01\",type=\"vzdump\"} 0",
        ]
    );
    // The next window, nothing new: the same counts.
    tokio::time::sleep(window * 2).await;
    assert_eq!(task_lines(&scrape(&first).await, "pve01"), counted);
    // A restart: a new exporter counts the same tasks, once.
    let (restarted, _) = exporter_with(vec![api.url.clone()], window, only("tasks", None)).await;
    assert_eq!(task_lines(&scrape(&restarted).await, "pve01"), counted);
    // A task fails between two windows: one more, in both.
    archive.insert(0, task("vzdump", midnight + 300, "interrupted by signal"));
    api.api.set_answer("/nodes/pve01/tasks", tasks(archive));
    tokio::time::sleep(window * 2).await;
    for url in [&first, &restarted] {
        let after = scrape(url).await;
        let lines = task_lines(&after, "pve01");
        assert!(
            lines.contains(&"proxmox_node_tasks_failed_total{node=\"pve01\",type=\"vzdump\"} 2"),
            "{lines:?}"
        );
        assert!(lines.contains(
            &"proxmox_node_task_last_failure_timestamp_seconds{node=\"pve01\",type=\"vzdump\"} 1780272300"
        ));
    }
}

/// `smart` at 50 nodes × 8 disks, with `node_disks` on as by default: 400 requests for the
/// first sweep, one per disk (the disk lists are `node_disks`'), none more in the windows
/// after it within the hour's refresh, and never two at once on a node.
#[tokio::test]
async fn smart_asks_each_disk_once_an_hour_and_one_at_a_time_per_node() {
    use proxmox_exporter::collectors::smart::path as smart_path;
    let now = UNIX_EPOCH + Duration::from_secs(1_780_272_000);
    let mut answers = Answers::generate(50, 100, 7, now);
    let devpaths: Vec<String> = (b'a'..b'i')
        .map(|c| format!("/dev/sd{}", c as char))
        .collect();
    let json = |value: Value| Answer::Json(value.to_string().into_bytes().into());
    let smart = serde_json::json!({ "data": { "health": "PASSED", "type": "ata", "attributes": [
        { "id": "  5", "name": "Reallocated_Sector_Ct", "value": 100, "threshold": 10, "raw": "0" },
    ]}});
    for i in 1..=50 {
        let node = format!("pve{i:02}");
        let list: Vec<Value> = (devpaths.iter())
            .map(|p| serde_json::json!({ "devpath": p, "health": "PASSED", "type": "hdd" }))
            .collect();
        let list = serde_json::json!({ "data": list });
        answers
            .0
            .insert(format!("/nodes/{node}/disks/list"), json(list));
        for devpath in &devpaths {
            let held = Answer::Held(Duration::from_millis(20), Box::new(json(smart.clone())));
            answers.0.insert(smart_path(&node, devpath), held);
        }
    }
    let api = FakeEndpoint::serve(answers).await;
    api.api.count_paths();
    let mut enabled = only("node_disks", None);
    enabled.extend(only("smart", None));
    let window = Duration::from_millis(300);
    let (url, _) = exporter_with(vec![api.url.clone()], window, enabled).await;
    let first = scrape(&url).await;
    assert!(success(&first, "smart"), "{first}");
    let asked = api.api.take_paths();
    let count = |asked: &std::collections::HashMap<String, u64>, what: &str| -> u64 {
        (asked.iter())
            .filter(|(path, _)| path.ends_with(what))
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(count(&asked, "/disks/smart"), 400);
    assert_eq!(count(&asked, "/disks/list"), 50, "one disk list per node");
    assert_eq!(
        first
            .lines()
            .filter(|l| l.starts_with("proxmox_node_disk_smart_attribute_raw{"))
            .count(),
        400
    );
    // One at a time on each node.
    let peaks = api.api.peaks();
    let smart_peaks: Vec<u64> = (peaks.iter())
        .filter(|(path, _)| path.ends_with("/disks/smart"))
        .map(|(_, most)| *most)
        .collect();
    assert_eq!(smart_peaks.len(), 50);
    assert!(smart_peaks.iter().all(|most| *most == 1), "{peaks:?}");
    // The next windows within the hour ask no disk again (their disk lists are node_disks').
    for _ in 0..3 {
        tokio::time::sleep(window * 2).await;
        assert!(success(&scrape(&url).await, "smart"));
    }
    let later = api.api.take_paths();
    assert_eq!(count(&later, "/disks/smart"), 0, "{later:?}");
    assert_eq!(count(&later, "/disks/list"), 3 * 50);
}
