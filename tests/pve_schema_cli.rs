//! The `pve-schema` command line: a maintainer's errors are named and exit non-zero.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pve_schema(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pve-schema"))
        .args(args)
        .output()
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pve-schema-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const OLD: &str = r#"let apiSchema = [
  {"path": "/cluster", "info": {"GET": {"returns": {"type": "array"}}}, "children": [
    {"path": "/cluster/resources", "info": {"GET": {"returns": {"type": "array", "items": {
        "type": "object", "properties": {
          "id": {"type": "string"}, "maxcpu": {"type": "integer"}, "gone": {"type": "string"},
          "type": {"type": "string", "enum": ["node", "qemu"]}}}}}}},
    {"path": "/cluster/old", "info": {"GET": {}}}]}];"#;

const NEW: &str = r#"var apiSchema = [
  {"path": "/cluster", "info": {"GET": {"returns": {"type": "array"}}, "POST": {}}, "children": [
    {"path": "/cluster/resources", "info": {"GET": {"returns": {"type": "array", "items": {
        "type": "object", "properties": {
          "id": {"type": "string"}, "maxcpu": {"type": "number"}, "memhost": {"type": "integer"},
          "type": {"type": "string", "enum": ["node", "qemu", "network"]}}}}}}},
    {"path": "/cluster/new", "info": {"GET": {}}}]}];"#;

#[test]
fn import_writes_the_document_and_diff_lists_changes() {
    let dir = temp_dir("ok");
    let old = write(&dir, "apidata-1.0.js", OLD);
    let new = write(&dir, "apidata-2.0.js", NEW);
    let out = dir.join("old.json").display().to_string();
    let run = pve_schema(&["import", &old, "--out", &out]);
    assert!(run.status.success(), "{}", stderr(&run));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["info"]["version"], "1.0");

    // Either side may be apidata or OpenAPI.
    let run = pve_schema(&["diff", &out, &new]);
    assert!(run.status.success(), "{}", stderr(&run));
    let printed = String::from_utf8(run.stdout).unwrap();
    let expected = [
        "- path /cluster/old",
        "+ path /cluster/new",
        "+ POST /cluster",
        "~ GET /cluster/resources: - data[].gone (string)",
        "~ GET /cluster/resources: data[].maxcpu integer -> number",
        "~ GET /cluster/resources: data[].type values +[network]",
        "~ GET /cluster/resources: + data[].memhost (integer)",
    ];
    let mut got: Vec<&str> = printed.lines().collect();
    let mut want = expected.to_vec();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let run = pve_schema(&["diff", &old, &new, "--path", "/cluster/resources"]);
    let printed = String::from_utf8(run.stdout).unwrap();
    assert_eq!(printed.lines().count(), 4, "{printed}");

    let ops = write(&dir, "ops.txt", "# used\nGET /cluster/old\n");
    let run = pve_schema(&["diff", &old, &new, "--operations", &ops]);
    assert_eq!(
        String::from_utf8(run.stdout).unwrap(),
        "- path /cluster/old\n"
    );
}

#[test]
fn errors_name_the_problem_and_exit_non_zero() {
    let dir = temp_dir("errors");
    let out = dir.join("out.json").display().to_string();
    let missing = dir.join("apidata-9.9.js").display().to_string();
    let html = write(&dir, "apidata-1.js", "<html>502 Bad Gateway</html>");
    let unknown = write(
        &dir,
        "apidata-2.js",
        r#"[{"path": "/x", "info": {"GET": {"returns": {"type": "tensor"}}}}]"#,
    );
    let unversioned = write(&dir, "apidata.js", OLD);
    for (args, needle) in [
        (vec!["import", &missing, "--out", &out], "cannot read"),
        (
            vec!["import", &html, "--out", &out],
            "is not pve-docs apidata",
        ),
        (
            vec!["import", &unknown, "--out", &out],
            "unknown type `tensor` in GET /x",
        ),
        (vec!["import", &unversioned, "--out", &out], "--pve-version"),
        (vec!["diff", &html, &unknown], "apidata-1.js"),
    ] {
        let run = pve_schema(&args);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(stderr(&run).contains(needle), "{args:?}: {}", stderr(&run));
    }
    assert!(!Path::new(&out).exists(), "a failed import wrote output");
}
