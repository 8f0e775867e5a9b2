//! A bounded soak run: thousands of cold scrapes of the exporter binary while faults come
//! and go in the simulated API; its memory and open files must stay flat.
//!
//! Ignored by `cargo test`; `.ci/run` runs it for 30 s. Longer:
//! `SOAK_SECONDS=600 cargo test --release --test soak -- --ignored --nocapture`.

mod support;

use std::time::{Duration, Instant, SystemTime};

use proxmox_exporter::sim::{Answer, Answers};
use support::{FakeEndpoint, TOKEN_ID, TOKEN_SECRET};

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak run of SOAK_SECONDS (default 30); .ci/run runs it"]
async fn memory_and_open_files_stay_flat_under_scrapes_with_faults() {
    let faulty = [
        "/nodes/pve03/disks/list",
        "/nodes/pve07/certificates/info",
        "/cluster/resources",
    ];
    soak(&[], &faulty, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak run of SOAK_SECONDS (default 30) with every collector; .ci/run runs it"]
async fn with_every_collector_too() {
    // Every collector on, and every answer asked in every collection (refresh 0).
    let mut flags: Vec<String> = proxmox_exporter::collectors::REGISTRY
        .iter()
        .map(|c| format!("--collector.{}", c.name()))
        .collect();
    for name in ["snapshots", "subscription", "backup"] {
        flags.push(format!("--collector.{name}.refresh=0"));
    }
    let all: Vec<&str> = flags.iter().map(String::as_str).collect();
    let faulty = [
        "/nodes/pve03/status",
        "/cluster/ceph/status",
        "/nodes/pve05/qemu/104/snapshot",
        "/cluster/ha/status/current",
        "/nodes/pve02/storage/local/content",
        "/cluster/resources",
    ];
    // At least 5 scrapes a second, not 10: `guest_filesystems` asks each node's running VMs'
    // agents one after another (on purpose: an agent call holds a pveproxy worker), about 35
    // a node here, again after every window in which the faults made it fail.
    soak(&all, &faulty, 5).await;
}

/// Scrapes the exporter binary (run with `extra` flags) with four scrapers and no cache for
/// SOAK_SECONDS while `faulty` paths break in turn; at least `per_second` scrapes a second.
async fn soak(extra: &[&str], faulty: &[&'static str], per_second: u64) {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let answers = Answers::generate(20, 1_000, 7, SystemTime::now());
    let api = FakeEndpoint::serve(answers.clone()).await;
    let endpoint = api.url.to_string();
    let mut args = vec![
        "--cache-duration",
        "0",
        "--log-level",
        "info",
        "--api-timeout",
        "2",
    ];
    args.extend_from_slice(extra);
    let exporter = support::run_exporter(
        &args,
        &[
            ("PROXMOX_EXPORTER_PROXMOX_ENDPOINTS", &endpoint),
            ("PROXMOX_EXPORTER_PROXMOX_TOKEN_ID", TOKEN_ID),
            ("PROXMOX_EXPORTER_PROXMOX_TOKEN", TOKEN_SECRET),
        ],
    );
    let pid = exporter.child.id();
    let url = format!("http://{}/metrics", exporter.address);
    let end = Instant::now() + Duration::from_secs(seconds);

    // Faults come and go, four times a second.
    let sim = api.api.clone();
    let paths = faulty.to_vec();
    let faults = tokio::spawn(async move {
        let mut round = 0usize;
        while Instant::now() < end {
            sim.clear_answers();
            sim.set_status_override(None);
            let path = paths[round % paths.len()];
            match round % 6 {
                0 => sim.set_answer(path, Answer::Status(500)),
                1 => sim.set_answer(path, answers.fault(path, "html").unwrap()),
                2 => sim.set_answer(path, answers.fault(path, "truncated").unwrap()),
                3 => sim.set_answer(
                    path,
                    Answer::Delayed(Duration::from_millis(300), Box::new(Answer::Status(595))),
                ),
                4 => sim.set_status_override(Some(401)),
                _ => {}
            }
            round += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });

    let client = reqwest::Client::new();
    let mut scrapers = Vec::new();
    for _ in 0..4 {
        let (client, url) = (client.clone(), url.clone());
        scrapers.push(tokio::spawn(async move {
            let mut count = 0u64;
            while Instant::now() < end {
                let response = client
                    .get(&url)
                    .header("accept-encoding", "gzip")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
                count += 1;
            }
            count
        }));
    }
    // The level after warming up, against the level at the end.
    tokio::time::sleep(Duration::from_secs(seconds / 3)).await;
    let (rss_warm, files_warm) = (rss_kb(pid), open_files(pid));
    let mut scrapes = 0;
    for scraper in scrapers {
        scrapes += scraper.await.unwrap();
    }
    faults.await.unwrap();
    let (rss_end, files_end) = (rss_kb(pid), open_files(pid));
    println!(
        "soak: {scrapes} scrapes in {seconds} s; RSS {rss_warm} kB -> {rss_end} kB; \
         open files {files_warm} -> {files_end}"
    );
    assert!(scrapes >= per_second * seconds, "only {scrapes} scrapes");
    assert!(
        rss_end <= rss_warm + rss_warm / 4 + 4_096,
        "RSS grew from {rss_warm} kB to {rss_end} kB"
    );
    assert!(
        files_end <= files_warm + 8,
        "open files grew from {files_warm} to {files_end}"
    );
}
