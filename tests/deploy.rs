//! Checks on the deployment files that no tool here renders: the Helm chart's values and
//! templates agree, and its alert rules are the tested ones.

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
