//! TLS for the servers in this crate: a listener that completes the handshake before axum
//! sees a connection, and server configurations from PEM files.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

/// Accepts TCP connections and completes the TLS handshake before handing them to axum.
pub struct TlsListener {
    tcp: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, tls: tokio_rustls::TlsAcceptor) -> Self {
        TlsListener { tcp, tls }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, peer)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let handshake = tokio::time::timeout(Duration::from_secs(5), self.tls.accept(stream));
            if let Ok(Ok(tls)) = handshake.await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A TLS acceptor from a PEM certificate chain and a PEM private key.
pub fn acceptor_from_files(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    crate::pve::dispatcher::install_crypto_provider();
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
