//! Many targets from one exporter: `/pve` and `/probe` with modules, password logins and their
//! tickets, separate caches and dispatchers per target, and dropping idle targets.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use proxmox_exporter::pve::{Backoff, Credentials, Dispatcher, DispatcherConfig, Login};
use proxmox_exporter::sim::{Answers, SimApi};
use secrecy::SecretString;
use support::{FakeEndpoint, TOKEN_SECRET, get_text, serve_targets, targets, version};

const PASSWORD: &str = "correct horse battery staple";

/// A generated cluster on a loopback port, taking the support token: its API and base URL.
async fn simulated(nodes: usize, guests: usize) -> (SimApi, String) {
    let answers = Answers::generate(nodes, guests, 5, SystemTime::now());
    let endpoint = FakeEndpoint::serve(answers).await;
    (endpoint.api, endpoint.url.to_string())
}

fn login_config(endpoint: &str, renew_after: Duration) -> DispatcherConfig {
    DispatcherConfig {
        endpoints: vec![reqwest::Url::parse(endpoint).unwrap()],
        credentials: Credentials::Password(Login {
            user: "monitoring@pve".into(),
            password: SecretString::from(PASSWORD),
            renew_after,
        }),
        product: Default::default(),
        insecure: false,
        extra_roots: Vec::new(),
        timeout: Duration::from_secs(5),
        backoff: Backoff::default(),
        max_connections_per_endpoint: None,
        gzip: false,
        secret_file: None,
    }
}

#[tokio::test]
async fn a_password_logs_in_once_and_keeps_its_ticket() {
    let (api, endpoint) = simulated(2, 4).await;
    api.set_login("monitoring@pve", PASSWORD, Duration::from_secs(7200));
    let dispatcher =
        Arc::new(Dispatcher::new(&login_config(&endpoint, Duration::from_secs(3600))).unwrap());
    let mut asked = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let dispatcher = dispatcher.clone();
        asked.spawn(async move { version(&dispatcher).await });
    }
    while let Some(result) = asked.join_next().await {
        result.unwrap().unwrap();
    }
    version(&dispatcher).await.unwrap();
    assert_eq!(
        api.logins(),
        1,
        "one login for nine requests, eight at once"
    );
    assert_eq!(dispatcher.logins(), 1);
}

#[tokio::test]
async fn the_ticket_is_renewed_before_it_runs_out_and_after_it_is_refused() {
    let (api, endpoint) = simulated(2, 4).await;
    // Renewed by age: no request is ever refused.
    api.set_login("monitoring@pve", PASSWORD, Duration::from_secs(7200));
    let renewing = Dispatcher::new(&login_config(&endpoint, Duration::from_millis(200))).unwrap();
    version(&renewing).await.unwrap();
    // Ticket ages and lifetimes are durations: waited out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    version(&renewing).await.unwrap();
    assert_eq!(renewing.logins(), 2);
    assert!(
        renewing
            .request_counts()
            .iter()
            .all(|(_, status, _)| status != "401"),
        "{:?}",
        renewing.request_counts()
    );

    // The simulator's tickets last 300 ms: the refused ticket is replaced and the request
    // asked again, once.
    api.set_login("monitoring@pve", PASSWORD, Duration::from_millis(300));
    let refused = Dispatcher::new(&login_config(&endpoint, Duration::from_secs(3600))).unwrap();
    version(&refused).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    version(&refused).await.unwrap();
    assert_eq!(refused.logins(), 2);
}

#[tokio::test]
async fn a_wrong_password_is_a_401_and_never_shown() {
    let (api, endpoint) = simulated(2, 4).await;
    api.set_login(
        "monitoring@pve",
        "another password",
        Duration::from_secs(7200),
    );
    let dispatcher = Dispatcher::new(&login_config(&endpoint, Duration::from_secs(3600))).unwrap();
    let error = version(&dispatcher).await.unwrap_err();
    assert!(error.to_string().contains("HTTP 401"), "{error}");
    assert_eq!(error.path, "/access/ticket");
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        format!("{dispatcher:?}"),
    ] {
        assert!(!shown.contains(PASSWORD), "{shown}");
    }
    assert_eq!(api.logins(), 0);
}

/// `default`: the support token; `legacy`: a password. Both reach the plain-HTTP simulator
/// (`scheme: http`), on loopback only.
fn modules() -> String {
    format!(
        "default:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: {TOKEN_SECRET}\n  \
         scheme: http\n  allowed_targets: [127.0.0.0/8]\n\
         legacy:\n  user: monitoring@pve\n  password: {PASSWORD}\n  scheme: http\n"
    )
}

/// The simulator's `http://127.0.0.1:PORT/` as a target: `127.0.0.1:PORT`.
fn target_of(endpoint: &str) -> String {
    endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

#[tokio::test]
async fn each_target_has_its_own_cache_and_dispatcher() {
    let (a, a_url) = simulated(3, 12).await;
    let (b, b_url) = simulated(2, 6).await;
    b.set_login("monitoring@pve", PASSWORD, Duration::from_secs(7200));
    let kept = targets(&modules(), 10, Duration::from_secs(600));
    let base = serve_targets(kept.clone()).await;

    let a_pve = format!("{base}/pve?target={}", target_of(&a_url));
    let (status, text) = get_text(&a_pve).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("pve_node_info{id=\"node/pve03\""), "{text}");
    let a_asked = a.requests();
    // The same target again within the window: from the cache.
    get_text(&a_pve).await;
    assert_eq!(a.requests(), a_asked);

    // Another target with the password module: its own login, its own requests.
    let b_pve = format!("{base}/pve?module=legacy&target={}", target_of(&b_url));
    let (status, text) = get_text(&b_pve).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("pve_node_info{id=\"node/pve02\""), "{text}");
    assert!(!text.contains("node/pve03"), "{text}");
    assert_eq!(b.logins(), 1);
    assert_eq!(a.requests(), a_asked, "b's scrape asked a");
    assert_eq!(kept.len(), 2);

    // Its own self metrics: the requests this target's dispatcher made.
    let endpoint = b_url.trim_start_matches("http://").trim_end_matches('/');
    assert!(
        text.contains(&format!(
            "proxmox_exporter_api_requests_total{{endpoint=\"http://{endpoint}\""
        )),
        "{text}"
    );
    assert!(!text.contains(a_url.trim_start_matches("http://").trim_end_matches('/')));

    // cluster=0: only the node's parts, and no /cluster/resources asked.
    let before = a.requests();
    let (_, node_only) = get_text(&format!("{a_pve}&cluster=0")).await;
    assert!(node_only.contains("pve_subscription_info"), "{node_only}");
    assert!(!node_only.contains("pve_guest_info"), "{node_only}");
    assert!(!node_only.contains("proxmox_up"), "{node_only}");
    // /cluster/status, subscription, replication, the two guest lists and the configs.
    let configs = a.requests() - before - 5;
    assert!(configs > 0 && configs <= 12, "{configs}");
}

#[tokio::test]
async fn idle_targets_are_dropped_and_the_number_kept_is_bounded() {
    let (_a, a_url) = simulated(2, 4).await;
    let (_b, b_url) = simulated(2, 4).await;
    let kept = targets(&modules(), 1, Duration::from_millis(100));
    let base = serve_targets(kept.clone()).await;
    get_text(&format!("{base}/pve?target={}", target_of(&a_url))).await;
    get_text(&format!("{base}/pve?target={}", target_of(&b_url))).await;
    assert_eq!(kept.len(), 1, "at most one target kept");
    // Idleness is a duration, and sweeps come at most once a second: waited out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The next scrape sweeps: the idle target goes, the new one stays.
    kept.get("default", &target_of(&a_url)).unwrap();
    assert_eq!(kept.len(), 1);
    let generous = targets(&modules(), 10, Duration::from_millis(100));
    generous.get("default", &target_of(&a_url)).unwrap();
    generous.get("default", &target_of(&b_url)).unwrap();
    assert_eq!(generous.len(), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    generous.get("default", &target_of(&a_url)).unwrap();
    assert_eq!(generous.len(), 1, "the idle one is dropped");
}

#[tokio::test]
async fn probe_serves_our_families_and_bad_queries_get_400() {
    let (_a, a_url) = simulated(3, 12).await;
    let base = serve_targets(targets(&modules(), 10, Duration::from_secs(600))).await;
    let (status, text) = get_text(&format!("{base}/probe?target={}", target_of(&a_url))).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("proxmox_up 1"), "{text}");
    assert!(text.contains("proxmox_node_up{"), "{text}");
    assert!(!text.contains("pve_up"), "{text}");

    let (status, text) = get_text(&format!("{base}/pve?module=nope&target=x")).await;
    assert_eq!(
        (status, text.as_str()),
        (400, "Module 'nope' not found in config")
    );
    let (status, text) = get_text(&format!("{base}/probe?module=nope&target=x")).await;
    assert_eq!(status, 400, "{text}");
    let (status, text) = get_text(&format!("{base}/pve?target=a%20b")).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("target `a b`"), "{text}");
    // /metrics with no cluster of its own: the exporter's state only.
    let (status, text) = get_text(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert!(text.contains("proxmox_exporter_targets 1"), "{text}");
}

#[tokio::test]
async fn a_target_whose_api_fails_answers_with_what_did_answer() {
    let (a, a_url) = simulated(3, 12).await;
    a.set_answer("/version", proxmox_exporter::sim::Answer::Status(500));
    a.set_answer(
        "/cluster/backup-info/not-backed-up",
        proxmox_exporter::sim::Answer::Status(403),
    );
    let base = serve_targets(targets(&modules(), 10, Duration::from_secs(600))).await;
    let (status, text) = get_text(&format!("{base}/pve?target={}", target_of(&a_url))).await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("pve_version_info"), "{text}");
    assert!(!text.contains("pve_not_backed_up"), "{text}");
    assert!(text.contains("pve_guest_info"), "{text}");
    assert!(
        text.contains("proxmox_exporter_collector_success{collector=\"version\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("proxmox_exporter_collector_success{collector=\"backup_info\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("proxmox_exporter_collector_success{collector=\"resources\"} 1"),
        "{text}"
    );
}

/// A listener on 127.0.0.1 that counts the connections made to it.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, count)
}

/// The report that made the rule: `/pve?target=http://127.0.0.1:PORT` sent the module's token
/// in plain HTTP to whatever listened there. Now a plain-HTTP target is a 400 and a host
/// outside the module's allowed targets a 403, and neither is connected to.
#[tokio::test]
async fn credentials_go_neither_over_plain_http_nor_outside_the_allowed_targets() {
    let (port, connections) = counting_listener().await;
    let yaml = format!(
        "open:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: {TOKEN_SECRET}\n\
         listed:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: {TOKEN_SECRET}\n  \
         allowed_targets: [pve1.example.com, 10.0.0.0/8]\n"
    );
    let base = serve_targets(targets(&yaml, 10, Duration::from_secs(600))).await;
    for module in ["open", "listed"] {
        for target in [
            format!("http://127.0.0.1:{port}"),
            format!("http://127.0.0.1:{port}/"),
            format!("HTTP://127.0.0.1:{port}"),
        ] {
            let url = format!("{base}/pve?module={module}&target={target}");
            let (status, text) = get_text(&url).await;
            assert_eq!(status, 400, "{module} {target}: {text}");
            assert!(text.contains("HTTPS only"), "{text}");
            assert!(!text.contains(TOKEN_SECRET));
        }
    }
    for path in ["pve", "probe"] {
        let url = format!("{base}/{path}?module=listed&target=127.0.0.1:{port}");
        let (status, text) = get_text(&url).await;
        assert_eq!(status, 403, "{text}");
        assert!(
            text.contains("127.0.0.1") && text.contains("module listed"),
            "{text}"
        );
        assert!(!text.contains(TOKEN_SECRET));
        // One host of several outside the list refuses the whole target.
        let url = format!("{base}/{path}?module=listed&target=10.0.0.1,127.0.0.1:{port}");
        assert_eq!(get_text(&url).await.0, 403);
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a refused target was connected to"
    );
    // The open module still goes anywhere over HTTPS, as prometheus-pve-exporter does: the
    // listener sees the TLS attempt.
    let url = format!("{base}/pve?module=open&target=127.0.0.1:{port}");
    assert_eq!(get_text(&url).await.0, 200);
    assert!(connections.load(Ordering::SeqCst) > 0);
}

/// Whatever `target` and `module` a client sends: 200 with data, 400 or 403, never a panic,
/// and never a connection to a host the rules forbid (the listener on 127.0.0.1 is not among
/// the allowed targets; the allowed ones, 127.0.0.3 and localhost:1, refuse connections).
mod any_query {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    struct Setup {
        runtime: tokio::runtime::Runtime,
        base: String,
        port: u16,
        connections: Arc<AtomicUsize>,
    }

    fn setup() -> &'static Setup {
        static SETUP: OnceLock<Setup> = OnceLock::new();
        SETUP.get_or_init(|| {
            // The test's own client needs it; the exporter installs it with its first target.
            proxmox_exporter::pve::dispatcher::install_crypto_provider();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let (base, port, connections) = runtime.block_on(async {
                let (port, connections) = counting_listener().await;
                let yaml = format!(
                    "default:\n  user: monitoring@pve\n  token_name: exporter\n  \
                     token_value: {TOKEN_SECRET}\n  allowed_targets: [127.0.0.3, \"localhost:1\"]\n\
                     plain:\n  user: monitoring@pve\n  password: {PASSWORD}\n  scheme: http\n  \
                     allowed_targets: [127.0.0.3]\n"
                );
                let kept = targets(&yaml, 1000, Duration::from_secs(600));
                (serve_targets(kept).await, port, connections)
            });
            Setup {
                runtime,
                base,
                port,
                connections,
            }
        })
    }

    /// Targets built from the pieces that have fooled URL parsers, around the listener's
    /// address, plus arbitrary text.
    /// One of `items`, the first `first_weight` times as likely as each other.
    fn weighted(items: Vec<String>, first_weight: u32) -> BoxedStrategy<String> {
        let mut options: Vec<(u32, BoxedStrategy<String>)> = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let weight = if i == 0 { first_weight } else { 1 };
            options.push((weight, Just(item).boxed()));
        }
        prop::strategy::Union::new_weighted(options).boxed()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Targets built from the pieces that have fooled URL parsers, around the listener's
    /// address (often exactly it), plus arbitrary text.
    fn target() -> impl Strategy<Value = String> {
        let port = setup().port;
        let scheme = weighted(
            strings(&[
                "", "https://", "http://", "HTTPS://", "hTtP://", "ftp://", "//", "https:",
                "file://",
            ]),
            8,
        );
        let user = weighted(strings(&["", "user:pass@", "user@", "@", "a%40b@"]), 8);
        let host = weighted(
            vec![
                "127.0.0.1".to_owned(),
                "127.0.0.3".to_owned(),
                "127.1".to_owned(),
                "0x7f.1".to_owned(),
                "2130706433".to_owned(),
                "[::1]".to_owned(),
                "::1".to_owned(),
                "[::ffff:127.0.0.1]".to_owned(),
                "fe80::1%25lo".to_owned(),
                "[fe80::1%lo]".to_owned(),
                "localhost".to_owned(),
                "LOCALHOST".to_owned(),
                "127.0.0.1.nip.io".to_owned(),
                "пример.рф".to_owned(),
                "xn--e1afmkfd.xn--p1ai".to_owned(),
                "%31%32%37.0.0.1".to_owned(),
                "a".repeat(300),
                "..".to_owned(),
                String::new(),
            ],
            8,
        );
        let port_text = weighted(
            vec![
                format!(":{port}"),
                String::new(),
                ":1".to_owned(),
                ":0".to_owned(),
                ":65536".to_owned(),
                ":99999999999".to_owned(),
                ":-1".to_owned(),
                ":".to_owned(),
                format!(":{port}:{port}"),
            ],
            8,
        );
        let rest = weighted(
            strings(&[
                "",
                "/",
                "/api2/json/cluster/resources",
                "/..",
                "/../../",
                "?target=x",
                "#frag",
                "\\",
                "%2F",
                ",127.0.0.3",
                ", ",
                " ",
            ]),
            8,
        );
        prop_oneof![
            6 => (scheme, user, host, port_text, rest)
                .prop_map(|(s, u, h, p, r)| format!("{s}{u}{h}{p}{r}")),
            1 => "\\PC{0,60}",
        ]
    }

    fn module() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => prop::sample::select(vec!["default".to_owned(), "plain".to_owned()]),
            1 => "\\PC{0,20}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn no_query_reaches_a_forbidden_host(target in target(), module in module(), pve in any::<bool>()) {
            let setup = setup();
            let mut url = reqwest::Url::parse(&setup.base).unwrap();
            url.set_path(if pve { "/pve" } else { "/probe" });
            url.query_pairs_mut().append_pair("target", &target).append_pair("module", &module);
            let (status, text) = setup.runtime.block_on(get_text(url.as_str()));
            prop_assert!([200, 400, 403].contains(&status), "{status} for {target:?}: {text}");
            prop_assert!(!text.contains(TOKEN_SECRET) && !text.contains(PASSWORD));
            prop_assert_eq!(setup.connections.load(Ordering::SeqCst), 0, "connected for {:?}", target);
        }
    }
}
