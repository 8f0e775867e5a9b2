//! Reading pve-docs' `apidata.js`: a JavaScript file holding one JSON array
//! (declared as `apiSchema = [...];`), or the bare JSON array.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::SchemaError;

/// One node of the API tree: a path, the methods it answers and its sub-paths.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiNode {
    pub path: String,
    #[serde(default)]
    pub info: Option<BTreeMap<String, ApiMethod>>,
    #[serde(default)]
    pub children: Option<Vec<ApiNode>>,
}

/// One method of a path; only the parts the importer converts are kept.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiMethod {
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub returns: Option<Value>,
}

impl ApiNode {
    /// Calls `f` for this node and every node below it, depth first, in file order.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a ApiNode)) {
        f(self);
        for child in self.children.iter().flatten() {
            child.walk(f);
        }
    }
}

/// Parses the text of an apidata file. `what` names the input in error messages.
pub fn parse_apidata(text: &str, what: &str) -> Result<Vec<ApiNode>, SchemaError> {
    let not_apidata = |reason: String| SchemaError::NotApidata {
        what: what.to_owned(),
        reason,
    };
    let json = strip_js_wrapper(text).ok_or_else(|| {
        not_apidata("it neither starts with `[` nor with a `const NAME = [` declaration".into())
    })?;
    let nodes: Vec<ApiNode> = serde_json::from_str(json).map_err(|e| not_apidata(e.to_string()))?;
    if nodes.is_empty() {
        return Err(not_apidata("the API tree is empty".into()));
    }
    Ok(nodes)
}

/// Returns the JSON array declared in the file (`apiSchema = [...];` after `const`, `var` or
/// `let`), or the text itself when it is bare JSON.
fn strip_js_wrapper(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        return Some(trimmed);
    }
    let rest = ["const ", "var ", "let "]
        .iter()
        .find_map(|kw| trimmed.strip_prefix(kw))?;
    let (name, value) = rest.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let value = value.trim().trim_end_matches(';').trim_end();
    value.starts_with('[').then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = r#"[{"path": "/version", "text": "version", "leaf": 1,
        "info": {"GET": {"parameters": {"properties": {}}, "returns": {"type": "object"}}}}]"#;

    #[test]
    fn reads_bare_json_and_the_js_wrapper() {
        let bare = parse_apidata(TINY, "tiny").unwrap();
        let wrapped =
            parse_apidata(&format!("{} apiSchema = {TINY}\n;\n", "const"), "tiny").unwrap();
        assert_eq!(bare.len(), 1);
        assert_eq!(wrapped[0].path, "/version");
        assert!(wrapped[0].info.as_ref().unwrap().contains_key("GET"));
    }

    #[test]
    fn names_the_input_when_it_is_not_apidata() {
        for text in [
            "<html>not it</html>",
            "var apiSchema = {\"a\": 1};",
            "[]",
            "[{\"nopath\": 1}]",
            "let apiSchema = [{\"path\": \"/x\"",
        ] {
            let err = parse_apidata(text, "input.js").unwrap_err();
            assert!(
                matches!(err, SchemaError::NotApidata { .. }),
                "{text}: {err}"
            );
            assert!(err.to_string().contains("input.js"), "{err}");
        }
    }
}
