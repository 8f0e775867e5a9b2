//! `--collect-ahead`: once the scrape interval is known, the exporter collects shortly before
//! the next scrape would find the cache stale, so that scrape is answered from a collection
//! already made; when scrapes stop, so do the collections.

mod support;

use std::time::{Duration, Instant};

use support::{FakeEndpoint, get_text};

/// The three-node fixture: one collection is 7 requests.
const PER_COLLECTION: usize = 7;

#[tokio::test]
async fn scrapes_find_a_collection_made_ahead_and_collecting_stops_with_them() {
    let api = FakeEndpoint::scenario(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/three-node"),
    )
    .await;
    let window = Duration::from_secs(1);
    let interval = Duration::from_millis(1250);
    let (url, exporter) = support::exporter(vec![api.url.clone()], window).await;
    exporter.collect_ahead(2);
    // Collecting ahead is planned on the clock from the scrapes' interval: the scrapes must
    // come at real times, and what happens between them can only be seen by waiting.
    let t0 = Instant::now();
    let at = |n: u32| tokio::time::sleep_until((t0 + interval * n).into());

    // Two scrapes teach the exporter the interval; each collects (the cache is stale).
    assert_eq!(get_text(&url).await.0, 200);
    at(1).await;
    assert_eq!(get_text(&url).await.0, 200);
    assert_eq!(api.hits(), 2 * PER_COLLECTION);

    // Before the third scrape the exporter has collected again by itself ...
    tokio::time::sleep_until((t0 + interval * 2 - Duration::from_millis(100)).into()).await;
    assert_eq!(
        api.hits(),
        3 * PER_COLLECTION,
        "collected ahead of the scrape"
    );
    // ... and the scrape is answered from that collection.
    at(2).await;
    assert_eq!(get_text(&url).await.0, 200);
    assert_eq!(api.hits(), 3 * PER_COLLECTION, "the scrape did not collect");

    // No more scrapes: after two intervals without one, no more collections.
    at(6).await;
    let settled = api.hits();
    assert!(
        settled > 3 * PER_COLLECTION,
        "it went on while scrapes were expected"
    );
    at(8).await;
    assert_eq!(api.hits(), settled, "it stopped once scrapes stopped");
}

#[tokio::test]
async fn without_collect_ahead_only_scrapes_collect() {
    let api = FakeEndpoint::scenario(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/three-node"),
    )
    .await;
    let (url, _exporter) = support::exporter(vec![api.url.clone()], Duration::from_secs(1)).await;
    get_text(&url).await;
    // What is tested is that nothing happens while time passes: only waiting shows it.
    tokio::time::sleep(Duration::from_millis(1250)).await;
    get_text(&url).await;
    tokio::time::sleep(Duration::from_millis(2400)).await;
    assert_eq!(api.hits(), 2 * PER_COLLECTION);
}
