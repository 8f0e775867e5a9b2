//! The `proxmox-exporter` binary: settings from flags and environment, refusals that name the
//! setting, logs that never show the token, and a clean stop on SIGTERM.

mod support;

use std::process::Command;

use support::{FakeEndpoint, TOKEN_ID, TOKEN_SECRET};

fn exporter() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_proxmox-exporter"));
    // Only what each test sets: nothing from the environment running the tests.
    for (key, _) in std::env::vars() {
        if key.starts_with("PROXMOX_EXPORTER_") || key.starts_with("PVE_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

const ENDPOINT: &str = "https://pve1.example:8006/";

#[test]
fn bad_settings_exit_non_zero_and_name_the_setting() {
    let good = [
        "--proxmox-endpoints",
        ENDPOINT,
        "--proxmox-token-id",
        TOKEN_ID,
        "--proxmox-token",
        TOKEN_SECRET,
    ];
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 12] = [
        (&["--log-level", "verbose"], &[], "--log-level"),
        (&["--server-port", "99999"], &[], "--server-port"),
        (
            &[],
            &[("PROXMOX_EXPORTER_SERVER_PORT", "http")],
            "PROXMOX_EXPORTER_SERVER_PORT",
        ),
        (&["--proxmox-endpoints", "pve1"], &[], "--proxmox-endpoints"),
        (&["--proxmox-token-id", "root"], &[], "--proxmox-token-id"),
        (
            &[],
            &[("PROXMOX_EXPORTER_LOG_LEVEL", "chatty")],
            "PROXMOX_EXPORTER_LOG_LEVEL",
        ),
        (
            &["--proxmox-api-insecure=maybe"],
            &[],
            "--proxmox-api-insecure",
        ),
        (&["--no-such-flag"], &[], "--no-such-flag"),
        (&["--collector.nope"], &[], "--collector.nope"),
        (
            &[],
            &[("PROXMOX_EXPORTER_COLLECTOR_NOPE", "true")],
            "PROXMOX_EXPORTER_COLLECTOR_NOPE",
        ),
        (&["--collector.node=maybe"], &[], "--collector.node"),
        (&["--collector.snapshots.refresh", "soon"], &[], "snapshots"),
    ];
    for (flags, env, setting) in cases {
        let out = exporter()
            .args(good)
            .args(flags)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} {env:?} started");
        assert!(stderr.contains(setting), "{flags:?} {env:?}: {stderr}");
        assert!(!stderr.contains(TOKEN_SECRET), "{stderr}");
    }
    for missing in [&good[..4], &good[2..]] {
        let out = exporter().args(missing).output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("missing") || stderr.contains("no endpoint"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn env_settings_apply_flags_win_and_the_token_never_shows_in_logs() {
    let api = FakeEndpoint::scenario(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/three-node"),
    )
    .await;
    let endpoint = api.url.to_string();
    let mut running = support::run_exporter(
        &["--log-level", "trace"],
        &[
            ("PROXMOX_EXPORTER_LOG_LEVEL", "not-a-level"), // the flag wins
            ("PROXMOX_EXPORTER_SERVER_PORT", "not-a-port"), // the flag wins
            ("PROXMOX_EXPORTER_PROXMOX_ENDPOINTS", &endpoint),
            ("PROXMOX_EXPORTER_PROXMOX_TOKEN_ID", TOKEN_ID),
            ("PROXMOX_EXPORTER_PROXMOX_TOKEN", TOKEN_SECRET),
            ("RUST_LOG", "trace"), // every crate's logs, HTTP internals included
        ],
    );
    let address = running.address.clone();
    let metrics = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("proxmox_node_up{name=\"hv1\",type=\"node\"} 1"));
    assert_eq!(api.hits(), 7);

    let stopped = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = running.child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    // The log reader ends with the process; collect every line.
    let logs: Vec<String> = running
        .startup
        .iter()
        .cloned()
        .chain(running.logs.iter())
        .collect();
    let all = logs.join("\n");
    assert!(all.contains("shutting down"), "{all}");
    assert!(
        logs.len() > 10,
        "trace logging produced almost nothing: {all}"
    );
    assert!(
        !all.contains(TOKEN_SECRET),
        "the token secret is in the logs"
    );
}

#[test]
fn collectors_from_variables_and_flags() {
    let endpoint = ["--proxmox-endpoints", "http://127.0.0.1:9/"];
    let enabled = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = endpoint.to_vec();
        all.extend_from_slice(args);
        let mut env = env.to_vec();
        env.extend([
            ("PROXMOX_EXPORTER_PROXMOX_TOKEN_ID", TOKEN_ID),
            ("PROXMOX_EXPORTER_PROXMOX_TOKEN", TOKEN_SECRET),
        ]);
        let running = support::run_exporter(&all, &env);
        let line = running.startup.last().cloned().unwrap_or_default();
        let at = line.find("collectors=").expect(&line) + "collectors=".len();
        let list = &line[at..];
        list[..=list.find(']').expect(&line)].replace(' ', "")
    };
    assert_eq!(
        enabled(&[], &[]),
        r#"["cluster_resources","node_certificates","node_disks"]"#
    );
    assert_eq!(
        enabled(
            &[],
            &[
                ("PROXMOX_EXPORTER_COLLECTOR_NODE", "true"),
                ("PROXMOX_EXPORTER_COLLECTOR_NODE_DISKS", "false"),
            ]
        ),
        r#"["cluster_resources","node_certificates","node"]"#
    );
    // A flag wins over its variable.
    assert_eq!(
        enabled(
            &["--no-collector.node", "--collector.node_disks"],
            &[
                ("PROXMOX_EXPORTER_COLLECTOR_NODE", "true"),
                ("PROXMOX_EXPORTER_COLLECTOR_NODE_DISKS", "false"),
            ]
        ),
        r#"["cluster_resources","node_certificates","node_disks"]"#
    );
    assert_eq!(
        enabled(
            &["--collector.guest"],
            &[("PROXMOX_EXPORTER_COLLECTOR_DISABLE_DEFAULTS", "true")]
        ),
        r#"["guest"]"#
    );
}

#[test]
fn a_bad_module_file_or_pve_variables_stop_the_exporter_naming_them() {
    let dir = std::env::temp_dir().join(format!("cli-modules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pve.yml");
    std::fs::write(
        &file,
        "lab:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: s3cret-value\n  \
         verify_sl: false\n",
    )
    .unwrap();
    let output = exporter().arg("--config.file").arg(&file).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--config.file"), "{stderr}");
    assert!(
        stderr.contains("module lab, key verify_sl: unknown"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-value"), "{stderr}");

    let output = exporter()
        .env("PVE_USER", "monitoring@pve")
        .env("PVE_TOKEN_NAME", "exporter")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("PVE_USER") && stderr.contains("token_name needs token_value"),
        "{stderr}"
    );
}

/// The binary runs on jemalloc with the settings of `malloc::SETTINGS` (the memory figures in
/// BENCHMARKS.md depend on them), and an operator's `_RJEM_MALLOC_CONF` is read after them.
#[cfg(unix)]
#[test]
fn the_binary_takes_its_allocator_settings_and_the_operators_after_them() {
    let out = exporter()
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "confirm_conf:true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    let ours = proxmox_exporter::malloc::SETTINGS.to_str().unwrap();
    let at = |text: &str| {
        said.find(text)
            .unwrap_or_else(|| panic!("no {text:?} in:\n{said}"))
    };
    assert!(at(ours) < at("confirm_conf:true"), "{said}");
}
