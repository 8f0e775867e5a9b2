//! The exporter's own endpoint with `--web.config.file`: TLS and basic authentication.

mod support;

use std::path::Path;

use support::{FakeEndpoint, TOKEN_ID, TOKEN_SECRET};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/three-node")
}

#[tokio::test]
async fn tls_and_basic_auth_from_a_web_config_file() {
    let api = FakeEndpoint::scenario(&fixtures()).await;
    let dir = std::env::temp_dir().join(format!("pe-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    use proxmox_exporter::sim::{LOCALHOST_CERT_PEM, LOCALHOST_KEY_PEM};
    std::fs::write(dir.join("exporter.crt"), LOCALHOST_CERT_PEM).unwrap();
    std::fs::write(dir.join("exporter.key"), LOCALHOST_KEY_PEM).unwrap();
    let hash = bcrypt::hash("scrape-pass", 4).unwrap();
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: exporter.crt\n  key_file: exporter.key\n\
             basic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .unwrap();
    let config = dir.join("web.yml").display().to_string();
    let endpoint = api.url.to_string();
    let running = support::run_exporter(
        &["--web.config.file", &config],
        &[
            ("PROXMOX_EXPORTER_PROXMOX_ENDPOINTS", &endpoint),
            ("PROXMOX_EXPORTER_PROXMOX_TOKEN_ID", TOKEN_ID),
            ("PROXMOX_EXPORTER_PROXMOX_TOKEN", TOKEN_SECRET),
        ],
    );
    let port = running.address.rsplit(':').next().unwrap().to_owned();
    let url = format!("https://localhost:{port}/metrics");
    let trusting = || {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(LOCALHOST_CERT_PEM.as_bytes()).unwrap(),
            )
            .build()
            .unwrap()
    };
    let trusted = trusting();

    let anonymous = trusted.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let wrong = trusted
        .get(&url)
        .basic_auth("prometheus", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = trusted
        .get(&url)
        .basic_auth("prometheus", Some("scrape-pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.text().await.unwrap().contains("proxmox_up 1"));
    assert_eq!(api.hits(), 7, "refused scrapes cost no API request");

    let plain = reqwest::get(format!("http://localhost:{port}/metrics")).await;
    assert!(
        plain.is_err() || plain.unwrap().status() != 200,
        "plain HTTP answered"
    );

    // A client that connects and never starts its TLS handshake holds up nobody: a scrape
    // right after it is answered long before that handshake's 5 s run out.
    let _stalled = tokio::net::TcpStream::connect(&running.address)
        .await
        .unwrap();
    // Lets the listener accept the stalled connection first; nothing signals that from outside.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // A new client: a pooled connection would need no accept.
    let meanwhile = trusting()
        .get(&url)
        .basic_auth("prometheus", Some("scrape-pass"))
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
        .expect("a scrape behind a stalled TLS handshake");
    assert_eq!(meanwhile.status(), 200);
}

#[test]
fn a_bad_web_config_file_is_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("pe-web-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("web.yml");
    std::fs::write(&file, "basic_auth_users:\n  prometheus: not-a-hash\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxmox-exporter"))
        .args(["--web.config.file", &file.display().to_string()])
        .args(["--proxmox-endpoints", "https://pve1:8006/"])
        .args([
            "--proxmox-token-id",
            TOKEN_ID,
            "--proxmox-token",
            TOKEN_SECRET,
        ])
        .env_remove("PROXMOX_EXPORTER_WEB_CONFIG_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--web.config.file") && stderr.contains("basic_auth_users.prometheus"),
        "{stderr}"
    );
}
