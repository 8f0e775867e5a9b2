//! The simulator behaves like pveproxy when told to (idle close, request cap, close after an
//! error, gzip, workers, the proxy hop, the late 401, a slow link), each behaviour on its own;
//! and the dispatcher survives connections closed under it without blaming the endpoint.

mod support;

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use proxmox_exporter::pve::Dispatcher;
use proxmox_exporter::sim::{Answer, Answers, Behaviour, SimApi};
use support::{TOKEN_ID, TOKEN_SECRET, version};

/// A generated 3-node cluster served on plain HTTP with `behaviour`; the endpoint is pve01.
async fn cluster(behaviour: Behaviour) -> (SimApi, String) {
    let answers = Answers::generate(3, 60, 1, SystemTime::now());
    let api = SimApi::new(answers, TOKEN_ID, TOKEN_SECRET);
    api.set_behaviour(behaviour);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api2/json", listener.local_addr().unwrap());
    tokio::spawn(api.clone().serve(listener));
    (api, url)
}

fn client() -> reqwest::Client {
    proxmox_exporter::pve::dispatcher::install_crypto_provider();
    // The bytes as sent: no Accept-Encoding unless a test adds it, nothing unpacked.
    reqwest::Client::builder().no_gzip().build().unwrap()
}

/// GET `path` with the token; status, `Content-Encoding`, body as sent.
async fn get(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    gzip: bool,
) -> (u16, Option<String>, Vec<u8>) {
    let mut request = client.get(format!("{base}{path}")).header(
        "authorization",
        format!("PVEAPIToken={TOKEN_ID}={TOKEN_SECRET}"),
    );
    if gzip {
        request = request.header("accept-encoding", "gzip, deflate");
    }
    let response = request.send().await.unwrap();
    let encoding = response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        response.status().as_u16(),
        encoding,
        response.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    // The idle timeout is a duration: waited out, with room for a loaded machine inside it.
    for (idle, expected) in [(Some(Duration::from_millis(1000)), 2), (None, 1)] {
        let (api, base) = cluster(Behaviour {
            idle_timeout: idle,
            ..Behaviour::default()
        })
        .await;
        let client = client();
        get(&client, &base, "/version", false).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        get(&client, &base, "/version", false).await;
        assert_eq!(
            api.connections(),
            1,
            "within the idle time the connection is kept"
        );
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let (status, ..) = get(&client, &base, "/version", false).await;
        assert_eq!(status, 200);
        assert_eq!(api.connections(), expected, "idle timeout {idle:?}");
    }
}

#[tokio::test]
async fn a_connection_answers_at_most_the_request_cap() {
    let (api, base) = cluster(Behaviour {
        max_requests_per_connection: Some(3),
        ..Behaviour::default()
    })
    .await;
    let client = client();
    for _ in 0..7 {
        assert_eq!(get(&client, &base, "/version", false).await.0, 200);
    }
    assert_eq!(api.connections(), 3, "7 requests, 3 per connection");
    assert_eq!(api.stats().requests, 7);
}

#[tokio::test]
async fn an_error_answer_closes_the_connection() {
    for (close, expected) in [(true, 3), (false, 1)] {
        let (api, base) = cluster(Behaviour {
            close_after_error: close,
            ..Behaviour::default()
        })
        .await;
        api.set_answer("/nodes/pve01/disks/list", Answer::Status(500));
        let client = client();
        assert_eq!(
            get(&client, &base, "/nodes/pve01/disks/list", false)
                .await
                .0,
            500
        );
        assert_eq!(
            get(&client, &base, "/nodes/pve01/disks/list", false)
                .await
                .0,
            500
        );
        assert_eq!(get(&client, &base, "/version", false).await.0, 200);
        assert_eq!(api.connections(), expected, "close after error: {close}");
    }
}

#[tokio::test]
async fn answers_over_1_kib_are_gzipped_when_the_client_asks() {
    let (api, base) = cluster(Behaviour {
        gzip: true,
        ..Behaviour::default()
    })
    .await;
    let client = client();
    let (_, plain_encoding, plain) = get(&client, &base, "/cluster/resources", false).await;
    assert_eq!(plain_encoding, None, "not asked for: not compressed");
    assert!(plain.len() > 1024);
    let sent_before = api.stats().bytes_sent;
    let (_, encoding, compressed) = get(&client, &base, "/cluster/resources", true).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert!(
        compressed.len() * 3 < plain.len(),
        "{} of {}",
        compressed.len(),
        plain.len()
    );
    assert_eq!(
        api.stats().bytes_sent - sent_before,
        compressed.len() as u64
    );
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut unpacked)
        .unwrap();
    assert_eq!(unpacked, plain);
    let (_, small_encoding, small) = get(&client, &base, "/version", true).await;
    assert!(small.len() <= 1024);
    assert_eq!(small_encoding, None, "1 KiB or less stays as it is");

    api.set_behaviour(Behaviour::default());
    let (_, off, _) = get(&client, &base, "/cluster/resources", true).await;
    assert_eq!(off, None, "gzip switched off");
}

#[tokio::test]
async fn workers_limit_the_requests_served_at_once() {
    let (api, base) = cluster(Behaviour {
        workers: Some(1),
        service_time: Duration::from_millis(40),
        ..Behaviour::default()
    })
    .await;
    let client = client();
    let started = Instant::now();
    let all: Vec<_> = (0..5)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move { get(&client, &base, "/version", false).await.0 })
        })
        .collect();
    for one in all {
        assert_eq!(one.await.unwrap(), 200);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "one worker, 5 × 40 ms: {:?}",
        started.elapsed()
    );
    let worked = api.stats().worker_micros;
    assert!(
        (200_000..300_000).contains(&worked),
        "worker time {worked} µs"
    );
}

#[tokio::test]
async fn other_nodes_paths_take_the_proxy_hop_to_their_node() {
    let (api, base) = cluster(Behaviour {
        proxy_hop: Some(Duration::from_millis(1)),
        ..Behaviour::default()
    })
    .await;
    assert_eq!(api.node(), Some("pve01"));
    let client = client();
    assert_eq!(
        get(&client, &base, "/nodes/pve02/status", false).await.0,
        200
    );
    assert_eq!(
        get(&client, &base, "/nodes/pve02/status", false).await.0,
        200
    );
    assert_eq!(
        get(&client, &base, "/nodes/pve01/status", false).await.0,
        200
    );
    let nodes = api.cluster_stats();
    assert_eq!(nodes["pve02"].proxied, 2);
    assert_eq!(
        nodes["pve02"].requests, 0,
        "nothing was sent to pve02 directly"
    );
    assert_eq!(nodes["pve01"].proxied, 0);
    assert_eq!(nodes["pve01"].requests, 3);

    // Another endpoint of the same cluster counts on its own.
    let pve02 = api.endpoint("pve02");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = format!("http://{}/api2/json", listener.local_addr().unwrap());
    tokio::spawn(pve02.clone().serve(listener));
    get(&client, &other, "/nodes/pve02/status", false).await;
    assert_eq!(pve02.stats().requests, 1);
    assert_eq!(pve02.stats().proxied, 2);
}

#[tokio::test]
async fn a_request_without_valid_credentials_waits_for_its_401() {
    let (_, base) = cluster(Behaviour {
        unauthorized_delay: Duration::from_millis(300),
        ..Behaviour::default()
    })
    .await;
    let started = Instant::now();
    let status = client()
        .get(format!("{base}/version"))
        .header("authorization", format!("PVEAPIToken={TOKEN_ID}=wrong"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_slow_link_paces_the_answers() {
    let (api, base) = cluster(Behaviour {
        bandwidth: Some(100_000),
        ..Behaviour::default()
    })
    .await;
    let started = Instant::now();
    let (_, _, body) = get(&client(), &base, "/cluster/resources", false).await;
    let least = Duration::from_secs_f64(body.len() as f64 / 100_000.0);
    assert!(
        least > Duration::from_millis(50),
        "a body of {} bytes",
        body.len()
    );
    assert!(
        started.elapsed() >= least,
        "{:?} < {least:?}",
        started.elapsed()
    );
    assert_eq!(api.stats().bytes_sent, body.len() as u64);
}

#[tokio::test]
async fn tls_handshakes_are_counted_per_connection() {
    let answers = Answers::generate(3, 30, 1, SystemTime::now());
    let api = SimApi::new(answers, TOKEN_ID, TOKEN_SECRET);
    api.set_behaviour(Behaviour {
        max_requests_per_connection: Some(2),
        ..Behaviour::default()
    });
    let (tls, pem) = proxmox_exporter::sim::self_signed_with_pem().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "https://localhost:{}/api2/json",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(api.clone().serve_tls(listener, tls));
    proxmox_exporter::pve::dispatcher::install_crypto_provider();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    for _ in 0..5 {
        assert_eq!(get(&client, &base, "/version", false).await.0, 200);
    }
    let stats = api.stats();
    assert_eq!((stats.connections, stats.handshakes), (3, 3));
}

/// The dispatcher's side: the configuration for the one endpoint at `base`.
fn config_for(base: &str) -> proxmox_exporter::pve::DispatcherConfig {
    let url = reqwest::Url::parse(base.trim_end_matches("api2/json")).unwrap();
    support::config(vec![url])
}

/// A dispatcher on the one endpoint at `base`.
fn dispatcher(base: &str) -> Dispatcher {
    Dispatcher::new(&config_for(base)).unwrap()
}

#[tokio::test]
async fn a_connection_closed_under_a_request_is_retried_without_blaming_the_endpoint() {
    let (api, base) = cluster(Behaviour::default()).await;
    let dispatcher = dispatcher(&base);
    version(&dispatcher).await.unwrap();
    api.hang_up_next(1);
    version(&dispatcher).await.unwrap();
    assert_eq!(
        api.stats().requests,
        3,
        "the hung-up request, then once more"
    );
    assert_eq!(api.connections(), 2, "the retry went on a fresh connection");
    assert!(dispatcher.endpoints_in_backoff().is_empty());
    let counts = dispatcher.request_counts();
    assert!(
        counts
            .iter()
            .any(|(_, status, n)| status == "connection_closed" && *n == 1),
        "{counts:?}"
    );
    // Closed again and again: then it is the endpoint's failure, as any connection error.
    api.hang_up_next(10);
    assert!(version(&dispatcher).await.is_err());
    assert_eq!(dispatcher.endpoints_in_backoff().len(), 1);
}

#[tokio::test]
async fn pveproxy_closing_connections_costs_no_request() {
    let (api, base) = cluster(Behaviour {
        idle_timeout: Some(Duration::from_millis(100)),
        max_requests_per_connection: Some(3),
        close_after_error: true,
        ..Behaviour::default()
    })
    .await;
    api.set_answer("/nodes/pve01/disks/list", Answer::Status(403));
    let dispatcher = std::sync::Arc::new(dispatcher(&base));
    for round in 0..4 {
        // Ten at once, an error answer among them, then quiet past the idle timeout.
        let all: Vec<_> = (0..10)
            .map(|_| {
                let dispatcher = dispatcher.clone();
                tokio::spawn(async move { version(&dispatcher).await })
            })
            .collect();
        for one in all {
            one.await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        let refused = dispatcher
            .call("/nodes/pve01/disks/list", |c| async move {
                c.get_nodes_node_disks_list().node("pve01").send().await
            })
            .await;
        assert!(refused.is_err());
        // Past the 100 ms idle timeout, so the next round finds its connections closed:
        // the closing is the server's, on its clock.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(dispatcher.endpoints_in_backoff().is_empty());
    let counts = dispatcher.request_counts();
    assert!(
        counts
            .iter()
            .all(|(_, status, _)| status == "200" || status == "403"),
        "{counts:?}"
    );
    assert!(api.connections() >= 8, "connections: {}", api.connections());
}

#[tokio::test]
async fn a_connection_limit_keeps_requests_to_that_many_connections() {
    let (api, base) = cluster(Behaviour::default()).await;
    api.set_latency(Duration::from_millis(30));
    let mut config = config_for(&base);
    config.max_connections_per_endpoint = Some(2);
    let dispatcher = std::sync::Arc::new(Dispatcher::new(&config).unwrap());
    let all: Vec<_> = (0..10)
        .map(|_| {
            let dispatcher = dispatcher.clone();
            tokio::spawn(async move { version(&dispatcher).await })
        })
        .collect();
    for one in all {
        one.await.unwrap().unwrap();
    }
    assert_eq!(api.stats().requests, 10);
    assert_eq!(
        api.connections(),
        2,
        "ten requests at once over two connections"
    );
}

#[tokio::test]
async fn closing_idle_connections_is_like_thirty_seconds_passing() {
    let (api, base) = cluster(Behaviour::default()).await;
    let client = client();
    get(&client, &base, "/version", false).await;
    get(&client, &base, "/version", false).await;
    assert_eq!(api.connections(), 1);
    api.close_idle_connections();
    // The close happens in the connection's own task; the client learns of it only when the
    // socket is read, so there is nothing to wait on but a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&client, &base, "/version", false).await.0, 200);
    assert_eq!(
        api.connections(),
        2,
        "the next request needed a new connection"
    );
}

#[tokio::test]
async fn gzipped_answers_decode_the_same_and_cost_fewer_bytes() {
    let (api, base) = cluster(Behaviour {
        gzip: true,
        ..Behaviour::default()
    })
    .await;
    let mut sent = Vec::new();
    let mut rows = Vec::new();
    for gzip in [false, true] {
        let mut config = config_for(&base);
        config.gzip = gzip;
        let dispatcher = Dispatcher::new(&config).unwrap();
        let before = api.stats().bytes_sent;
        let answer = dispatcher
            .call("/cluster/resources", |c| async move {
                c.get_cluster_resources().send().await
            })
            .await
            .unwrap();
        sent.push(api.stats().bytes_sent - before);
        rows.push(format!("{:?}", answer.data));
    }
    assert_eq!(rows[0], rows[1], "the same rows either way");
    assert!(sent[1] * 3 < sent[0], "bytes plain / gzipped: {sent:?}");
}
