//! The README's metrics table lists exactly the families the exporter produces, with their
//! types and label names, as pinned by the snapshots of the whole exposition.

mod support;

use std::path::Path;

use support::{Families, snapshot_families};

/// name → (type, label names), from the README's table.
fn documented() -> Families {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
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
    let produced = snapshot_families();
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

#[test]
fn the_readme_collectors_table_matches_the_registry() {
    use proxmox_exporter::collectors::REGISTRY;
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("<!-- collectors-table").expect("no marker");
    let end = readme.find("<!-- end of collectors-table").expect("no end");
    let rows: Vec<Vec<&str>> = readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[1].trim_matches('`')).collect();
    let registered: Vec<&str> = REGISTRY.iter().map(|c| c.name()).collect();
    assert_eq!(
        names, registered,
        "collectors in the README, in registry order"
    );
    for (row, collector) in rows.iter().zip(REGISTRY) {
        let default = if collector.enabled_by_default() {
            "on"
        } else {
            "off"
        };
        assert_eq!(row[2], default, "default of {}", collector.name());
        let refresh = match collector.refresh().map(|d| d.as_secs()) {
            None => "window".to_owned(),
            Some(s) if s % 3600 == 0 => format!("{}h", s / 3600),
            Some(s) if s % 60 == 0 => format!("{}m", s / 60),
            Some(s) => format!("{s}s"),
        };
        assert_eq!(row[4], refresh, "refresh of {}", collector.name());
    }
}
