//! Checks on the deployment files that no tool here renders: the Helm chart's values and
//! templates agree, its alert rules are the tested ones, and the systemd drop-in for `/pve`
//! starts a working exporter.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/proxmox-exporter")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_charts_alert_rules_are_the_tested_rules() {
    let tested = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/proxmox-alerts.yml");
    assert_eq!(
        std::fs::read_to_string(chart().join("files/proxmox-alerts.yml")).unwrap(),
        std::fs::read_to_string(tested).unwrap(),
        "copy deploy/prometheus/proxmox-alerts.yml to the chart's files/"
    );
}

#[test]
fn every_value_a_template_uses_is_in_values_yaml() {
    let values = yaml(&chart().join("values.yaml"));
    let chart_meta = yaml(&chart().join("Chart.yaml"));
    assert_eq!(chart_meta["apiVersion"], "v2");
    let mut checked = 0;
    for entry in std::fs::read_dir(chart().join("templates")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (at, _) in text.match_indices(".Values.") {
            let rest = &text[at + ".Values.".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len());
            let key = rest[..end].trim_end_matches('.');
            let found = key.split('.').try_fold(&values, |v, k| v.get(k));
            assert!(
                found.is_some(),
                "{}: .Values.{key} is not in values.yaml",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} references");
}

#[test]
fn resources_are_sized_and_the_container_runs_unprivileged() {
    let values = yaml(&chart().join("values.yaml"));
    assert_eq!(values["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(values["resources"]["limits"]["memory"], "256Mi");
    assert_eq!(values["podSecurityContext"]["runAsNonRoot"], true);
    assert_eq!(values["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(values["securityContext"]["allowPrivilegeEscalation"], false);
}

/// The systemd drop-in for `/pve`: with the settings it gives (its `Environment=` and its bare
/// `ExecStart=`, `%d` being the credentials directory holding the loaded `pve.yml`), the
/// exporter starts without a cluster of its own and answers `/pve` for a target.
#[tokio::test]
async fn the_systemd_drop_in_serves_pve_from_the_credential() {
    let drop_in = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/systemd/proxmox-exporter.service.d/pve-modules.conf"),
    )
    .unwrap();
    let settings: Vec<(&str, &str)> = drop_in
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let values = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    };
    // The token's credential and flag are reset, the module file is loaded under `pve.yml`.
    assert_eq!(
        values("LoadCredential"),
        ["", "pve.yml:/etc/proxmox-exporter/pve.yml"]
    );
    assert_eq!(values("ExecStart"), ["", "/usr/bin/proxmox-exporter"]);

    let credentials =
        std::env::temp_dir().join(format!("deploy-credentials-{}", std::process::id()));
    std::fs::create_dir_all(&credentials).unwrap();
    let (user, token_name) = support::TOKEN_ID.split_once('!').unwrap();
    std::fs::write(
        credentials.join("pve.yml"),
        format!(
            // The simulator speaks plain HTTP on loopback: the module says so itself.
            "default:\n  user: {user}\n  token_name: {token_name}\n  token_value: {}\n  \
             scheme: http\n  allowed_targets: [127.0.0.1]\n",
            support::TOKEN_SECRET
        ),
    )
    .unwrap();
    let environment: Vec<(String, String)> = values("Environment")
        .iter()
        .map(|entry| {
            let (key, value) = entry.split_once('=').unwrap();
            let value = value.replace("%d", credentials.to_str().unwrap());
            (key.to_owned(), value)
        })
        .collect();
    assert_eq!(environment.len(), 1, "{environment:?}");
    let envs: Vec<(&str, &str)> = environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let api = support::FakeEndpoint::scenario(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/three-node"),
    )
    .await;
    let running = support::run_exporter(&[], &envs);
    let target = api.target();
    let (status, body) =
        support::get_text(&format!("http://{}/pve?target={target}", running.address)).await;
    let _ = std::fs::remove_dir_all(&credentials);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("pve_node_info{"), "{body}");
    assert!(!body.contains(support::TOKEN_SECRET));
}

/// The binary sets its allocator's settings itself (`malloc::SETTINGS`), and
/// `_RJEM_MALLOC_CONF` overrides them: neither the image nor the unit may set it, or the
/// measured settings would be off.
#[test]
fn the_image_and_the_unit_leave_the_allocator_to_the_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, prefix) in [
        ("Dockerfile", "ENV "),
        ("deploy/systemd/proxmox-exporter.service", "Environment="),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let names = text
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .flat_map(|l| l.split_whitespace())
            .filter_map(|s| s.split('=').next());
        assert!(
            proxmox_exporter::malloc::left_to_us(names),
            "{file} sets _RJEM_MALLOC_CONF"
        );
    }
}
