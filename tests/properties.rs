//! Property tests: whatever PVE or an apidata file holds, decoding and importing return a
//! value or an error, never a panic; and any scalar in any response field decodes.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use proxmox_exporter::collectors::{Collected, Outcome, Snapshot, cluster_resources, guest};
use proxmox_exporter::exporter::{Exposition, Format};
use proxmox_exporter::pve::client::types::{
    GetClusterResourcesResponse, GetNodesNodeCertificatesInfoResponse,
    GetNodesNodeDisksListResponse,
};
use proxmox_exporter::pve::lenient::{PveBoolean, PveInteger, PveNumber, PveString};
use proxmox_exporter::schema;
use serde_json::{Value, json};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("N/A"),
            Just("1.5e+10"),
            Just("0"),
            Just("on"),
            Just(" 42 "),
            Just("-")
        ]
        .prop_map(Value::from),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_-]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const RESOURCE_FIELDS: [&str; 14] = [
    "id",
    "type",
    "node",
    "status",
    "vmid",
    "name",
    "template",
    "maxcpu",
    "maxmem",
    "maxdisk",
    "disk",
    "storage",
    "plugintype",
    "memhost",
];

/// Up to `max` resource rows, each with some of the fields the collectors read, holding any
/// scalar.
fn resource_rows(max: usize) -> impl Strategy<Value = Vec<Value>> {
    let field = prop::sample::select(&RESOURCE_FIELDS[..]);
    let row = prop::collection::btree_map(field, scalar(), 0..14)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    prop::collection::vec(row, 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lenient_scalars_never_panic(value in any_json()) {
        let _ = serde_json::from_value::<PveBoolean>(value.clone());
        let _ = serde_json::from_value::<PveInteger>(value.clone());
        let _ = serde_json::from_value::<PveNumber>(value.clone());
        let _ = serde_json::from_value::<PveString>(value);
    }

    #[test]
    fn any_scalar_in_any_field_decodes(rows in resource_rows(8)) {
        let body = json!({ "data": rows });
        prop_assert!(serde_json::from_value::<GetClusterResourcesResponse>(body.clone()).is_ok());
        prop_assert!(serde_json::from_value::<GetNodesNodeDisksListResponse>(body.clone()).is_ok());
        prop_assert!(serde_json::from_value::<GetNodesNodeCertificatesInfoResponse>(body).is_ok());
    }

    #[test]
    fn any_answer_decodes_or_fails_cleanly(body in any_json()) {
        let _ = serde_json::from_value::<GetClusterResourcesResponse>(body.clone());
        let _ = serde_json::from_value::<GetNodesNodeDisksListResponse>(body);
    }

    #[test]
    fn any_decodable_answer_encodes(rows in resource_rows(12)) {
        let decoded: proxmox_exporter::collectors::resource::Answer =
            serde_json::from_value(json!({ "data": rows })).unwrap();
        // The seed's families and the guest collector's, both written from these rows.
        let snapshot = Snapshot {
            taken_at: UNIX_EPOCH,
            inventory: Arc::new(collected(decoded.data)),
            inventory_asked: true,
            outcomes: vec![
                Outcome::fresh("cluster_resources", collected(Box::new(cluster_resources::Seed))),
                Outcome::fresh("guest", collected(Box::new(guest::Usage))),
            ],
        };
        let snapshot = Arc::new(snapshot);
        for format in [Format::Text, Format::OpenMetrics] {
            let text = Exposition { snapshot: snapshot.clone(), requests: vec![], reloads: None }.render(format);
            prop_assert!(text.contains("proxmox_up 1"));
            // No series twice, whatever the names and ids.
            let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).map(|l| l.rsplit_once(' ').map_or(l, |(s, _)| s)).collect();
            let mut unique = samples.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), samples.len());
        }
    }
}

fn collected<T>(data: T) -> Collected<T> {
    Collected {
        data,
        errors: vec![],
        known: vec![],
        duration: Duration::ZERO,
        unreachable: vec![],
    }
}

/// A small apidata tree of our own, mutated at random places.
fn apidata() -> Value {
    json!([{
        "path": "/nodes", "text": "nodes", "leaf": 0,
        "info": {"GET": {"parameters": {"properties": {}},
                         "returns": {"type": "array", "items": {"type": "object",
                            "properties": {"node": {"type": "string"}, "cpu": {"type": "number"}}}}}},
        "children": [{
            "path": "/nodes/{node}/status", "text": "status", "leaf": 1,
            "info": {"GET": {"parameters": {"properties": {"node": {"type": "string"}}},
                             "returns": {"type": "object", "properties": {
                                "uptime": {"type": "integer", "optional": 1},
                                "net[n]": {"type": "string"}}}},
                     "POST": {"parameters": {"properties": {"node": {"type": "string"},
                                "command": {"type": "string", "enum": ["reboot"]}}},
                              "returns": {"type": "null"}}}
        }]
    }])
}

/// Replaces the `index`-th value found walking `tree` (depth first) with `new`.
fn replace_nth(tree: &mut Value, index: &mut usize, new: &Value) -> bool {
    if *index == 0 {
        *tree = new.clone();
        return true;
    }
    *index -= 1;
    match tree {
        Value::Array(items) => items.iter_mut().any(|v| replace_nth(v, index, new)),
        Value::Object(map) => map.values_mut().any(|v| replace_nth(v, index, new)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_importer_never_panics_on_mutated_apidata(at in 0usize..60, new in any_json()) {
        let mut tree = apidata();
        let mut index = at;
        replace_nth(&mut tree, &mut index, &new);
        let text = format!("var apiSchema = {tree};");
        if let Ok(nodes) = schema::parse_apidata(&text, "mutated")
            && let Ok(doc) = schema::import(&nodes, "0")
        {
            let _ = schema::diff(&doc, &doc);
        }
    }

    #[test]
    fn the_apidata_reader_never_panics_on_any_text(text in ".{0,200}") {
        let _ = schema::parse_apidata(&text, "text");
        let _ = schema::parse_apidata(&format!("var apiSchema = {text}"), "text");
        let _ = schema::load_openapi(&text, "text");
    }
}
