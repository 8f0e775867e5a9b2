//! Conversion of the apidata tree into an OpenAPI 3.0.3 document.
//!
//! Requests keep PVE's declared types, since PVE checks what it is sent. Responses do not: PVE
//! answers with `0`/`1` for booleans, numbers as strings, `"N/A"` and so on, so every scalar in
//! a response is a `$ref` to one of the lenient component schemas in [`LENIENT_SCALARS`], which
//! `build.rs` replaces with our own forgiving Rust types. Response properties are never required
//! and objects are never closed, so fields PVE adds or drops do not break decoding.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::{ApiNode, SchemaError, apidata::ApiMethod};

/// PVE scalar type → name of the component schema that stands for it in responses.
pub const LENIENT_SCALARS: [(&str, &str); 4] = [
    ("boolean", "PveBoolean"),
    ("integer", "PveInteger"),
    ("number", "PveNumber"),
    ("string", "PveString"),
];

const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];

/// The stable operationId of `method path`: the method, then each path segment with
/// parameters unbraced, everything not alphanumeric turned into `_`
/// (`GET /nodes/{node}/disks/list` → `get_nodes_node_disks_list`).
pub fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        id.push_str("_root");
    }
    for segment in segments {
        id.push('_');
        id.extend(
            segment
                .trim_matches(|c| c == '{' || c == '}')
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                }),
        );
    }
    id
}

/// Converts the whole API tree. `version` goes to `info.version`.
pub fn import(nodes: &[ApiNode], version: &str) -> Result<Value, SchemaError> {
    let mut paths = Map::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut found: Vec<&ApiNode> = Vec::new();
    for node in nodes {
        node.walk(&mut |n| found.push(n));
    }
    for node in found {
        let Some(info) = node.info.as_ref().filter(|i| !i.is_empty()) else {
            continue;
        };
        let mut item = Map::new();
        for (method, op) in info {
            let upper = method.to_ascii_uppercase();
            if !METHODS.contains(&upper.as_str()) {
                return Err(SchemaError::UnknownType {
                    ty: format!("HTTP method {method}"),
                    method: upper,
                    path: node.path.clone(),
                    location: "info".into(),
                });
            }
            let id = operation_id(&upper, &node.path);
            let here = format!("{upper} {}", node.path);
            if let Some(first) = ids.insert(id.clone(), here.clone()) {
                return Err(SchemaError::DuplicateOperationId {
                    id,
                    first,
                    second: here,
                });
            }
            let site = Site {
                method: &upper,
                path: &node.path,
            };
            item.insert(
                upper.to_ascii_lowercase(),
                convert_operation(&site, &id, op)?,
            );
        }
        paths.insert(node.path.clone(), Value::Object(item));
    }

    let mut schemas = Map::new();
    for (ty, name) in LENIENT_SCALARS {
        schemas.insert(name.to_owned(), lenient_component(ty));
    }
    Ok(json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Proxmox VE API",
            "version": version,
            "x-generated-by": "pve-schema import",
        },
        "servers": [{
            "url": "https://{host}:8006/api2/json",
            "variables": { "host": { "default": "localhost" } },
        }],
        "security": [{ "PVEAPIToken": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "PVEAPIToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                },
            },
        },
    }))
}

/// What PVE may really send for a scalar of type `ty`; the Rust type that decodes it is ours.
fn lenient_component(ty: &str) -> Value {
    let sent: &[&str] = match ty {
        "boolean" => &["boolean", "integer", "string"],
        "string" => &["string", "number", "boolean"],
        _ => &["integer", "number", "string", "boolean"],
    };
    json!({
        "nullable": true,
        "oneOf": sent.iter().map(|t| json!({ "type": t })).collect::<Vec<_>>(),
        "x-pve-type": ty,
    })
}

/// Where a schema sits, for error messages.
struct Site<'a> {
    method: &'a str,
    path: &'a str,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Request,
    Response,
}

fn convert_operation(site: &Site, id: &str, op: &ApiMethod) -> Result<Value, SchemaError> {
    let template_params: Vec<&str> = site
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .collect();
    let declared: Map<String, Value> = op
        .parameters
        .as_ref()
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();

    let mut parameters = Vec::new();
    for name in &template_params {
        let schema = match declared.get(*name) {
            Some(s) => convert(s, Side::Request, site, &format!("parameters.{name}"))?,
            None => json!({ "type": "string" }),
        };
        parameters.push(json!({ "name": name, "in": "path", "required": true, "schema": schema }));
    }

    let in_query = matches!(site.method, "GET" | "DELETE");
    let mut body = Fields::default();
    for (name, schema) in &declared {
        if template_params.contains(&name.as_str()) {
            continue;
        }
        let location = format!("parameters.{name}");
        let converted = convert(schema, Side::Request, site, &location)?;
        if in_query && indexed_base(name).is_none() {
            parameters.push(json!({
                "name": name,
                "in": "query",
                "required": !is_optional(schema),
                "schema": converted,
            }));
        } else {
            body.add(name, schema, converted, Side::Request);
        }
    }

    let mut operation = Map::new();
    operation.insert("operationId".into(), json!(id));
    if !parameters.is_empty() {
        operation.insert("parameters".into(), Value::Array(parameters));
    }
    if !body.is_empty() {
        if in_query {
            // Indexed query parameters (`name[n]`) cannot be listed one by one.
            operation.insert("x-pve-indexed-parameters".into(), json!(body.indexed));
        } else {
            let required = !body.required.is_empty();
            operation.insert(
                "requestBody".into(),
                json!({
                    "required": required,
                    "content": { "application/json": { "schema": body.into_object() } },
                }),
            );
        }
    }
    let data = match &op.returns {
        Some(returns) => convert(returns, Side::Response, site, "returns")?,
        None => json!({}),
    };
    operation.insert(
        "responses".into(),
        json!({
            "200": {
                "description": "Success",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": { "data": data },
                }}},
            },
        }),
    );
    Ok(Value::Object(operation))
}

/// The properties of an object being converted.
#[derive(Default)]
struct Fields {
    properties: BTreeMap<String, Value>,
    indexed: BTreeMap<String, Value>,
    required: Vec<String>,
}

impl Fields {
    fn add(&mut self, name: &str, original: &Value, converted: Value, side: Side) {
        if let Some(base) = indexed_base(name) {
            self.indexed.insert(base.to_owned(), converted);
            return;
        }
        if side == Side::Request && !is_optional(original) {
            self.required.push(name.to_owned());
        }
        self.properties.insert(name.to_owned(), converted);
    }

    fn is_empty(&self) -> bool {
        self.properties.is_empty() && self.indexed.is_empty()
    }

    fn into_object(self) -> Value {
        let mut object = Map::new();
        object.insert("type".into(), json!("object"));
        if !self.properties.is_empty() {
            object.insert("properties".into(), json!(self.properties));
        }
        if !self.required.is_empty() {
            object.insert("required".into(), json!(self.required));
        }
        if !self.indexed.is_empty() {
            // `net[n]` stands for net0, net1, …: recorded by its base name.
            object.insert("x-pve-indexed-properties".into(), json!(self.indexed));
        }
        Value::Object(object)
    }
}

/// `net[n]` → `net`.
fn indexed_base(name: &str) -> Option<&str> {
    name.strip_suffix("[n]").filter(|b| !b.is_empty())
}

fn is_optional(schema: &Value) -> bool {
    truthy(schema.get("optional"))
}

/// apidata writes flags as `1`, `"1"` or `true`.
fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !matches!(s.as_str(), "" | "0" | "false"),
        _ => false,
    }
}

fn declared_type(schema: &Map<String, Value>) -> &str {
    match schema.get("type").and_then(Value::as_str) {
        Some(ty) => ty,
        None if schema.contains_key("properties") => "object",
        None if schema.contains_key("items") => "array",
        None => "any",
    }
}

fn convert(schema: &Value, side: Side, site: &Site, location: &str) -> Result<Value, SchemaError> {
    let Some(schema) = schema.as_object() else {
        return Ok(json!({}));
    };
    if let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) {
        let mut converted = Vec::with_capacity(alternatives.len());
        for (i, alt) in alternatives.iter().enumerate() {
            let mut alt = convert(alt, side, site, &format!("{location}.oneOf[{i}]"))?;
            if let (Some(types), Some(obj)) =
                (alternatives[i].get("instance-types"), alt.as_object_mut())
            {
                obj.insert("x-pve-instance-types".into(), types.clone());
            }
            converted.push(alt);
        }
        let mut out = Map::new();
        out.insert("oneOf".into(), Value::Array(converted));
        if let Some(prop) = schema.get("type-property") {
            out.insert("x-pve-type-property".into(), prop.clone());
        }
        return Ok(Value::Object(out));
    }

    let ty = declared_type(schema);
    let mut out = match ty {
        "string" | "integer" | "number" | "boolean" => scalar(schema, ty, side),
        "object" => {
            let mut fields = Fields::default();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    let converted = convert(prop, side, site, &format!("{location}.{name}"))?;
                    fields.add(name, prop, converted, side);
                }
            }
            let mut object = fields.into_object();
            if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                let extra = convert(extra, side, site, &format!("{location}.*"))?;
                object["additionalProperties"] = extra;
            }
            object
        }
        "array" => {
            let items = match schema.get("items") {
                Some(items) => convert(items, side, site, &format!("{location}[]"))?,
                None => json!({}),
            };
            json!({ "type": "array", "items": items })
        }
        "null" => json!({ "nullable": true, "x-pve-type": "null" }),
        "any" => json!({}),
        other => {
            return Err(SchemaError::UnknownType {
                ty: other.to_owned(),
                method: site.method.to_owned(),
                path: site.path.to_owned(),
                location: location.to_owned(),
            });
        }
    };
    // PVE sends `null` for absent lists and objects that are fields of an answer
    // (`"osdid-list": null`). The answer's own `data` and list items stay non-nullable.
    let is_field = location != "returns" && !location.ends_with("[]");
    if side == Side::Response
        && is_field
        && matches!(ty, "object" | "array")
        && let Some(obj) = out.as_object_mut()
    {
        obj.insert("nullable".into(), json!(true));
    }
    Ok(out)
}

fn scalar(schema: &Map<String, Value>, ty: &str, side: Side) -> Value {
    let mut out = Map::new();
    match side {
        Side::Response => {
            let (_, name) = LENIENT_SCALARS
                .iter()
                .find(|(t, _)| *t == ty)
                .copied()
                .unwrap_or(("string", "PveString"));
            out.insert("$ref".into(), json!(format!("#/components/schemas/{name}")));
            if let Some(values) = schema.get("enum") {
                out.insert("x-pve-enum".into(), values.clone());
            }
        }
        Side::Request => {
            out.insert("type".into(), json!(ty));
            let facts: &[&str] = match ty {
                "string" => &["enum", "minLength", "maxLength"],
                "integer" | "number" => &["minimum", "maximum"],
                _ => &[],
            };
            for fact in facts {
                if let Some(v) = schema.get(*fact) {
                    out.insert((*fact).into(), v.clone());
                }
            }
            if let Some(pattern) = schema.get("pattern") {
                // PVE's patterns are Perl regexes: kept as a fact, not enforced by the client.
                out.insert("x-pve-pattern".into(), pattern.clone());
            }
        }
    }
    if let Some(format) = schema.get("format") {
        out.insert("x-pve-format".into(), without_prose(format));
    }
    Value::Object(out)
}

/// A copy of `value` without pve-docs' prose: descriptions, titles and type texts.
fn without_prose(value: &Value) -> Value {
    const PROSE: [&str; 5] = [
        "description",
        "verbose_description",
        "format_description",
        "title",
        "typetext",
    ];
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !PROSE.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), without_prose(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_prose).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse_apidata;

    /// A small API tree of our own, with one of everything the importer has to handle.
    const SNIPPET: &str = r#"let apiSchema = [
      {"path": "/nodes", "text": "nodes", "leaf": 0,
       "info": {"GET": {"method": "GET", "description": "NOT-COPIED prose",
                        "parameters": {"additionalProperties": 0},
                        "returns": {"type": "array", "items": {"type": "object",
                                    "properties": {"node": {"type": "string"}}}}}},
       "children": [
        {"path": "/nodes/{node}", "text": "{node}", "leaf": 0, "info": {},
         "children": [
          {"path": "/nodes/{node}/qemu/{vmid}/config", "text": "config", "leaf": 1,
           "info": {
            "GET": {"parameters": {"properties": {
                       "node": {"type": "string", "format": "pve-node", "description": "x"},
                       "vmid": {"type": "integer", "minimum": 100, "maximum": 999999999,
                                "title": "NOT-COPIED title", "typetext": "<NOT-COPIED>"},
                       "current": {"type": "boolean", "optional": 1, "default": 0},
                       "snapshot": {"type": "string", "optional": "1", "maxLength": 40,
                                    "pattern": "[a-z]+"}}},
                    "returns": {"type": "object", "properties": {
                       "cores": {"type": "integer", "optional": 1},
                       "cpulimit": {"type": "number"},
                       "onboot": {"type": "boolean"},
                       "ostype": {"type": "string", "enum": ["l26", "win11"]},
                       "net[n]": {"type": "string", "format": {"model": {"type": "string",
                                  "description": "NOT-COPIED either"}}},
                       "tags": {"type": "array", "items": {"type": "string"}},
                       "meta": {"type": "object", "additionalProperties": {"type": "integer"}},
                       "nothing": {"type": "null"},
                       "anything": {"type": "any"},
                       "untyped": {"optional": 1}}}},
            "PUT": {"parameters": {"properties": {
                       "node": {"type": "string"},
                       "vmid": {"type": "integer"},
                       "cores": {"type": "integer", "optional": 1, "minimum": 1},
                       "net[n]": {"type": "string", "optional": 1},
                       "name": {"type": "string"}}},
                    "returns": {"type": "null"}}}},
          {"path": "/nodes/{node}/status", "text": "status", "leaf": 1,
           "info": {"GET": {"parameters": {"properties": {"node": {"type": "string"}}}},
                    "DELETE": {"parameters": {"properties": {"node": {"type": "string"}}},
                               "returns": {"type": "object", "properties": {
                                 "inner": {"properties": {"deep": {"type": "integer"}}}}}}}}
         ]}
       ]}
    ];"#;

    fn imported() -> Value {
        let nodes = parse_apidata(SNIPPET, "snippet").unwrap();
        import(&nodes, "0.0-test").unwrap()
    }

    fn op<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
        &doc["paths"][path][method]
    }

    fn data(doc: &Value, path: &str, method: &str) -> Value {
        op(doc, path, method)["responses"]["200"]["content"]["application/json"]["schema"]
            ["properties"]["data"]
            .clone()
    }

    #[test]
    fn every_path_with_a_method_and_nothing_else() {
        let doc = imported();
        let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        assert_eq!(
            paths,
            [
                "/nodes",
                "/nodes/{node}/qemu/{vmid}/config",
                "/nodes/{node}/status"
            ]
        );
        assert_eq!(doc["openapi"], "3.0.3");
        assert_eq!(doc["info"]["version"], "0.0-test");
    }

    #[test]
    fn operation_ids_come_from_method_and_path() {
        let doc = imported();
        assert_eq!(
            op(&doc, "/nodes/{node}/qemu/{vmid}/config", "get")["operationId"],
            "get_nodes_node_qemu_vmid_config"
        );
        assert_eq!(
            op(&doc, "/nodes/{node}/status", "delete")["operationId"],
            "delete_nodes_node_status"
        );
        assert_eq!(operation_id("GET", "/"), "get_root");
        assert_eq!(
            operation_id("POST", "/nodes/{node}/qemu/{vmid}/agent/get-fsinfo"),
            "post_nodes_node_qemu_vmid_agent_get_fsinfo"
        );
    }

    #[test]
    fn colliding_operation_ids_are_refused() {
        let text = r#"[{"path": "/a-b", "info": {"GET": {}}},
                       {"path": "/a_b", "info": {"GET": {}}}]"#;
        let err = import(&parse_apidata(text, "t").unwrap(), "1").unwrap_err();
        assert!(
            matches!(err, SchemaError::DuplicateOperationId { ref id, .. } if id == "get_a_b"),
            "{err}"
        );
    }

    #[test]
    fn path_parameters_are_separated_from_query_parameters() {
        let doc = imported();
        let params = op(&doc, "/nodes/{node}/qemu/{vmid}/config", "get")["parameters"]
            .as_array()
            .unwrap()
            .clone();
        let summary: Vec<(String, String, bool)> = params
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["in"].as_str().unwrap().to_owned(),
                    p["required"].as_bool().unwrap(),
                )
            })
            .collect();
        let expected = [
            ("node", "path", true),
            ("vmid", "path", true),
            ("current", "query", false),
            ("snapshot", "query", false),
        ]
        .map(|(n, i, r)| (n.to_owned(), i.to_owned(), r));
        assert_eq!(summary, expected);
        assert_eq!(params[1]["schema"]["minimum"], 100);
        assert_eq!(params[3]["schema"]["maxLength"], 40);
        assert_eq!(params[3]["schema"]["x-pve-pattern"], "[a-z]+");
        assert_eq!(params[0]["schema"]["x-pve-format"], "pve-node");
        // A template parameter PVE forgot to declare is still a path parameter.
        let status = op(&doc, "/nodes/{node}/status", "get");
        assert_eq!(status["parameters"][0]["in"], "path");
    }

    #[test]
    fn bodies_and_indexed_names() {
        let doc = imported();
        let put = op(&doc, "/nodes/{node}/qemu/{vmid}/config", "put");
        let body = &put["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(put["requestBody"]["required"], true);
        assert_eq!(body["required"], json!(["name"]));
        assert_eq!(body["properties"]["cores"]["minimum"], 1);
        assert!(body["properties"].get("net[n]").is_none());
        assert_eq!(body["x-pve-indexed-properties"]["net"]["type"], "string");
        let returned = data(&doc, "/nodes/{node}/qemu/{vmid}/config", "get");
        assert_eq!(
            returned["x-pve-indexed-properties"]["net"]["$ref"],
            "#/components/schemas/PveString"
        );
        // A format given as an object is kept as facts, without its prose.
        assert_eq!(
            returned["x-pve-indexed-properties"]["net"]["x-pve-format"],
            json!({"model": {"type": "string"}})
        );
    }

    #[test]
    fn every_pve_type_in_a_response() {
        let doc = imported();
        let config = data(&doc, "/nodes/{node}/qemu/{vmid}/config", "get");
        let props = &config["properties"];
        let r = |name: &str| format!("#/components/schemas/{name}");
        assert_eq!(props["cores"]["$ref"], r("PveInteger"));
        assert_eq!(props["cpulimit"]["$ref"], r("PveNumber"));
        assert_eq!(props["onboot"]["$ref"], r("PveBoolean"));
        assert_eq!(props["ostype"]["$ref"], r("PveString"));
        assert_eq!(props["ostype"]["x-pve-enum"], json!(["l26", "win11"]));
        assert_eq!(props["tags"]["items"]["$ref"], r("PveString"));
        assert_eq!(
            props["meta"]["additionalProperties"]["$ref"],
            r("PveInteger")
        );
        assert_eq!(props["nothing"]["x-pve-type"], "null");
        assert_eq!(props["anything"], json!({}));
        assert_eq!(props["untyped"], json!({}));
        // Nothing in a response is required or closed; nested lists and objects may be null.
        assert!(config.get("required").is_none());
        assert_eq!(props["tags"]["nullable"], true);
        assert_eq!(props["meta"]["nullable"], true);
        assert!(
            config.get("nullable").is_none(),
            "`data` itself is not nullable"
        );
        assert!(!doc.to_string().contains("\"additionalProperties\":false"));
        for (_, name) in LENIENT_SCALARS {
            assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
        }
    }

    #[test]
    fn nested_and_missing_returns() {
        let doc = imported();
        // Missing `returns`: `data` is anything.
        assert_eq!(data(&doc, "/nodes/{node}/status", "get"), json!({}));
        // An object without `type` but with properties, inside another.
        let nested = data(&doc, "/nodes/{node}/status", "delete");
        assert_eq!(
            nested["properties"]["inner"]["properties"]["deep"]["$ref"],
            "#/components/schemas/PveInteger"
        );
        // Every answer is wrapped in PVE's envelope, `data` required.
        let envelope =
            &op(&doc, "/nodes", "get")["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(envelope["required"], json!(["data"]));
        assert_eq!(envelope["properties"]["data"]["type"], "array");
    }

    #[test]
    fn no_prose_is_copied() {
        let text = imported().to_string();
        for prose in ["NOT-COPIED", "\"typetext\"", "\"verbose_description\""] {
            assert!(!text.contains(prose), "{prose} in output");
        }
    }

    #[test]
    fn unknown_types_are_named() {
        let text = r#"[{"path": "/x", "info": {"GET": {"returns": {"type": "object",
                        "properties": {"f": {"type": "quaternion"}}}}}}]"#;
        let err = import(&parse_apidata(text, "t").unwrap(), "1").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("quaternion"), "{message}");
        assert!(message.contains("GET /x"), "{message}");
        assert!(message.contains("returns.f"), "{message}");
    }

    #[test]
    fn importing_twice_gives_identical_bytes() {
        let a = serde_json::to_vec_pretty(&imported()).unwrap();
        let b = serde_json::to_vec_pretty(&imported()).unwrap();
        assert_eq!(a, b);
    }
}
