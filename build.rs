//! Generates the typed PVE client (`$OUT_DIR/pve_client.rs`) with progenitor from
//! `schema/pve-api.json`, for the operations listed in `schema/operations.txt` only.
//!
//! Response scalars in the schema are `$ref`s to the `Pve*` component schemas; they are replaced
//! here by the lenient types of `src/pve/lenient.rs`, so generated code is never edited.

use std::path::Path;

use serde_json::{Map, Value};

const SCHEMA: &str = "schema/pve-api.json";
const OPERATIONS: &str = "schema/operations.txt";
const LENIENT: [&str; 4] = ["PveBoolean", "PveInteger", "PveNumber", "PveString"];

fn main() {
    println!("cargo:rerun-if-changed={SCHEMA}");
    println!("cargo:rerun-if-changed={OPERATIONS}");
    println!("cargo:rerun-if-changed=build.rs");
    if let Err(message) = generate() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn generate() -> Result<(), String> {
    let schema_text =
        std::fs::read_to_string(SCHEMA).map_err(|e| format!("cannot read {SCHEMA}: {e}"))?;
    let spec: Value =
        serde_json::from_str(&schema_text).map_err(|e| format!("{SCHEMA} is not JSON: {e}"))?;
    let ops_text = std::fs::read_to_string(OPERATIONS)
        .map_err(|e| format!("cannot read {OPERATIONS}: {e}"))?;
    let wanted = parse_operations(&ops_text)?;

    let tokens = match generate_for(&spec, &wanted) {
        Ok(tokens) => tokens,
        Err(whole) => {
            // Find the operation at fault by generating each one alone.
            for op in &wanted {
                if let Err(e) = generate_for(&spec, std::slice::from_ref(op)) {
                    return Err(format!(
                        "{SCHEMA}: cannot generate operation `{} {}`: {e}",
                        op.0, op.1
                    ));
                }
            }
            return Err(format!("{SCHEMA}: {whole}"));
        }
    };
    let file: syn::File = syn::parse2(tokens).map_err(|e| format!("generated code: {e}"))?;
    let out_dir = std::env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?;
    let out = Path::new(&out_dir).join("pve_client.rs");
    std::fs::write(&out, prettyplease::unparse(&file))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// `GET /cluster/resources` lines; `#` starts a comment.
fn parse_operations(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut ops = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once(char::is_whitespace) {
            Some((method, path)) if path.trim().starts_with('/') => {
                ops.push((method.to_ascii_lowercase(), path.trim().to_owned()));
            }
            _ => {
                return Err(format!(
                    "{OPERATIONS}:{}: expected `METHOD /path`, found `{line}`",
                    n + 1
                ));
            }
        }
    }
    if ops.is_empty() {
        return Err(format!("{OPERATIONS} lists no operation"));
    }
    Ok(ops)
}

/// Runs progenitor on `spec` cut down to `ops`.
fn generate_for(
    spec: &Value,
    ops: &[(String, String)],
) -> Result<proc_macro2::TokenStream, String> {
    let mut paths = Map::new();
    for (method, path) in ops {
        let op = spec
            .pointer(&format!("/paths/{}/{method}", pointer_escape(path)))
            .ok_or_else(|| {
                format!(
                    "operation `{} {path}` from {OPERATIONS} is not in {SCHEMA}",
                    method.to_ascii_uppercase()
                )
            })?;
        let item = paths
            .entry(path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(item) = item.as_object_mut() {
            item.insert(method.clone(), op.clone());
        }
    }
    let mut cut = spec.clone();
    cut["paths"] = Value::Object(paths);
    let openapi: openapiv3::OpenAPI =
        serde_json::from_value(cut).map_err(|e| format!("not an OpenAPI 3.0 document: {e}"))?;

    let mut settings = progenitor::GenerationSettings::default();
    settings.with_interface(progenitor::InterfaceStyle::Builder);
    for name in LENIENT {
        settings.with_replacement(
            name,
            format!("crate::pve::lenient::{name}"),
            [progenitor::TypeImpl::Default].into_iter(),
        );
    }
    let mut generator = progenitor::Generator::new(&settings);
    generator
        .generate_tokens(&openapi)
        .map_err(|e| e.to_string())
}

/// Escapes a JSON pointer token (RFC 6901).
fn pointer_escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
