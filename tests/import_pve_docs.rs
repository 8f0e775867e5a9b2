//! Imports the real pve-docs apidata files of PVE 7.4, 8.4.1 and 9.1.3 from `../shared`
//! (present in CI and in development, absent on a user's machine: then the tests say they skipped).

use std::collections::BTreeSet;
use std::path::PathBuf;

use proxmox_exporter::schema;
use serde_json::Value;

const VERSIONS: [&str; 3] = ["7.4", "8.4.1", "9.1.3"];

fn apidata(version: &str) -> Option<(PathBuf, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/pve-docs")
        .join(format!("apidata-{version}.js"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Some((path, text)),
        Err(_) => {
            eprintln!(
                "SKIPPED: {} is absent (the ../shared reference folder is not here)",
                path.display()
            );
            None
        }
    }
}

/// Every `METHOD path` in an apidata file, found by walking the raw JSON (not the importer's reader).
fn raw_operations(text: &str) -> BTreeSet<String> {
    let json = &text[text.find('[').unwrap()..=text.rfind(']').unwrap()];
    let tree: Value = serde_json::from_str(json).unwrap();
    let mut found = BTreeSet::new();
    let mut stack: Vec<&Value> = tree.as_array().unwrap().iter().collect();
    while let Some(node) = stack.pop() {
        if let Some(info) = node.get("info").and_then(Value::as_object) {
            for method in info.keys() {
                found.insert(format!("{method} {}", node["path"].as_str().unwrap()));
            }
        }
        if let Some(children) = node.get("children").and_then(Value::as_array) {
            stack.extend(children);
        }
    }
    found
}

fn imported_operations(doc: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            found.insert(format!("{} {path}", method.to_ascii_uppercase()));
        }
    }
    found
}

#[test]
fn no_path_or_method_is_lost() {
    for version in VERSIONS {
        let Some((path, text)) = apidata(version) else {
            continue;
        };
        let nodes = schema::parse_apidata(&text, &path.display().to_string()).unwrap();
        let doc = schema::import(&nodes, version).unwrap();
        let expected = raw_operations(&text);
        let got = imported_operations(&doc);
        assert!(
            expected.len() > 500,
            "PVE {version}: only {} operations",
            expected.len()
        );
        assert_eq!(got, expected, "PVE {version}");
        assert_eq!(doc["info"]["version"], version);

        // Every operation has a unique id, and ids do not depend on the version.
        let mut ids = BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()));
            }
        }
        assert!(ids.contains("get_cluster_resources"));
        assert!(ids.contains("get_nodes_node_disks_list"));
    }
}

#[test]
fn the_committed_schema_is_what_the_importer_makes_of_pve_9_1_3() {
    let Some((path, text)) = apidata("9.1.3") else {
        return;
    };
    let nodes = schema::parse_apidata(&text, &path.display().to_string()).unwrap();
    let doc = schema::import(&nodes, "9.1.3").unwrap();
    let committed =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/pve-api.json")).unwrap();
    assert!(
        schema::to_bytes(&doc) == committed,
        "schema/pve-api.json differs from `pve-schema import apidata-9.1.3.js`: regenerate it"
    );
}

#[test]
fn diff_between_versions_shows_what_collectors_care_about() {
    let (Some((_, old)), Some((_, new))) = (apidata("8.4.1"), apidata("9.1.3")) else {
        return;
    };
    let old = schema::load_openapi(&old, "8.4.1").unwrap();
    let new = schema::load_openapi(&new, "9.1.3").unwrap();
    let lines: Vec<String> = schema::diff(&old, &new)
        .iter()
        .map(ToString::to_string)
        .collect();
    for expected in [
        "~ GET /cluster/resources: + data[].memhost (integer)",
        "~ GET /cluster/resources: data[].type values +[network]",
    ] {
        assert!(lines.iter().any(|l| l == expected), "missing: {expected}");
    }
    assert!(
        lines.iter().any(|l| l.starts_with("+ path /")),
        "no path added?"
    );
    assert!(schema::diff(&new, &new).is_empty());
}
