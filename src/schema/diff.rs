//! What changed between two PVE API versions, as a maintainer needs to see it: paths and
//! methods added or removed, and response fields added, removed or given another type.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

/// One difference between an old and a new OpenAPI document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    PathAdded(String),
    PathRemoved(String),
    MethodAdded {
        method: String,
        path: String,
    },
    MethodRemoved {
        method: String,
        path: String,
    },
    FieldAdded {
        op: String,
        field: String,
        ty: String,
    },
    FieldRemoved {
        op: String,
        field: String,
        ty: String,
    },
    FieldRetyped {
        op: String,
        field: String,
        old: String,
        new: String,
    },
    EnumChanged {
        op: String,
        field: String,
        added: Vec<String>,
        removed: Vec<String>,
    },
}

impl Change {
    /// The API path the change is about.
    pub fn path(&self) -> &str {
        match self {
            Change::PathAdded(p) | Change::PathRemoved(p) => p,
            Change::MethodAdded { path, .. } | Change::MethodRemoved { path, .. } => path,
            Change::FieldAdded { op, .. }
            | Change::FieldRemoved { op, .. }
            | Change::FieldRetyped { op, .. }
            | Change::EnumChanged { op, .. } => op.split_once(' ').map_or(op, |(_, p)| p),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::PathAdded(p) => write!(f, "+ path {p}"),
            Change::PathRemoved(p) => write!(f, "- path {p}"),
            Change::MethodAdded { method, path } => write!(f, "+ {method} {path}"),
            Change::MethodRemoved { method, path } => write!(f, "- {method} {path}"),
            Change::FieldAdded { op, field, ty } => write!(f, "~ {op}: + {field} ({ty})"),
            Change::FieldRemoved { op, field, ty } => write!(f, "~ {op}: - {field} ({ty})"),
            Change::FieldRetyped {
                op,
                field,
                old,
                new,
            } => {
                write!(f, "~ {op}: {field} {old} -> {new}")
            }
            Change::EnumChanged {
                op,
                field,
                added,
                removed,
            } => {
                write!(f, "~ {op}: {field} values")?;
                if !added.is_empty() {
                    write!(f, " +[{}]", added.join(", "))?;
                }
                if !removed.is_empty() {
                    write!(f, " -[{}]", removed.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// A response field: its type, and its enum values when it has any.
#[derive(Debug, Clone, PartialEq)]
struct Field {
    ty: String,
    values: Option<BTreeSet<String>>,
}

type Operations = BTreeMap<String, BTreeMap<String, BTreeMap<String, Field>>>;

/// Compares two OpenAPI documents (as produced by `import`, or any OpenAPI 3.0 document).
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let (old_ops, new_ops) = (operations(old), operations(new));
    let mut changes = Vec::new();
    for path in old_ops.keys().filter(|p| !new_ops.contains_key(*p)) {
        changes.push(Change::PathRemoved(path.clone()));
    }
    for path in new_ops.keys().filter(|p| !old_ops.contains_key(*p)) {
        changes.push(Change::PathAdded(path.clone()));
    }
    for (path, old_methods) in &old_ops {
        let Some(new_methods) = new_ops.get(path) else {
            continue;
        };
        for method in old_methods.keys().filter(|m| !new_methods.contains_key(*m)) {
            changes.push(Change::MethodRemoved {
                method: method.clone(),
                path: path.clone(),
            });
        }
        for method in new_methods.keys().filter(|m| !old_methods.contains_key(*m)) {
            changes.push(Change::MethodAdded {
                method: method.clone(),
                path: path.clone(),
            });
        }
        for (method, old_fields) in old_methods {
            if let Some(new_fields) = new_methods.get(method) {
                compare_fields(
                    &format!("{method} {path}"),
                    old_fields,
                    new_fields,
                    &mut changes,
                );
            }
        }
    }
    changes.sort();
    changes
}

fn compare_fields(
    op: &str,
    old: &BTreeMap<String, Field>,
    new: &BTreeMap<String, Field>,
    changes: &mut Vec<Change>,
) {
    for (field, before) in old {
        let Some(after) = new.get(field) else {
            changes.push(Change::FieldRemoved {
                op: op.to_owned(),
                field: field.clone(),
                ty: before.ty.clone(),
            });
            continue;
        };
        if before.ty != after.ty {
            changes.push(Change::FieldRetyped {
                op: op.to_owned(),
                field: field.clone(),
                old: before.ty.clone(),
                new: after.ty.clone(),
            });
        } else if before.values != after.values {
            let empty = BTreeSet::new();
            let (b, a) = (
                before.values.as_ref().unwrap_or(&empty),
                after.values.as_ref().unwrap_or(&empty),
            );
            changes.push(Change::EnumChanged {
                op: op.to_owned(),
                field: field.clone(),
                added: a.difference(b).cloned().collect(),
                removed: b.difference(a).cloned().collect(),
            });
        }
    }
    for (field, after) in new.iter().filter(|(f, _)| !old.contains_key(*f)) {
        changes.push(Change::FieldAdded {
            op: op.to_owned(),
            field: field.clone(),
            ty: after.ty.clone(),
        });
    }
}

/// path → method → response field → field.
fn operations(doc: &Value) -> Operations {
    let mut out = Operations::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return out;
    };
    for (path, item) in paths {
        let methods = out.entry(path.clone()).or_default();
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, op) in item {
            if !matches!(method.as_str(), "get" | "post" | "put" | "delete" | "patch") {
                continue;
            }
            let mut fields = BTreeMap::new();
            let schema = op
                .pointer("/responses/200/content/application~1json/schema")
                .unwrap_or(&Value::Null);
            // Fields are named from inside PVE's `{"data": ...}` envelope.
            let data = resolve(doc, schema)
                .pointer("/properties/data")
                .unwrap_or(schema);
            flatten(doc, data, "data", &mut fields, 0);
            methods.insert(method.to_ascii_uppercase(), fields);
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|pointer| doc.pointer(pointer))
            .unwrap_or(schema),
        None => schema,
    }
}

fn flatten(
    doc: &Value,
    schema: &Value,
    at: &str,
    fields: &mut BTreeMap<String, Field>,
    depth: usize,
) {
    const MAX_DEPTH: usize = 32; // a guard against self-referencing documents
    let target = resolve(doc, schema);
    let ty = type_name(schema, target);
    let values = schema
        .get("x-pve-enum")
        .or_else(|| target.get("enum"))
        .and_then(Value::as_array)
        .map(|v| v.iter().map(value_text).collect());
    fields.insert(
        at.to_owned(),
        Field {
            ty: ty.clone(),
            values,
        },
    );
    if depth >= MAX_DEPTH {
        return;
    }
    match ty.as_str() {
        "object" => {
            for (key, suffix) in [("properties", ""), ("x-pve-indexed-properties", "[n]")] {
                let subs = target
                    .get(key)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten();
                for (name, sub) in subs {
                    flatten(doc, sub, &format!("{at}.{name}{suffix}"), fields, depth + 1);
                }
            }
            if let Some(extra) = target.get("additionalProperties").filter(|v| v.is_object()) {
                flatten(doc, extra, &format!("{at}.*"), fields, depth + 1);
            }
        }
        "array" => {
            if let Some(items) = target.get("items") {
                flatten(doc, items, &format!("{at}[]"), fields, depth + 1);
            }
        }
        _ => {}
    }
}

fn type_name(schema: &Value, target: &Value) -> String {
    if let Some(t) = target.get("x-pve-type").and_then(Value::as_str) {
        return t.to_owned();
    }
    if let Some(t) = target.get("type").and_then(Value::as_str) {
        return t.to_owned();
    }
    if target.get("properties").is_some() {
        return "object".to_owned();
    }
    if target.get("oneOf").is_some() {
        return "oneOf".to_owned();
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    "any".to_owned()
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
