//! Generates the typed PVE client (`$OUT_DIR/pve_client.rs`) with progenitor from
//! `schema/pve-api.json`, for the operations listed in `schema/operations.txt` only.
//!
//! Response scalars in the schema are `$ref`s to the `Pve*` component schemas; they are replaced
//! here by the lenient types of `src/pve/lenient.rs`, so generated code is never edited.

#[path = "src/pve/operations.rs"]
mod operations;

use std::path::Path;

use serde_json::Value;

const SCHEMA: &str = "schema/pve-api.json";
const OPERATIONS: &str = "schema/operations.txt";
const LENIENT: [&str; 4] = ["PveBoolean", "PveInteger", "PveNumber", "PveString"];

fn main() {
    for input in [SCHEMA, OPERATIONS, "src/pve/operations.rs", "build.rs"] {
        println!("cargo:rerun-if-changed={input}");
    }
    // Another PVE version's schema, to check the exporter against it (see .ci/run).
    println!("cargo:rerun-if-env-changed=PVE_SCHEMA");
    if let Ok(other) = std::env::var("PVE_SCHEMA") {
        println!("cargo:rerun-if-changed={other}");
    }
    if let Err(message) = generate() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn generate() -> Result<(), String> {
    let schema = std::env::var("PVE_SCHEMA").unwrap_or_else(|_| SCHEMA.to_owned());
    let schema_text =
        std::fs::read_to_string(&schema).map_err(|e| format!("cannot read {schema}: {e}"))?;
    let spec: Value =
        serde_json::from_str(&schema_text).map_err(|e| format!("{schema} is not JSON: {e}"))?;
    let list = std::fs::read_to_string(OPERATIONS)
        .map_err(|e| format!("cannot read {OPERATIONS}: {e}"))?;
    let wanted = operations::parse_operations(&list, OPERATIONS)?;

    let tokens = match generate_from(operations::select(&spec, &wanted, &schema)?) {
        Ok(tokens) => tokens,
        Err(whole) => {
            // Name the operation at fault by generating each one alone.
            for op in &wanted {
                let alone = operations::select(&spec, std::slice::from_ref(op), &schema)?;
                if let Err(e) = generate_from(alone) {
                    return Err(format!("{schema}: cannot generate operation `{op}`: {e}"));
                }
            }
            return Err(format!("{schema}: {whole}"));
        }
    };
    let file: syn::File = syn::parse2(tokens).map_err(|e| format!("generated code: {e}"))?;
    let out_dir = std::env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?;
    let out = Path::new(&out_dir).join("pve_client.rs");
    std::fs::write(&out, prettyplease::unparse(&file))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// Runs progenitor on the document cut down to the wanted operations.
fn generate_from(cut: Value) -> Result<proc_macro2::TokenStream, String> {
    let openapi: openapiv3::OpenAPI =
        serde_json::from_value(cut).map_err(|e| format!("not an OpenAPI 3.0 document: {e}"))?;

    let mut settings = progenitor::GenerationSettings::default();
    settings.with_interface(progenitor::InterfaceStyle::Builder);
    // Every request carries the dispatcher's credentials (a token, or a login ticket that
    // changes over time), set by the client's `pre` hook from this shared state.
    let inner: proc_macro2::TokenStream = "std::sync::Arc<crate::pve::client::Auth>"
        .parse()
        .map_err(|e| format!("inner type: {e}"))?;
    settings.with_inner_type(inner);
    for name in LENIENT {
        settings.with_replacement(
            name,
            format!("crate::pve::lenient::{name}"),
            [progenitor::TypeImpl::Default].into_iter(),
        );
    }
    progenitor::Generator::new(&settings)
        .generate_tokens(&openapi)
        .map_err(|e| e.to_string())
}
