//! Faults, each against the simulated PVE: the exporter keeps answering, loses only what a
//! fault costs, says what went wrong once per collection, and recovers by itself.

mod support;

use std::path::Path;

use std::time::{Duration, Instant};

use bytes::Bytes;
use proxmox_exporter::sim::{Answer, Answers};
use support::{FakeEndpoint, TOKEN_SECRET};

fn three_node() -> Answers {
    Answers::from_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/three-node"))
        .unwrap()
}

async fn scrape(url: &str, headers: &[(&str, &str)]) -> String {
    let mut request = reqwest::Client::new().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

fn value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn success(m: &str, collector: &str) -> Option<f64> {
    value(
        m,
        &format!("proxmox_exporter_collector_success{{collector=\"{collector}\"}}"),
    )
}

fn node_up(m: &str, node: &str) -> Option<f64> {
    value(
        m,
        &format!("proxmox_node_up{{name=\"{node}\",type=\"node\"}}"),
    )
}

fn smart(m: &str, node: &str) -> Option<f64> {
    value(
        m,
        &format!("proxmox_node_disk_smart_status{{devpath=\"/dev/sda\",node=\"{node}\"}}"),
    )
}

#[tokio::test]
async fn a_node_answering_595_or_596_slowly_is_down_and_the_rest_is_complete() {
    for code in [595, 596] {
        let api = FakeEndpoint::serve(three_node()).await;
        for path in ["/nodes/hv2/disks/list", "/nodes/hv2/certificates/info"] {
            let late = Answer::Delayed(Duration::from_millis(400), Box::new(Answer::Status(code)));
            api.api.set_answer(path, late);
        }
        let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_secs(29)).await;
        let m = scrape(&url, &[]).await;
        assert_eq!(value(&m, "proxmox_up"), Some(1.0));
        assert_eq!(node_up(&m, "hv2"), Some(0.0), "HTTP {code}");
        assert_eq!(node_up(&m, "hv1"), Some(1.0));
        assert_eq!(node_up(&m, "hv3"), Some(1.0));
        assert_eq!(smart(&m, "hv1"), Some(1.0));
        assert_eq!(smart(&m, "hv3"), Some(1.0));
        assert_eq!(smart(&m, "hv2"), None);
        assert!(
            m.contains("proxmox_guest_up{host=\"hv2\""),
            "guests still listed"
        );
    }
}

#[tokio::test]
async fn every_cold_scrape_is_complete_while_one_endpoint_works() {
    let live = FakeEndpoint::serve(three_node()).await;
    let tls_broken = FakeEndpoint::serve(three_node()).await;
    let endpoints = vec![
        support::dead_url().await,
        tls_broken.as_https(),
        live.url.clone(),
    ];
    let (url, _) = support::exporter(endpoints, Duration::ZERO).await;
    for _ in 0..8 {
        let m = scrape(&url, &[]).await;
        for collector in ["cluster_resources", "node_disks", "node_certificates"] {
            assert_eq!(success(&m, collector), Some(1.0), "{collector}: {m}");
        }
    }
}

#[tokio::test]
async fn unauthorized_and_forbidden_say_why_once_per_window_without_the_secret() {
    for (code, hint) in [(401, "token id or secret"), (403, "PVEAuditor")] {
        let logs = support::logs::Capture::start();

        let api = FakeEndpoint::serve(three_node()).await;
        api.api.set_status_override(Some(code));
        let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_secs(29)).await;
        for _ in 0..3 {
            let m = scrape(&url, &[]).await;
            assert_eq!(value(&m, "proxmox_up"), Some(0.0));
        }
        let text = logs.text();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("API request failed"))
            .collect();
        assert_eq!(lines.len(), 1, "one line per window: {text}");
        let line = lines[0];
        let endpoint = api.url.as_str().trim_end_matches('/');
        assert!(line.contains(endpoint), "{line}");
        assert!(
            line.contains(&code.to_string()) && line.contains(hint),
            "{line}"
        );
        assert!(line.contains("/cluster/resources"), "{line}");
        assert!(!text.contains(TOKEN_SECRET), "the secret is in the logs");
    }
}

#[tokio::test]
async fn malformed_answers_cost_their_collector_and_heal_in_the_next_window() {
    let broken: [(&str, Answer); 6] = [
        (
            "html",
            Answer::Json(Bytes::from_static(b"<html><h1>502 Bad Gateway</h1></html>")),
        ),
        (
            "truncated",
            Answer::Json(Bytes::from_static(b"{\"data\":[{\"devpath\":\"/dev/s")),
        ),
        (
            "not a list",
            Answer::Json(Bytes::from_static(b"{\"data\":{\"devpath\":\"/dev/sda\"}}")),
        ),
        (
            "wrong types",
            Answer::Json(Bytes::from_static(
                b"{\"data\":[{\"devpath\":[\"/dev/sda\"]}]}",
            )),
        ),
        (
            "all null",
            Answer::Json(Bytes::from_static(
                b"{\"data\":[{\"devpath\":null,\"health\":null,\"size\":null}]}",
            )),
        ),
        ("500", Answer::Status(500)),
    ];
    for (what, answer) in broken {
        let api = FakeEndpoint::serve(three_node()).await;
        api.api.set_answer("/nodes/hv1/disks/list", answer);
        let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_millis(300)).await;
        let m = scrape(&url, &[]).await;
        assert_eq!(success(&m, "node_disks"), Some(0.0), "{what}");
        assert_eq!(success(&m, "node_certificates"), Some(1.0), "{what}");
        assert_eq!(success(&m, "cluster_resources"), Some(1.0), "{what}");
        assert_eq!(value(&m, "proxmox_up"), Some(1.0), "{what}");
        assert_eq!(smart(&m, "hv1"), None, "{what}");
        assert_eq!(smart(&m, "hv2"), Some(1.0), "{what}");

        api.api.clear_answers();
        // The next window: the cache lasts 300 ms, and only time ends it.
        tokio::time::sleep(Duration::from_millis(350)).await;
        let m = scrape(&url, &[]).await;
        assert_eq!(success(&m, "node_disks"), Some(1.0), "{what}: not healed");
        assert_eq!(smart(&m, "hv1"), Some(1.0), "{what}: not healed");
    }
}

#[tokio::test]
async fn a_broken_cluster_list_costs_the_cluster_metrics_only() {
    let api = FakeEndpoint::serve(three_node()).await;
    let body = b"{\"data\":[{\"id\":\"node/hv1\",\"type\":\"node\",\"node\":\"hv1\",\"status\":\"online\"},{\"id\":null,\"type\":null}]}";
    api.api
        .set_answer("/cluster/resources", Answer::Json(Bytes::from_static(body)));
    let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_secs(29)).await;
    let m = scrape(&url, &[]).await;
    assert_eq!(success(&m, "cluster_resources"), Some(0.0));
    assert_eq!(value(&m, "proxmox_up"), Some(0.0));
    assert_eq!(
        success(&m, "node_disks"),
        Some(1.0),
        "hv1's good row still counts"
    );
    assert_eq!(smart(&m, "hv1"), Some(1.0));
}

#[tokio::test]
async fn a_slow_node_does_not_hold_the_scrape_past_its_timeout() {
    let api = FakeEndpoint::serve(three_node()).await;
    let slow = three_node()
        .fault("/nodes/hv2/disks/list", "slow:5000")
        .unwrap();
    api.api.set_answer("/nodes/hv2/disks/list", slow);
    let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_secs(29)).await;
    let started = Instant::now();
    let m = scrape(&url, &[("x-prometheus-scrape-timeout-seconds", "1.5")]).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(1000),
        "gave up too early: {took:?}"
    );
    assert_eq!(success(&m, "node_disks"), Some(0.0));
    assert_eq!(success(&m, "node_certificates"), Some(1.0));
    assert_eq!(smart(&m, "hv1"), Some(1.0));
    assert_eq!(smart(&m, "hv2"), None);
    assert_eq!(value(&m, "proxmox_up"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_scrapes_are_all_answered_from_one_collection() {
    let api = FakeEndpoint::serve(three_node()).await;
    api.api.set_latency(Duration::from_millis(50));
    let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_secs(29)).await;
    let client = reqwest::Client::new();
    let scrapes: Vec<_> = (0..200)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                client
                    .get(&url)
                    .send()
                    .await?
                    .error_for_status()?
                    .text()
                    .await
            })
        })
        .collect();
    let mut bodies = Vec::new();
    for scrape in scrapes {
        bodies.push(scrape.await.unwrap().unwrap());
    }
    assert_eq!(bodies.len(), 200);
    assert!(bodies.iter().all(|b| b == &bodies[0]));
    assert_eq!(api.hits(), 7, "one set of API requests for 200 scrapes");
}
