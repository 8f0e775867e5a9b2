//! The list of PVE API operations the exporter calls (`schema/operations.txt`), and the cut of
//! the OpenAPI document down to them.
//!
//! `build.rs` includes this file as a module of its own (it can only use `std` and
//! `serde_json`), so the build, the crate and its tests read the list the same way.

use serde_json::{Map, Value};

/// One `METHOD /path [+field:type …]` line of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Lower case, as OpenAPI path items key it: `get`.
    pub method: String,
    pub path: String,
    /// Fields of the answer's items that PVE sends although some versions' API description
    /// leaves them out (`template` in PVE 7.4's `/cluster/resources`): (name, PVE type).
    pub sent_anyway: Vec<(String, String)>,
    /// `=field`: the only fields of the answer's items (or object) the exporter reads; the
    /// generated type holds just these (and the `+` ones), so nothing else is decoded or kept.
    /// Empty: every documented field.
    pub only: Vec<String>,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method.to_ascii_uppercase(), self.path)
    }
}

/// Reads `METHOD /path [+field:type …] [=field …]` lines; `#` starts a comment, and a line
/// that starts with `+` or `=` goes on declaring fields of the operation above it. A field is `name`,
/// `object.name` inside a nested object, or `list[].name` inside the objects of a list; a type
/// is a scalar or a list of one (`string[]`).
/// `file` names the list in errors.
pub fn parse_operations(text: &str, file: &str) -> Result<Vec<Operation>, String> {
    const TYPES: [&str; 4] = ["boolean", "integer", "number", "string"];
    let mut ops: Vec<Operation> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || {
            format!(
                "{file}:{}: expected `METHOD /path [+field:type …]` or `+field:type …` (METHOD \
                 one of GET, POST, PUT, DELETE; type one of {}, or a list of one as `string[]`), \
                 found `{line}`",
                n + 1,
                TYPES.join(", ")
            )
        };
        let mut words = line.split_whitespace().peekable();
        if words.peek().is_some_and(|w| !w.starts_with(['+', '='])) {
            let (Some(method), Some(path)) = (words.next(), words.next()) else {
                return Err(bad());
            };
            if !path.starts_with('/') || !["GET", "POST", "PUT", "DELETE"].contains(&method) {
                return Err(bad());
            }
            ops.push(Operation {
                method: method.to_ascii_lowercase(),
                path: path.to_owned(),
                sent_anyway: Vec::new(),
                only: Vec::new(),
            });
        }
        let Some(op) = ops.last_mut() else {
            return Err(bad());
        };
        for word in words {
            if let Some(kept) = word.strip_prefix('=') {
                if kept.is_empty() || kept.contains(['.', ':', '[']) {
                    return Err(bad());
                }
                op.only.push(kept.to_owned());
                continue;
            }
            let declared = word.strip_prefix('+').and_then(|w| w.split_once(':'));
            match declared {
                Some((name, ty))
                    if !name.is_empty()
                        && name
                            .split('.')
                            .all(|part| !part.trim_end_matches("[]").is_empty())
                        && TYPES.contains(&ty.strip_suffix("[]").unwrap_or(ty)) =>
                {
                    op.sent_anyway.push((name.to_owned(), ty.to_owned()));
                }
                _ => return Err(bad()),
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
        let mut found = spec
            .pointer(&pointer)
            .ok_or_else(|| format!("operation `{op}` is not in {schema}"))?
            .clone();
        add_sent_anyway(&mut found, op);
        if let Some(item) = paths
            .entry(op.path.clone())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
        {
            item.insert(op.method.clone(), found);
        }
    }
    let mut cut = spec.clone();
    match cut.as_object_mut() {
        Some(doc) => doc.insert("paths".into(), Value::Object(paths)),
        None => return Err(format!("{schema} is not a JSON object")),
    };
    Ok(cut)
}

/// Declares `op.sent_anyway` in the answer's items (or the answer's object) where the
/// document does not, as the lenient scalar of their type.
fn add_sent_anyway(operation: &mut Value, op: &Operation) {
    let Some(data) =
        operation.pointer_mut("/responses/200/content/application~1json/schema/properties/data")
    else {
        return;
    };
    let target = if data.get("items").is_some() {
        &mut data["items"]
    } else {
        data
    };
    if !op.only.is_empty()
        && let Some(properties) = target.get_mut("properties").and_then(Value::as_object_mut)
    {
        properties.retain(|name, _| op.only.contains(name));
    }
    for (name, ty) in &op.sent_anyway {
        declare(target, name, ty);
    }
}

/// Declares the field `name` (`a.b` inside the object `a`) of PVE type `ty` in the object
/// schema `target`, unless it is declared already.
fn declare(target: &mut Value, name: &str, ty: &str) {
    let Some(object) = target.as_object_mut() else {
        return;
    };
    let properties = object
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(properties) = properties.as_object_mut() else {
        return;
    };
    if let Some((outer, inner)) = name.split_once('.') {
        // `list[].field`: a field of the objects in a list.
        if let Some(list) = outer.strip_suffix("[]") {
            let nested = properties.entry(list.to_owned()).or_insert_with(|| {
                serde_json::json!({"type": "array", "nullable": true,
                                   "items": {"type": "object", "properties": {}}})
            });
            if let Some(items) = nested.get_mut("items") {
                declare(items, inner, ty);
            }
            return;
        }
        let nested = properties.entry(outer.to_owned()).or_insert_with(
            || serde_json::json!({"type": "object", "nullable": true, "properties": {}}),
        );
        declare(nested, inner, ty);
        return;
    }
    let scalar = |ty: &str| {
        let lenient = match ty {
            "boolean" => "PveBoolean",
            "integer" => "PveInteger",
            "number" => "PveNumber",
            _ => "PveString",
        };
        serde_json::json!({ "$ref": format!("#/components/schemas/{lenient}") })
    };
    properties
        .entry(name.to_owned())
        .or_insert_with(|| match ty.strip_suffix("[]") {
            Some(item) => {
                serde_json::json!({"type": "array", "nullable": true, "items": scalar(item)})
            }
            None => scalar(ty),
        });
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

    #[test]
    fn fields_sent_anyway_are_declared_where_missing() {
        let data = |props: Value| {
            json!({"responses": {"200": {"content": {"application/json": {"schema": {
                "properties": {"data": {"type": "array", "items": {"type": "object",
                    "properties": props}}}}}}}}})
        };
        let spec = json!({"paths": {
            "/old": {"get": data(json!({"id": {"$ref": "#/components/schemas/PveString"}}))},
            "/new": {"get": data(json!({"template": {"$ref": "#/components/schemas/PveString"}}))},
        }});
        let ops = parse_operations(
            "GET /old +template:boolean\nGET /new +template:boolean",
            "f",
        )
        .unwrap();
        assert_eq!(
            ops[0].sent_anyway,
            [("template".to_owned(), "boolean".to_owned())]
        );
        let cut = select(&spec, &ops, "s").unwrap();
        let items =
            "/responses/200/content/application~1json/schema/properties/data/items/properties";
        let old = cut["paths"]["/old"]["get"].pointer(items).unwrap();
        assert_eq!(old["template"]["$ref"], "#/components/schemas/PveBoolean");
        assert_eq!(old["id"]["$ref"], "#/components/schemas/PveString");
        // A field the document declares keeps its declaration.
        let new = cut["paths"]["/new"]["get"].pointer(items).unwrap();
        assert_eq!(new["template"]["$ref"], "#/components/schemas/PveString");
        assert!(parse_operations("GET /x +template:bool", "f").is_err());
        assert!(parse_operations("GET /x +a..b:string", "f").is_err());
        let nested = parse_operations(
            "GET /old +memory.total:integer +loadavg:string[]\n  +pg.by_state[].count:integer",
            "f",
        )
        .unwrap();
        let cut = select(&spec, &nested, "s").unwrap();
        let props = cut["paths"]["/old"]["get"].pointer(items).unwrap();
        assert_eq!(
            props["memory"]["properties"]["total"]["$ref"],
            "#/components/schemas/PveInteger"
        );
        assert_eq!(
            props["loadavg"]["items"]["$ref"],
            "#/components/schemas/PveString"
        );
        assert_eq!(
            props["pg"]["properties"]["by_state"]["items"]["properties"]["count"]["$ref"],
            "#/components/schemas/PveInteger"
        );
        assert!(parse_operations("GET /x template:boolean", "f").is_err());
    }

    #[test]
    fn only_the_fields_read_are_kept() {
        let items = json!({"type": "object", "properties": {
            "vmid": {"$ref": "#/components/schemas/PveInteger"},
            "name": {"$ref": "#/components/schemas/PveString"},
            "cpu": {"$ref": "#/components/schemas/PveNumber"}}});
        let schema = json!({"properties": {"data": {"type": "array", "items": items}}});
        let ok = json!({"200": {"content": {"application/json": {"schema": schema}}}});
        let spec = json!({"paths": {"/guests": {"get": {"responses": ok}}}});
        let ops = parse_operations("GET /guests =vmid\n  +tags:string =name", "f").unwrap();
        assert_eq!(ops[0].only, ["vmid", "name"]);
        let cut = select(&spec, &ops, "s").unwrap();
        let props = cut["paths"]["/guests"]["get"]
            .pointer(
                "/responses/200/content/application~1json/schema/properties/data/items/properties",
            )
            .unwrap();
        let mut kept: Vec<&String> = props.as_object().unwrap().keys().collect();
        kept.sort();
        assert_eq!(kept, ["name", "tags", "vmid"]);
        assert!(parse_operations("GET /x =", "f").is_err());
        assert!(parse_operations("GET /x =a.b", "f").is_err());
    }
}
