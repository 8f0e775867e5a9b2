//! The README's metrics table lists exactly the families the exporter produces, with their
//! types and label names, as pinned by the snapshots of the whole exposition.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Families = BTreeMap<String, (String, BTreeSet<String>)>;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// name → (type, label names), from every snapshot in `snapshots/`.
fn produced() -> Families {
    let mut families = Families::new();
    for entry in std::fs::read_dir(root().join("snapshots")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("snap") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                families.entry(name.to_owned()).or_default().0 = kind.to_owned();
            } else if let Some((series, _)) = line.split_once('{') {
                if line.starts_with('#') || !line.starts_with("proxmox_") {
                    continue;
                }
                let labels = line[series.len() + 1..].split('}').next().unwrap();
                let names = labels
                    .split("\",")
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(name, _)| name.to_owned());
                families
                    .entry(series.to_owned())
                    .or_default()
                    .1
                    .extend(names);
            }
        }
    }
    families
}

/// name → (type, label names), from the README's table.
fn documented() -> Families {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- metrics-table")
        .expect("no metrics table marker");
    let end = readme
        .find("<!-- end of metrics-table")
        .expect("no end marker");
    let mut families = Families::new();
    for row in readme[start..end].lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_owned();
        let labels = cells[3]
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        assert!(
            families
                .insert(name.clone(), (cells[2].to_owned(), labels))
                .is_none(),
            "{name} twice in the README"
        );
    }
    families
}

#[test]
fn the_readme_metrics_table_matches_the_exposition() {
    let produced = produced();
    let documented = documented();
    assert!(
        produced.len() >= 19,
        "snapshots hold too few families: {produced:?}"
    );
    for (name, family) in &produced {
        assert_eq!(documented.get(name), Some(family), "README row for {name}");
    }
    for name in documented.keys() {
        assert!(
            produced.contains_key(name),
            "README lists {name}, the exporter does not produce it"
        );
    }
}
