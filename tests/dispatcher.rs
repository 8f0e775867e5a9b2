//! The dispatcher against in-process fake endpoints: endpoint choice, retry and backoff.

mod support;

use std::time::Duration;

use proxmox_exporter::pve::{ApiError, ApiToken, Dispatcher, ErrorKind, Known};
use support::{FakeEndpoint, Mode, TOKEN_ID, config, dead_url};

const RESOURCES: &str = r#"{"data":[{"id":"node/pve1","type":"node","node":"pve1",
    "status":"online","maxcpu":8,"maxmem":"34359738368"}]}"#;
const PATH: &str = "/cluster/resources";

async fn serving() -> FakeEndpoint {
    FakeEndpoint::start(Mode::Serve, &[(PATH, RESOURCES)]).await
}

async fn resources(dispatcher: &Dispatcher) -> Result<usize, ApiError> {
    let answer = dispatcher
        .call(
            PATH,
            |c| async move { c.get_cluster_resources().send().await },
        )
        .await?;
    assert_eq!(answer.data[0].maxmem.known(), Some(34_359_738_368));
    Ok(answer.data.len())
}

fn status_of(error: &ApiError) -> Option<u16> {
    match error.kind {
        ErrorKind::Status(s) => Some(s.as_u16()),
        _ => None,
    }
}

#[tokio::test]
async fn a_dead_endpoint_never_fails_a_request_while_another_works() {
    let live = serving().await;
    let refused = dead_url().await;
    let erroring = FakeEndpoint::start(Mode::Status(500), &[]).await;
    let tls_broken = FakeEndpoint::start(Mode::Serve, &[(PATH, RESOURCES)]).await;
    let mut cfg = config(vec![
        refused.clone(),
        erroring.url.clone(),
        tls_broken.as_https(),
        live.url.clone(),
    ]);
    cfg.backoff.initial = Duration::from_secs(60);
    let dispatcher = Dispatcher::new(&cfg).unwrap();
    for _ in 0..40 {
        assert_eq!(resources(&dispatcher).await.unwrap(), 1);
    }
    let mut in_backoff = dispatcher.endpoints_in_backoff();
    in_backoff.sort();
    let mut broken = vec![
        format!("http://{}", refused.authority()),
        format!("http://{}", erroring.url.authority()),
        format!("https://{}", tls_broken.url.authority()),
    ];
    broken.sort();
    assert_eq!(in_backoff, broken);
    // Each broken endpoint was tried, then left alone while in backoff.
    assert_eq!(erroring.hits(), 1);
    assert_eq!(tls_broken.hits(), 0, "TLS never got as far as HTTP");
    let counts = dispatcher.request_counts();
    let status_of = |label: &str| {
        counts
            .iter()
            .filter(|(_, s, _)| s == label)
            .map(|(_, _, n)| n)
            .sum::<u64>()
    };
    assert_eq!(status_of("200"), 40);
    assert_eq!(status_of("connection_error"), 2, "{counts:?}");
    assert_eq!(status_of("500"), 1, "{counts:?}");
}

#[tokio::test]
async fn a_timeout_is_retried_elsewhere() {
    let slow = FakeEndpoint::start(Mode::Slow(Duration::from_secs(3)), &[(PATH, RESOURCES)]).await;
    let live = serving().await;
    let mut cfg = config(vec![slow.url.clone(), live.url.clone()]);
    cfg.timeout = Duration::from_millis(300);
    let dispatcher = Dispatcher::new(&cfg).unwrap();
    for _ in 0..6 {
        resources(&dispatcher).await.unwrap();
    }
    assert!(
        slow.hits() <= 2,
        "slow endpoint asked {} times",
        slow.hits()
    );
}

#[tokio::test]
async fn unauthorized_and_forbidden_are_not_retried() {
    for code in [401, 403] {
        let a = FakeEndpoint::start(Mode::Status(code), &[]).await;
        let b = FakeEndpoint::start(Mode::Status(code), &[]).await;
        let dispatcher = Dispatcher::new(&config(vec![a.url.clone(), b.url.clone()])).unwrap();
        let error = resources(&dispatcher).await.unwrap_err();
        assert_eq!(status_of(&error), Some(code));
        assert_eq!(a.hits() + b.hits(), 1, "HTTP {code} was retried");
        assert!(dispatcher.endpoints_in_backoff().is_empty());
        let text = error.to_string();
        assert!(
            text.contains(PATH) && text.contains(&code.to_string()),
            "{text}"
        );
        assert!(
            text.contains("PVEAuditor") || text.contains("token"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_500_with_pves_message_is_the_apis_answer_not_an_endpoint_fault() {
    use proxmox_exporter::sim::Answer;
    let a = serving().await;
    let b = serving().await;
    let message = "pveceph configuration not initialized";
    for endpoint in [&a, &b] {
        endpoint
            .api
            .set_answer(PATH, Answer::Message(500, message.into()));
    }
    let dispatcher = Dispatcher::new(&config(vec![a.url.clone(), b.url.clone()])).unwrap();
    let error = resources(&dispatcher).await.unwrap_err();
    // Another endpoint would say the same: one request, no backoff, the message kept.
    assert_eq!(a.hits() + b.hits(), 1);
    assert!(dispatcher.endpoints_in_backoff().is_empty());
    assert!(
        matches!(&error.kind, ErrorKind::Refused { status, reason }
            if status.as_u16() == 500 && reason == message),
        "{error:?}"
    );
    assert!(error.to_string().contains(message), "{error}");
    // A bare 500 is still the endpoint's fault: retried on the other, which is held back.
    a.api.set_answer(PATH, Answer::Status(500));
    b.api.clear_answers();
    let before = a.hits();
    for _ in 0..200 {
        assert_eq!(resources(&dispatcher).await.unwrap(), 1);
        if a.hits() > before {
            break; // the random choice reached the failing endpoint
        }
    }
    assert_eq!(
        dispatcher.endpoints_in_backoff(),
        [format!("http://{}", a.url.authority())]
    );
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_the_secret_never_shows() {
    let live = serving().await;
    let mut cfg = config(vec![live.url.clone()]);
    cfg.credentials = ApiToken {
        id: TOKEN_ID.into(),
        secret: "wrong-secret-value".into(),
    }
    .into();
    let dispatcher = Dispatcher::new(&cfg).unwrap();
    let error = resources(&dispatcher).await.unwrap_err();
    assert_eq!(status_of(&error), Some(401));
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        format!("{dispatcher:?}"),
        format!("{cfg:?}"),
    ] {
        assert!(!shown.contains("wrong-secret-value"), "{shown}");
    }
}

#[tokio::test]
async fn node_unreachable_puts_no_endpoint_in_backoff() {
    for code in [595, 596] {
        let a = FakeEndpoint::start(Mode::Status(code), &[]).await;
        let b = FakeEndpoint::start(Mode::Status(code), &[]).await;
        let dispatcher = Dispatcher::new(&config(vec![a.url.clone(), b.url.clone()])).unwrap();
        for _ in 0..5 {
            let error = resources(&dispatcher).await.unwrap_err();
            assert_eq!(status_of(&error), Some(code));
            assert!(error.kind.is_node_unreachable());
        }
        assert!(dispatcher.endpoints_in_backoff().is_empty());
        // Not retried: the node behind would be just as unreachable from elsewhere.
        assert_eq!(a.hits() + b.hits(), 5);
    }
}

#[tokio::test]
async fn backoff_recovers_and_requests_still_go_out_when_all_are_in_backoff() {
    let flaky = FakeEndpoint::start(Mode::Status(503), &[(PATH, RESOURCES)]).await;
    let dispatcher = Dispatcher::new(&config(vec![flaky.url.clone()])).unwrap();

    assert_eq!(
        status_of(&resources(&dispatcher).await.unwrap_err()),
        Some(503)
    );
    assert_eq!(dispatcher.endpoints_in_backoff().len(), 1);
    // Every endpoint is in backoff: the request is made anyway.
    assert!(resources(&dispatcher).await.is_err());
    assert_eq!(flaky.hits(), 2);

    flaky.set_mode(Mode::Serve);
    assert_eq!(resources(&dispatcher).await.unwrap(), 1);
    assert!(dispatcher.endpoints_in_backoff().is_empty());
}

#[tokio::test]
async fn a_recovered_endpoint_is_chosen_again_after_its_backoff() {
    let flaky = FakeEndpoint::start(Mode::Status(502), &[(PATH, RESOURCES)]).await;
    let steady = serving().await;
    // A backoff long enough that a loaded machine still makes requests inside it; the
    // requests below stop at half of it, however many that is.
    let backoff = Duration::from_millis(1000);
    let mut settings = config(vec![flaky.url.clone(), steady.url.clone()]);
    settings.backoff.initial = backoff;
    let dispatcher = Dispatcher::new(&settings).unwrap();
    while flaky.hits() == 0 {
        resources(&dispatcher).await.unwrap();
    }
    let failed_at = std::time::Instant::now();
    flaky.set_mode(Mode::Serve);
    let during = flaky.hits();
    let mut asked = 0;
    while failed_at.elapsed() < backoff / 2 {
        resources(&dispatcher).await.unwrap();
        asked += 1;
    }
    assert!(asked > 0);
    assert_eq!(flaky.hits(), during, "used while in backoff");
    // Waits on time: the backoff is a duration, and its end is what is tested.
    tokio::time::sleep_until((failed_at + backoff + Duration::from_millis(100)).into()).await;
    for _ in 0..60 {
        resources(&dispatcher).await.unwrap();
    }
    assert!(
        flaky.hits() > during + 5,
        "never chosen again: {}",
        flaky.hits()
    );
}

#[tokio::test]
async fn requests_spread_over_healthy_endpoints() {
    let endpoints = [serving().await, serving().await, serving().await];
    let urls = endpoints.iter().map(|e| e.url.clone()).collect();
    let dispatcher = Dispatcher::new(&config(urls)).unwrap();
    for _ in 0..90 {
        resources(&dispatcher).await.unwrap();
    }
    for e in &endpoints {
        // Uniform choice: 30 expected each; below 10 would be a broken choice, not chance.
        assert!(e.hits() >= 10, "hits: {}", e.hits());
    }
}

#[tokio::test]
async fn broken_answers_are_not_retried_and_name_the_path() {
    let garbage = FakeEndpoint::start(Mode::Serve, &[(PATH, "<html>oops</html>")]).await;
    let other = FakeEndpoint::start(Mode::Serve, &[(PATH, "<html>oops</html>")]).await;
    let dispatcher =
        Dispatcher::new(&config(vec![garbage.url.clone(), other.url.clone()])).unwrap();
    let error = resources(&dispatcher).await.unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Decode(_)), "{error}");
    assert!(error.to_string().contains(PATH));
    assert!(
        !error.to_string().contains("oops"),
        "the body leaked into {error}"
    );
    assert_eq!(garbage.hits() + other.hits(), 1);
}

#[tokio::test]
async fn connections_are_reused() {
    let endpoint = serving().await;
    let dispatcher = Dispatcher::new(&config(vec![endpoint.url.clone()])).unwrap();
    for _ in 0..25 {
        resources(&dispatcher).await.unwrap();
    }
    assert_eq!(endpoint.hits(), 25);
    assert_eq!(
        endpoint.api.connections(),
        1,
        "one connection for sequential requests"
    );
}

/// An endpoint whose `/cluster/resources` is one byte over the answer limit.
async fn huge_answer() -> FakeEndpoint {
    use proxmox_exporter::pve::client::MAX_ANSWER_BYTES;
    let mut body = vec![b' '; MAX_ANSWER_BYTES as usize + 1];
    body[..9].copy_from_slice(b"{\"data\":[");
    FakeEndpoint::serve(proxmox_exporter::sim::Answers(
        [(
            PATH.to_owned(),
            proxmox_exporter::sim::Answer::Json(body.into()),
        )]
        .into(),
    ))
    .await
}

/// `/cluster/resources` decoded as it arrives.
async fn streamed(
    dispatcher: &Dispatcher,
) -> Result<proxmox_exporter::pve::client::types::GetClusterResourcesResponse, ApiError> {
    dispatcher
        .call(PATH, |c| async move {
            proxmox_exporter::pve::stream::get(&c, PATH).await
        })
        .await
}

#[tokio::test]
async fn a_huge_answer_is_refused_not_buffered() {
    let huge = huge_answer().await;
    let dispatcher = Dispatcher::new(&config(vec![huge.url.clone()])).unwrap();
    let error = resources(&dispatcher).await.unwrap_err();
    assert!(error.to_string().contains("over the limit"), "{error}");
}

#[tokio::test]
async fn a_huge_answer_without_a_length_is_cut_and_refused() {
    use axum::body::Body;
    use proxmox_exporter::pve::client::MAX_ANSWER_BYTES;
    // An endpoint that streams an endless body without Content-Length.
    let app = axum::Router::new().fallback(|| async {
        let chunk = bytes::Bytes::from(vec![b' '; 1 << 20]);
        let stream = futures_stream(chunk);
        axum::response::Response::new(Body::from_stream(stream))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = reqwest::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dispatcher = Dispatcher::new(&config(vec![url])).unwrap();
    let error = resources(&dispatcher).await.unwrap_err();
    assert!(error.to_string().contains("over the limit"), "{error}");
    // The stream is 1 GiB: far past the limit.
    const { assert!(MAX_ANSWER_BYTES < 1 << 30) };
}

/// 1 GiB in chunks, far past the limit; the client stops reading long before the end.
fn futures_stream(
    chunk: bytes::Bytes,
) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    struct Endless(bytes::Bytes, usize);
    impl futures_core::Stream for Endless {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.1 == 0 {
                return std::task::Poll::Ready(None);
            }
            self.1 -= 1;
            std::task::Poll::Ready(Some(Ok(self.0.clone())))
        }
    }
    Endless(chunk, 1024)
}

#[tokio::test]
async fn a_streamed_answer_is_decoded_as_it_arrives_and_refused_over_the_limit() {
    let endpoint = serving().await;
    let dispatcher = Dispatcher::new(&config(vec![endpoint.url.clone()])).unwrap();
    let decoded = streamed(&dispatcher).await.unwrap();
    let generated = dispatcher
        .call(
            PATH,
            |c| async move { c.get_cluster_resources().send().await },
        )
        .await
        .unwrap();
    assert_eq!(
        format!("{:?}", decoded.data),
        format!("{:?}", generated.data)
    );

    let garbage = FakeEndpoint::start(Mode::Serve, &[(PATH, "{\"data\":[{\"id\":")]).await;
    let dispatcher = Dispatcher::new(&config(vec![garbage.url.clone()])).unwrap();
    let error = streamed(&dispatcher).await.unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Decode(_)), "{error}");

    let huge = huge_answer().await;
    let dispatcher = Dispatcher::new(&config(vec![huge.url.clone()])).unwrap();
    let error = streamed(&dispatcher).await.unwrap_err();
    assert!(error.to_string().contains("over the limit"), "{error}");
}
