//! TLS toward the API: certificates are verified unless `--proxmox-api-insecure` says otherwise.

mod support;

use std::sync::Arc;

use proxmox_exporter::pve::{Dispatcher, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const BODY: &str = r#"{"data":[{"id":"node/pve1","type":"node","node":"pve1","status":"online"}]}"#;

/// An HTTPS endpoint with a self-signed certificate, like a fresh PVE install. It answers every
/// request with `BODY` and counts the requests that got past the handshake.
async fn self_signed_endpoint() -> (reqwest::Url, Arc<std::sync::atomic::AtomicUsize>) {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
                    BODY.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let url = reqwest::Url::parse(&format!("https://localhost:{port}/")).unwrap();
    (url, served)
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused_by_default() {
    let (url, served) = self_signed_endpoint().await;
    let dispatcher = Dispatcher::new(&support::config(vec![url])).unwrap();
    let error = dispatcher
        .call("/cluster/resources", |c| async move {
            c.get_cluster_resources().send().await
        })
        .await
        .unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Connection(_)), "{error}");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn insecure_accepts_it() {
    let (url, served) = self_signed_endpoint().await;
    let mut config = support::config(vec![url]);
    config.insecure = true;
    let dispatcher = Dispatcher::new(&config).unwrap();
    let answer = dispatcher
        .call("/cluster/resources", |c| async move {
            c.get_cluster_resources().send().await
        })
        .await
        .unwrap();
    assert_eq!(answer.data.len(), 1);
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1);
}
