//! The schema importer behind `pve-schema`: turns pve-docs' `apidata.js` into the OpenAPI 3.0
//! document in `schema/` that `build.rs` generates the client from, and compares two PVE versions.
//!
//! Only facts are carried over (paths, methods, parameter and property names, types,
//! required-ness, enums, bounds); pve-docs' description prose never is.

mod apidata;
mod diff;
mod openapi;

pub use apidata::{ApiNode, parse_apidata};
pub use diff::{Change, diff};
pub use openapi::{LENIENT_SCALARS, import, operation_id};

use std::path::PathBuf;

/// Everything that can go wrong while reading or converting a schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{what} is not pve-docs apidata: {reason} \
         (expected a JavaScript declaration `NAME = [...]` or a JSON array of API nodes)"
    )]
    NotApidata { what: String, reason: String },
    #[error("{what} is neither apidata nor an OpenAPI document: {reason}")]
    UnknownInput { what: String, reason: String },
    #[error("unknown type `{ty}` in {method} {path} at {location}")]
    UnknownType {
        ty: String,
        method: String,
        path: String,
        location: String,
    },
    #[error("operationId `{id}` is shared by {first} and {second}")]
    DuplicateOperationId {
        id: String,
        first: String,
        second: String,
    },
}

/// The bytes `pve-schema import` writes: pretty JSON with sorted keys and a final newline.
pub fn to_bytes(doc: &serde_json::Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Reads a file and returns its text, naming the file on failure.
pub fn read_text(path: &std::path::Path) -> Result<String, SchemaError> {
    std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Loads either side of a diff: an apidata file (converted on the fly) or an OpenAPI document.
pub fn load_openapi(text: &str, what: &str) -> Result<serde_json::Value, SchemaError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SchemaError::UnknownInput {
                what: what.to_owned(),
                reason: e.to_string(),
            })?;
        if doc.get("openapi").and_then(|v| v.as_str()).is_none() {
            return Err(SchemaError::UnknownInput {
                what: what.to_owned(),
                reason: "a JSON object without an `openapi` field".to_owned(),
            });
        }
        return Ok(doc);
    }
    let nodes = parse_apidata(text, what)?;
    import(&nodes, "unknown")
}
