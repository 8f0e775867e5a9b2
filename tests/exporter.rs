//! The exporter as a scraper sees it: the cache shared by concurrent scrapes, content
//! negotiation, the small endpoints, and failures that cost only their own metrics.

mod support;

use std::path::Path;
use std::time::Duration;

use proxmox_exporter::sim::{Answer, Answers};
use support::FakeEndpoint;

fn scenario(name: &str) -> Answers {
    Answers::from_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

async fn get(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.text().await.unwrap()
}

fn value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn concurrent_scrapes_share_one_collection_and_the_window_reuses_it() {
    let api = FakeEndpoint::serve(scenario("three-node")).await;
    api.api.set_latency(Duration::from_millis(100));
    let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_millis(1500)).await;
    let scrapes: Vec<_> = (0..8)
        .map(|_| tokio::spawn(get_owned(url.clone())))
        .collect();
    let mut bodies = Vec::new();
    for scrape in scrapes {
        bodies.push(scrape.await.unwrap());
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "scrapes saw different collections"
    );
    assert_eq!(
        api.hits(),
        1 + 2 * 3,
        "8 simultaneous scrapes, one set of API requests"
    );

    get(&url).await;
    assert_eq!(
        api.hits(),
        7,
        "a scrape inside the window asks the API nothing"
    );

    // The window is a duration: waited out.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    get(&url).await;
    assert_eq!(api.hits(), 14, "after the window, a new collection");
}

async fn get_owned(url: String) -> String {
    get(&url).await
}

#[tokio::test]
async fn openmetrics_for_scrapers_that_ask_for_it() {
    let api = FakeEndpoint::serve(scenario("three-node")).await;
    let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_secs(29)).await;
    let response = reqwest::Client::new()
        .get(&url)
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    assert!(body.ends_with("# EOF\n"));
    assert!(body.contains("# TYPE proxmox_exporter_api_requests counter"));
    assert!(body.contains("proxmox_node_up{name=\"hv1\",type=\"node\"} 1"));

    let classic = get(&url).await;
    assert!(!classic.contains("# EOF"));
    assert!(classic.contains("# TYPE proxmox_exporter_api_requests_total counter"));
    assert_eq!(api.hits(), 7, "both formats come from one collection");
}

#[tokio::test]
async fn gzip_for_scrapers_that_accept_it() {
    use std::io::Read;
    let api = FakeEndpoint::serve(scenario("three-node")).await;
    let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_secs(29)).await;
    // Without decompression: the body arrives as sent.
    let response = reqwest::Client::builder()
        .no_gzip()
        .build()
        .unwrap()
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = response.bytes().await.unwrap();
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, get(&url).await);
    assert!(
        compressed.len() * 3 < plain.len(),
        "{} vs {}",
        compressed.len(),
        plain.len()
    );
}

#[tokio::test]
async fn landing_page_and_health() {
    let api = FakeEndpoint::serve(scenario("empty")).await;
    let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_secs(29)).await;
    let base = url.trim_end_matches("/metrics");
    assert!(get(&format!("{base}/")).await.contains("href=\"/metrics\""));
    assert_eq!(get(&format!("{base}/-/healthy")).await, "OK\n");
    assert_eq!(get(&format!("{base}/-/ready")).await, "OK\n");
    let missing = reqwest::get(format!("{base}/nope")).await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_failing_node_request_costs_only_that_collector_and_node() {
    let mut answers = scenario("three-node");
    answers
        .0
        .insert("/nodes/hv2/disks/list".into(), Answer::Status(500));
    let api = FakeEndpoint::serve(answers).await;
    let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_secs(29)).await;
    let m = get(&url).await;
    assert_eq!(value(&m, "proxmox_up"), Some(1.0));
    let success = |c: &str| {
        value(
            &m,
            &format!("proxmox_exporter_collector_success{{collector=\"{c}\"}}"),
        )
    };
    assert_eq!(success("node_disks"), Some(0.0));
    assert_eq!(success("node_certificates"), Some(1.0));
    assert_eq!(success("cluster_resources"), Some(1.0));
    let smart = |node: &str| {
        value(
            &m,
            &format!("proxmox_node_disk_smart_status{{devpath=\"/dev/sda\",node=\"{node}\"}}"),
        )
    };
    assert_eq!(smart("hv1"), Some(1.0));
    assert_eq!(smart("hv2"), None);
    assert_eq!(smart("hv3"), Some(1.0));
    assert!(m.contains("proxmox_exporter_api_requests_total{endpoint=\""));
    assert!(m.contains("status=\"500\"}"));
}

#[tokio::test]
async fn without_cluster_resources_only_self_metrics_remain() {
    let api = FakeEndpoint::serve(scenario("three-node")).await;
    api.api.set_status_override(Some(403));
    let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_secs(29)).await;
    let m = get(&url).await;
    assert_eq!(value(&m, "proxmox_up"), Some(0.0));
    assert_eq!(
        value(
            &m,
            "proxmox_exporter_collector_success{collector=\"cluster_resources\"}"
        ),
        Some(0.0)
    );
    assert!(!m.contains("proxmox_node_up"), "{m}");
    assert!(!m.contains("proxmox_cluster_cpus_total"));
    assert_eq!(api.hits(), 1, "no per-node request without a node list");
}

#[tokio::test]
async fn oversized_request_headers_are_refused() {
    let api = FakeEndpoint::serve(scenario("empty")).await;
    let (url, _) = support::exporter(vec![api.url.clone()], Duration::from_secs(29)).await;
    let huge = "x".repeat(1 << 20);
    let answer = reqwest::Client::new()
        .get(&url)
        .header("x-padding", huge)
        .send()
        .await;
    match answer {
        Ok(response) => assert_eq!(response.status(), 431),
        Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
    }
    assert_eq!(api.hits(), 0, "a refused request costs no API request");
}
