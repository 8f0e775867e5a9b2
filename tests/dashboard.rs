//! The Grafana dashboard asks only for metrics the exporter produces (as pinned by the
//! snapshots), and uses its data source variable everywhere.

mod support;

use std::path::Path;

use serde_json::Value;

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/proxmox-exporter.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

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
    let board = dashboard();
    let families = support::snapshot_families();
    let mut queries = Vec::new();
    all(&board, "expr", &mut queries);
    all(&board, "definition", &mut queries);
    assert!(queries.len() >= 20, "only {} queries", queries.len());
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
            "a query without an exporter metric: {query}"
        );
        for name in names {
            assert!(
                families.contains_key(name),
                "{name} in `{query}` is not produced"
            );
            used.insert(name.to_owned());
        }
    }
    // The dashboard covers every family of the seed exporter.
    for family in families
        .keys()
        .filter(|f| !f.starts_with("proxmox_exporter_build"))
    {
        assert!(used.contains(family), "no panel shows {family}");
    }
}

#[test]
fn every_panel_uses_the_data_source_variable() {
    let board = dashboard();
    let mut sources = Vec::new();
    all(&board, "datasource", &mut sources);
    let variables: Vec<&Value> = sources.iter().copied().filter(|s| s.is_object()).collect();
    assert!(variables.len() >= 20);
    for source in variables {
        assert_eq!(source["uid"], "${datasource}", "{source}");
    }
    let names: Vec<&str> = board["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["datasource", "cluster", "node"]);
}
