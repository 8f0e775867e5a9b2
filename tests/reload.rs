//! What changes while the exporter runs. Secrets that rotate: a token file replaced (a
//! Kubernetes Secret, a systemd credential, a Vault agent) is used from the next window on,
//! without a restart, for the flags' cluster and for a module's targets alike. Configuration
//! reloaded on SIGHUP or `POST /-/reload`: a good file is used, a broken one refused while the
//! running configuration stays, and the metrics say which.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{FakeEndpoint, TOKEN_ID, TOKEN_SECRET, get_text, serve_targets, targets_with};

const ROTATED: &str = "7a1c9e00-rotated-0000-4000-8000-0123456789ab";

fn three_node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/three-node")
}

/// A folder of its own for one test's secret files.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pve-secrets-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replaces `path`'s content the way Kubernetes does: a new file moved over the old one.
fn rotate(path: &Path, secret: &str) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, format!("{secret}\n")).unwrap();
    std::fs::rename(&fresh, path).unwrap();
}

#[tokio::test]
async fn a_rotated_token_file_is_used_in_the_next_window_without_a_restart() {
    let api = FakeEndpoint::scenario(&three_node_dir()).await;
    let dir = folder("flags");
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN_SECRET}\n")).unwrap();
    let running = support::run_exporter(
        &[
            "--proxmox-endpoints",
            api.url.as_str(),
            "--proxmox-token-id",
            TOKEN_ID,
            "--proxmox-token-file",
            token_file.to_str().unwrap(),
            "--cache-duration",
            "1",
        ],
        &[],
    );
    let url = format!("http://{}/metrics", running.address);
    let (_, text) = get_text(&url).await;
    assert!(text.contains("proxmox_up 1"), "{text}");

    // The cluster takes only the new secret from now on; the file holds it a moment later.
    api.api.set_token(TOKEN_ID, ROTATED);
    rotate(&token_file, ROTATED);
    // The next window (the cache lasts 1 s: only waiting ends it).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, text) = get_text(&url).await;
    assert!(text.contains("proxmox_up 1"), "not followed: {text}");
    assert!(
        text.contains("proxmox_exporter_collector_success{collector=\"node_disks\"} 1"),
        "{text}"
    );
    // The requests sent with the old secret were refused, then asked again with the new one.
    assert!(text.contains("status=\"401\"}"), "{text}");
    let failing: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("proxmox_exporter_collector_success{") && l.ends_with(" 0"))
        .collect();
    assert!(failing.is_empty(), "{failing:?}");
    let logs: Vec<String> = running.logs.try_iter().collect();
    let all = logs.join("\n") + &running.startup.join("\n");
    assert!(
        !all.contains(ROTATED) && !all.contains(TOKEN_SECRET),
        "{all}"
    );
    assert!(all.contains("secret file changed"), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_modules_rotated_token_value_file_is_used_by_its_targets() {
    let api = FakeEndpoint::scenario(&three_node_dir()).await;
    let dir = folder("module");
    let token_file = dir.join("pve-token");
    std::fs::write(&token_file, TOKEN_SECRET).unwrap();
    let yaml = format!(
        "default:\n  user: monitoring@pve\n  token_name: exporter\n  token_value_file: {}\n  \
         scheme: http\n  allowed_targets: [127.0.0.1]\n",
        token_file.display()
    );
    // The window: 1 s.
    let kept = targets_with(&yaml, 10, Duration::from_secs(600), Duration::from_secs(1));
    let base = serve_targets(kept).await;
    let target = api.target();
    let pve = format!("{base}/pve?target={target}");
    let (status, text) = get_text(&pve).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("pve_up{id=\"node/"), "{text}");

    api.api.set_token(TOKEN_ID, ROTATED);
    rotate(&token_file, ROTATED);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, text) = get_text(&pve).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("proxmox_exporter_collector_success{collector=\"resources\"} 1"),
        "not followed: {text}"
    );
    assert!(!text.contains(ROTATED));
    let _ = std::fs::remove_dir_all(&dir);
}

fn reload_families(text: &str) -> (Option<f64>, Option<f64>) {
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    (
        value("proxmox_exporter_config_last_reload_successful"),
        value("proxmox_exporter_config_last_reload_success_timestamp_seconds"),
    )
}

/// Waits (up to 10 s) until `/metrics` says the last reload succeeded (`true`) or failed.
async fn reloaded(metrics: &str, successful: bool) -> String {
    let expected = if successful { 1.0 } else { 0.0 };
    for _ in 0..100 {
        let (_, text) = get_text(metrics).await;
        if reload_families(&text).0 == Some(expected) {
            return text;
        }
        // A signal is handled in the exporter's own time: polled.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the reload never showed as {successful}");
}

#[tokio::test]
async fn sighup_and_post_reload_use_a_good_file_and_refuse_a_broken_one() {
    let api = FakeEndpoint::scenario(&three_node_dir()).await;
    let target = api.target();
    let dir = folder("reload");
    let pve_yml = dir.join("pve.yml");
    let module = |name: &str| {
        format!(
            "{name}:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: {TOKEN_SECRET}\n  \
             scheme: http\n  allowed_targets: [127.0.0.1]\n"
        )
    };
    std::fs::write(&pve_yml, module("first")).unwrap();
    let running = support::run_exporter(
        &[
            "--config.file",
            pve_yml.to_str().unwrap(),
            "--web.enable-lifecycle",
        ],
        &[],
    );
    let base = format!("http://{}", running.address);
    let metrics = format!("{base}/metrics");
    let pve = |module: &str| format!("{base}/pve?module={module}&target={target}");
    let (_, text) = get_text(&metrics).await;
    let (successful, started) = reload_families(&text);
    assert_eq!(successful, Some(1.0), "the start counts as a load: {text}");
    assert_eq!(get_text(&pve("first")).await.0, 200);

    // A good file through POST /-/reload: the new module serves, the removed one is gone.
    std::fs::write(&pve_yml, module("second")).unwrap();
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(get_text(&pve("second")).await.0, 200);
    let (status, text) = get_text(&pve("first")).await;
    assert_eq!(
        (status, text.as_str()),
        (400, "Module 'first' not found in config")
    );
    let (_, text) = get_text(&metrics).await;
    let (successful, at) = reload_families(&text);
    assert_eq!(successful, Some(1.0));
    assert!(at >= started, "{at:?} {started:?}");

    // A broken file: refused with what is wrong, the running modules stay.
    std::fs::write(
        &pve_yml,
        "second:\n  user: monitoring@pve\n  token_name: exporter\n",
    )
    .unwrap();
    let answer = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 500);
    let said = answer.text().await.unwrap();
    assert!(said.contains("token_name needs token_value"), "{said}");
    assert!(!said.contains(TOKEN_SECRET));
    let text = reloaded(&metrics, false).await;
    assert_eq!(reload_families(&text).1, at, "the last success stays");
    assert_eq!(
        get_text(&pve("second")).await.0,
        200,
        "the running module went"
    );

    // SIGHUP: the same, by signal. Broken first (still refused), then good.
    let pid = running.child.id() as i32;
    // SAFETY: sends a signal to the child this test started and still holds.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, text) = get_text(&metrics).await;
    assert_eq!(reload_families(&text).0, Some(0.0));
    std::fs::write(&pve_yml, module("third")).unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    reloaded(&metrics, true).await;
    assert_eq!(get_text(&pve("third")).await.0, 200);
    assert_eq!(get_text(&pve("second")).await.0, 400);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn reload_is_refused_without_the_lifecycle_flag() {
    let running = support::run_exporter(&["--demo"], &[]);
    let answer = reqwest::Client::new()
        .post(format!("http://{}/-/reload", running.address))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
}

#[tokio::test]
async fn a_rotated_password_file_is_used_for_the_next_login() {
    const OLD: &str = "old horse battery staple";
    const NEW: &str = "new horse battery staple";
    let api = FakeEndpoint::scenario(&three_node_dir()).await;
    // Tickets last 300 ms here: the next window needs a new login.
    api.api
        .set_login("monitoring@pve", OLD, Duration::from_millis(300));
    let dir = folder("password");
    let password_file = dir.join("password");
    std::fs::write(&password_file, OLD).unwrap();
    let yaml = format!(
        "legacy:\n  user: monitoring@pve\n  password_file: {}\n  scheme: http\n  \
         allowed_targets: [127.0.0.1]\n",
        password_file.display()
    );
    let base = serve_targets(targets_with(
        &yaml,
        10,
        Duration::from_secs(600),
        Duration::from_secs(1),
    ))
    .await;
    let target = api.target();
    let pve = format!("{base}/pve?module=legacy&target={target}");
    assert!(
        get_text(&pve)
            .await
            .1
            .contains("collector=\"resources\"} 1")
    );
    assert_eq!(api.api.logins(), 1);

    api.api
        .set_login("monitoring@pve", NEW, Duration::from_millis(300));
    rotate(&password_file, NEW);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, text) = get_text(&pve).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("collector=\"resources\"} 1"),
        "not followed: {text}"
    );
    assert_eq!(api.api.logins(), 2, "one login with the new password");
    assert!(!text.contains(NEW) && !text.contains(OLD));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reload keeps the targets of an unchanged module (their request counts go on) and starts
/// those of a changed one afresh (their counts start again), and new basic-auth users apply
/// to the next request.
#[tokio::test]
async fn a_reload_starts_changed_modules_afresh_and_takes_new_users() {
    let api = FakeEndpoint::scenario(&three_node_dir()).await;
    let target = api.target();
    let dir = folder("afresh");
    let (pve_yml, web_yml) = (dir.join("pve.yml"), dir.join("web.yml"));
    let module = |name: &str, timeout: u32| {
        format!(
            "{name}:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: {TOKEN_SECRET}\n  \
             scheme: http\n  allowed_targets: [127.0.0.1]\n  timeout: {timeout}\n"
        )
    };
    let users = |user: &str| {
        let hash = bcrypt::hash("pass", 4).unwrap();
        format!("basic_auth_users:\n  {user}: '{hash}'\n")
    };
    std::fs::write(&pve_yml, module("same", 5) + &module("changed", 5)).unwrap();
    std::fs::write(&web_yml, users("first")).unwrap();
    let running = support::run_exporter(
        &[
            "--config.file",
            pve_yml.to_str().unwrap(),
            "--web.config.file",
            web_yml.to_str().unwrap(),
            "--web.enable-lifecycle",
            "--cache-duration",
            "0",
        ],
        &[],
    );
    let base = format!("http://{}", running.address);
    let client = reqwest::Client::new();
    let get = |module: &str, user: &str| {
        client
            .get(format!("{base}/pve?module={module}&target={target}"))
            .basic_auth(user, Some("pass"))
            .send()
    };
    let requests = |text: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with("proxmox_exporter_api_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    for module in ["same", "changed"] {
        assert_eq!(get(module, "first").await.unwrap().status(), 200);
    }
    std::fs::write(&pve_yml, module("same", 5) + &module("changed", 7)).unwrap();
    std::fs::write(&web_yml, users("second")).unwrap();
    let answer = client
        .post(format!("{base}/-/reload"))
        .basic_auth("first", Some("pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        get("same", "first").await.unwrap().status(),
        401,
        "the old user stays"
    );
    let same = get("same", "second").await.unwrap().text().await.unwrap();
    let changed = get("changed", "second")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The kept target counts on from the first scrape; the new one starts from nothing and
    // has made one scrape's requests (a first scrape asks at least as much as a later one).
    assert!(requests(&changed) > 0, "{changed}");
    assert!(
        requests(&same) > requests(&changed),
        "{same}\n---\n{changed}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
