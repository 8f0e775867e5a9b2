//! The Grafana dashboards (the clusters', and the backup servers' in
//! `proxmox-backup-server.json`) ask only for metrics the exporter produces (as pinned by the
//! snapshots), show every family between them, and use their data source variable everywhere.

mod support;

use std::path::Path;

use serde_json::Value;

fn dashboard() -> Value {
    board("proxmox-exporter.json")
}

fn board(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/grafana")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The backup servers' dashboard shows the `proxmox_pbs_*` families, the other the rest.
const BOARDS: [(&str, bool); 2] = [
    ("proxmox-exporter.json", false),
    ("proxmox-backup-server.json", true),
];

/// Every value under a key named `key`, anywhere in the document.
fn all<'a>(value: &'a Value, key: &str, found: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == key {
                    found.push(v);
                }
                all(v, key, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| all(v, key, found)),
        _ => {}
    }
}

#[test]
fn every_metric_in_a_query_is_produced_by_the_exporter() {
    let families = support::snapshot_families();
    for (file, pbs) in BOARDS {
        let board = board(file);
        let mut queries = Vec::new();
        all(&board, "expr", &mut queries);
        all(&board, "definition", &mut queries);
        assert!(
            queries.len() >= 20,
            "{file}: only {} queries",
            queries.len()
        );
        let mut used = std::collections::BTreeSet::new();
        for query in queries {
            let query = query.as_str().unwrap();
            let names: Vec<&str> = query
                .match_indices("proxmox_")
                .map(|(at, _)| {
                    let rest = &query[at..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    &rest[..end]
                })
                .collect();
            assert!(
                !names.is_empty(),
                "{file}: a query without an exporter metric: {query}"
            );
            for name in names {
                assert!(
                    families.contains_key(name),
                    "{file}: {name} in `{query}` is not produced"
                );
                used.insert(name.to_owned());
            }
        }
        // Each dashboard covers every family of its product.
        for family in families
            .keys()
            .filter(|f| !f.starts_with("proxmox_exporter_build"))
            .filter(|f| f.starts_with("proxmox_pbs_") == pbs)
        {
            assert!(used.contains(family), "{file}: no panel shows {family}");
        }
    }
}

#[test]
fn every_panel_uses_the_data_source_variable() {
    for (file, _) in BOARDS {
        let board = board(file);
        let mut sources = Vec::new();
        all(&board, "datasource", &mut sources);
        let variables: Vec<&Value> = sources.iter().copied().filter(|s| s.is_object()).collect();
        assert!(variables.len() >= 20, "{file}");
        for source in variables {
            assert_eq!(source["uid"], "${datasource}", "{file}: {source}");
        }
    }
    let board = dashboard();
    let names: Vec<&str> = board["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["datasource", "cluster", "node"]);
}
