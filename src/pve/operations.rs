//! The list of PVE API operations the exporter calls (`schema/operations.txt`), and the cut of
//! the OpenAPI document down to them.
//!
//! `build.rs` includes this file as a module of its own (it can only use `std` and
//! `serde_json`), so the build, the crate and its tests read the list the same way.

use serde_json::{Map, Value};

/// One `METHOD /path` line of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Lower case, as OpenAPI path items key it: `get`.
    pub method: String,
    pub path: String,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method.to_ascii_uppercase(), self.path)
    }
}

/// Reads `METHOD /path` lines; `#` starts a comment. `file` names the list in errors.
pub fn parse_operations(text: &str, file: &str) -> Result<Vec<Operation>, String> {
    let mut ops = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(method), Some(path), None)
                if path.starts_with('/') && ["GET", "POST", "PUT", "DELETE"].contains(&method) =>
            {
                ops.push(Operation {
                    method: method.to_ascii_lowercase(),
                    path: path.to_owned(),
                });
            }
            _ => {
                return Err(format!(
                    "{file}:{}: expected `METHOD /path` (METHOD one of GET, POST, PUT, DELETE), \
                     found `{line}`",
                    n + 1
                ));
            }
        }
    }
    if ops.is_empty() {
        return Err(format!("{file} lists no operation"));
    }
    Ok(ops)
}

/// A copy of the OpenAPI document `spec` whose paths hold exactly `ops`.
/// `schema` names the document in errors.
pub fn select(spec: &Value, ops: &[Operation], schema: &str) -> Result<Value, String> {
    let mut paths = Map::new();
    for op in ops {
        let pointer = format!(
            "/paths/{}/{}",
            op.path.replace('~', "~0").replace('/', "~1"),
            op.method
        );
        let found = spec
            .pointer(&pointer)
            .ok_or_else(|| format!("operation `{op}` is not in {schema}"))?;
        if let Some(item) = paths
            .entry(op.path.clone())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
        {
            item.insert(op.method.clone(), found.clone());
        }
    }
    let mut cut = spec.clone();
    match cut.as_object_mut() {
        Some(doc) => doc.insert("paths".into(), Value::Object(paths)),
        None => return Err(format!("{schema} is not a JSON object")),
    };
    Ok(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_list_and_names_bad_lines() {
        let ops =
            parse_operations("# c\nGET /cluster/resources # why\n\nGET /a/{b}\n", "ops").unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[1].to_string(), "GET /a/{b}");
        let err = parse_operations("GET /x\nFETCH /y\n", "ops.txt").unwrap_err();
        assert!(
            err.starts_with("ops.txt:2:") && err.contains("FETCH /y"),
            "{err}"
        );
        assert!(parse_operations("GET nopath", "f").is_err());
        assert!(
            parse_operations("# nothing\n", "f")
                .unwrap_err()
                .contains("no operation")
        );
    }

    #[test]
    fn selects_listed_operations_and_names_a_missing_one() {
        let spec = json!({"openapi": "3.0.3", "paths": {
            "/a": {"get": {"operationId": "get_a"}, "post": {"operationId": "post_a"}},
            "/b/{c}": {"get": {"operationId": "get_b_c"}}}});
        let ops = parse_operations("GET /a\nGET /b/{c}", "f").unwrap();
        let cut = select(&spec, &ops, "s.json").unwrap();
        assert_eq!(
            cut["paths"],
            json!({"/a": {"get": {"operationId": "get_a"}},
                   "/b/{c}": {"get": {"operationId": "get_b_c"}}})
        );
        let missing = parse_operations("DELETE /a", "f").unwrap();
        let err = select(&spec, &missing, "s.json").unwrap_err();
        assert_eq!(err, "operation `DELETE /a` is not in s.json");
    }
}
