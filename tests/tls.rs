//! TLS toward the API: certificates are verified unless `--proxmox-api-insecure` says otherwise.

mod support;

use proxmox_exporter::pve::{Dispatcher, ErrorKind};
use proxmox_exporter::sim::{Answer, Answers, SimApi, self_signed_with_pem};

const BODY: &str = r#"{"data":[{"id":"node/pve1","type":"node","node":"pve1","status":"online"}]}"#;

/// An HTTPS endpoint with a self-signed certificate, like a fresh PVE install; and the
/// certificate's PEM.
async fn self_signed_endpoint() -> (reqwest::Url, SimApi, String) {
    let answers = Answers(
        [(
            "/cluster/resources".to_owned(),
            Answer::Json(BODY.as_bytes().to_vec().into()),
        )]
        .into(),
    );
    let api = SimApi::new(answers, support::TOKEN_ID, support::TOKEN_SECRET);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (acceptor, pem) = self_signed_with_pem().unwrap();
    tokio::spawn(api.clone().serve_tls(listener, acceptor));
    let url = reqwest::Url::parse(&format!("https://localhost:{port}/")).unwrap();
    (url, api, pem)
}

/// Rows in the endpoint's `/cluster/resources` answer.
async fn resources(dispatcher: &Dispatcher) -> Result<usize, proxmox_exporter::pve::ApiError> {
    let answer = dispatcher
        .call("/cluster/resources", |c| async move {
            c.get_cluster_resources().send().await
        })
        .await?;
    Ok(answer.data.len())
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused_by_default() {
    let (url, api, _) = self_signed_endpoint().await;
    let dispatcher = Dispatcher::new(&support::config(vec![url])).unwrap();
    let error = resources(&dispatcher).await.unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Connection(_)), "{error}");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
    assert_eq!(api.requests(), 0, "no request got past the handshake");
}

#[tokio::test]
async fn insecure_accepts_it_and_keeps_one_connection() {
    let (url, api, _) = self_signed_endpoint().await;
    let mut config = support::config(vec![url]);
    config.insecure = true;
    let dispatcher = Dispatcher::new(&config).unwrap();
    for _ in 0..10 {
        assert_eq!(resources(&dispatcher).await.unwrap(), 1);
    }
    assert_eq!(api.requests(), 10);
    assert_eq!(api.connections(), 1, "one TLS handshake for ten requests");
}

#[tokio::test]
async fn a_trusted_ca_file_verifies_without_insecure() {
    let (url, api, pem) = self_signed_endpoint().await;
    let mut config = support::config(vec![url]);
    config.extra_roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).unwrap();
    let dispatcher = Dispatcher::new(&config).unwrap();
    assert_eq!(resources(&dispatcher).await.unwrap(), 1);
    assert_eq!(api.requests(), 1);
}
