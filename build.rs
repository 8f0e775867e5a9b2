//! Generates the typed clients with progenitor, for the operations listed beside each schema
//! only: the PVE client (`$OUT_DIR/pve_client.rs`) from `schema/pve-api.json` and
//! `schema/operations.txt`, and the Proxmox Backup Server client (`$OUT_DIR/pbs_client.rs`)
//! from `schema/pbs-api.json` and `schema/pbs-operations.txt`.
//!
//! Response scalars in the schemas are `$ref`s to the `Pve*` component schemas; they are
//! replaced here by the lenient types of `src/pve/lenient.rs`, so generated code is never edited.

#[path = "src/pve/operations.rs"]
mod operations;

use std::path::Path;

use serde_json::Value;

const LENIENT: [&str; 4] = ["PveBoolean", "PveInteger", "PveNumber", "PveString"];

/// What is generated: (schema, operations, output file).
const CLIENTS: [(&str, &str, &str); 2] = [
    (
        "schema/pve-api.json",
        "schema/operations.txt",
        "pve_client.rs",
    ),
    (
        "schema/pbs-api.json",
        "schema/pbs-operations.txt",
        "pbs_client.rs",
    ),
];

fn main() {
    for (schema, operations, _) in CLIENTS {
        println!("cargo:rerun-if-changed={schema}");
        println!("cargo:rerun-if-changed={operations}");
    }
    for input in ["src/pve/operations.rs", "build.rs"] {
        println!("cargo:rerun-if-changed={input}");
    }
    // Another PVE version's schema, to check the exporter against it (see .ci/run).
    println!("cargo:rerun-if-env-changed=PVE_SCHEMA");
    if let Ok(other) = std::env::var("PVE_SCHEMA") {
        println!("cargo:rerun-if-changed={other}");
    }
    for (index, (schema, operations, out)) in CLIENTS.into_iter().enumerate() {
        let schema = match std::env::var("PVE_SCHEMA") {
            Ok(other) if index == 0 => other,
            _ => schema.to_owned(),
        };
        if let Err(message) = generate(&schema, operations, out) {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    }
}

fn generate(schema: &str, operations_file: &str, out_name: &str) -> Result<(), String> {
    let schema_text =
        std::fs::read_to_string(schema).map_err(|e| format!("cannot read {schema}: {e}"))?;
    let spec: Value =
        serde_json::from_str(&schema_text).map_err(|e| format!("{schema} is not JSON: {e}"))?;
    let list = std::fs::read_to_string(operations_file)
        .map_err(|e| format!("cannot read {operations_file}: {e}"))?;
    let wanted = operations::parse_operations(&list, operations_file)?;

    let tokens = match generate_from(operations::select(&spec, &wanted, schema)?) {
        Ok(tokens) => tokens,
        Err(whole) => {
            // Name the operation at fault by generating each one alone.
            for op in &wanted {
                let alone = operations::select(&spec, std::slice::from_ref(op), schema)?;
                if let Err(e) = generate_from(alone) {
                    return Err(format!("{schema}: cannot generate operation `{op}`: {e}"));
                }
            }
            return Err(format!("{schema}: {whole}"));
        }
    };
    let file: syn::File = syn::parse2(tokens).map_err(|e| format!("generated code: {e}"))?;
    let out_dir = std::env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?;
    let out = Path::new(&out_dir).join(out_name);
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
