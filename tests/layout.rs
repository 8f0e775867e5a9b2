//! The crate's layout keeps its arrows pointing down: each top-level module uses only the
//! modules below it in [`LAYERS`], so there is no circle between them (the crate doc in
//! `src/lib.rs` gives the same order). Inside `exporter/` the planning of collecting ahead,
//! the reload state and the exposition stand below the core.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules from the top down; a module may use those in later rows only (a row's
/// members do not use each other).
const LAYERS: &[&[&str]] = &[
    &["record", "sim", "config", "telemetry"],
    &["http"],
    &["exporter"],
    &["compat"],
    &["collectors"],
    &["pbs"],
    &["pve"],
    &["schema", "malloc"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`src/exporter/targets.rs` -> `exporter`).
fn owner(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// Lines of code, comments left out (a doc comment may name a module above), up to the unit
/// tests (a test may build what it needs from anywhere in the crate).
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
}

/// The top-level modules a file names as `crate::NAME`.
fn used_modules(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in code_lines(text) {
        for (at, _) in line.match_indices("crate::") {
            let name: String = line[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            used.insert(name);
        }
    }
    used
}

#[test]
fn every_module_uses_only_the_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    let mut unplaced = BTreeSet::new();
    for file in &files {
        let Some(module) = owner(&src, file) else {
            continue;
        };
        if ["lib", "main", "bin"].contains(&module.as_str()) {
            continue;
        }
        let Some(from) = layer(&module) else {
            unplaced.insert(module);
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in used_modules(&text) {
            // `crate::lock` and other items of lib.rs itself sit below everything.
            let Some(to) = layer(&used) else {
                continue;
            };
            if used != module && to <= from {
                upward.push(format!("{} uses crate::{used}", file.display()));
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "top-level modules missing from LAYERS: {unplaced:?}"
    );
    assert!(
        upward.is_empty(),
        "modules that use a module above or beside them:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_exporters_leaves_stay_below_its_core() {
    // (file, what of its folder it may use): the core (mod.rs) and targets.rs sit above.
    let leaves: [(&str, &[&str]); 3] = [
        ("ahead.rs", &[]),
        ("reloads.rs", &[]),
        ("exposition.rs", &["reloads"]),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/exporter");
    for (leaf, allowed) in leaves {
        let text = std::fs::read_to_string(dir.join(leaf)).unwrap();
        let mut offending = Vec::new();
        for line in code_lines(&text).filter(|l| !l.trim().starts_with("use super::*")) {
            for (at, _) in line.match_indices("super::") {
                let used: String = line[at + "super::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !allowed.contains(&used.as_str()) {
                    offending.push(line.trim().to_owned());
                }
            }
        }
        assert!(
            offending.is_empty(),
            "exporter/{leaf} reaches up or beside: {offending:?}"
        );
    }
}

#[test]
fn the_check_sees_an_upward_use() {
    let used = used_modules(
        "use crate::http::server;\n// crate::sim in prose\n$crate::pve::X\n#[cfg(test)]\nuse crate::exporter;",
    );
    assert_eq!(used, BTreeSet::from(["http".to_owned(), "pve".to_owned()]));
    assert!(layer("exporter") > layer("http"));
}
