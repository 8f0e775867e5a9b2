//! The Proxmox Backup Server client: `schema/pbs-api.json` is what our importer makes of our
//! subset of PBS's API (`schema/pbs-apidata.json`), the version differ compares two PBS schema
//! files, and answers in PBS 3.x shapes (`tests/pbs-fixtures/pbs3/`, our own, modelled on the
//! types `docs/pbs-schema.md` names) decode through the generated types, quirks included.

use proxmox_exporter::pbs::client::types::{
    GetAdminDatastoreResponse, GetAdminDatastoreStoreGroupsResponse, GetAdminGcResponse,
    GetAdminPruneResponse, GetAdminSyncResponse, GetAdminVerifyResponse,
    GetNodesNodeStatusResponse, GetNodesNodeSubscriptionResponse, GetNodesNodeTasksResponse,
    GetStatusDatastoreUsageResponse, GetVersionResponse,
};
use proxmox_exporter::pve::Known;
use proxmox_exporter::schema;
use serde::de::DeserializeOwned;

fn root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture<T: DeserializeOwned>(path: &str) -> T {
    let file = root().join(format!("tests/pbs-fixtures/pbs3{path}.json"));
    let text = std::fs::read_to_string(&file).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn apidata() -> String {
    std::fs::read_to_string(root().join("schema/pbs-apidata.json")).unwrap()
}

#[test]
fn the_committed_pbs_schema_is_what_the_importer_makes_of_our_subset() {
    let nodes = schema::parse_apidata(&apidata(), "schema/pbs-apidata.json").unwrap();
    let doc = schema::import(&nodes, "3.2.4").unwrap();
    let committed = std::fs::read(root().join("schema/pbs-api.json")).unwrap();
    assert!(
        schema::to_bytes(&doc) == committed,
        "schema/pbs-api.json differs from `pve-schema import schema/pbs-apidata.json \
         --pve-version 3.2.4`: regenerate it"
    );
    // Every operation the client is generated for is in it.
    let listed = std::fs::read_to_string(root().join("schema/pbs-operations.txt")).unwrap();
    for line in listed.lines().filter(|l| l.starts_with("GET ")) {
        let path = line.trim_start_matches("GET ").split(' ').next().unwrap();
        assert!(
            doc["paths"][path]["get"].is_object(),
            "{path} not in the schema"
        );
    }
}

#[test]
fn the_differ_compares_two_pbs_schema_files() {
    let old = schema::load_openapi(&apidata(), "pbs 3.2").unwrap();
    // A later PBS: the datastore usage gains a field, a job list loses one, a path comes.
    let mut nodes: serde_json::Value = serde_json::from_str(&apidata()).unwrap();
    for node in nodes.as_array_mut().unwrap() {
        let path = node["path"].as_str().unwrap_or("").to_owned();
        let returns = &mut node["info"]["GET"]["returns"];
        match path.as_str() {
            "/status/datastore-usage" => {
                returns["items"]["properties"]["mount-status"] =
                    serde_json::json!({"type": "string", "optional": 1});
            }
            "/admin/prune" => {
                let item = returns["items"]["properties"].as_object_mut().unwrap();
                item.remove("keep-hourly");
            }
            _ => {}
        }
    }
    nodes.as_array_mut().unwrap().push(serde_json::json!({
        "path": "/admin/metrics", "info": {"GET": {"returns": {"type": "array"}}}
    }));
    let new = schema::load_openapi(&nodes.to_string(), "pbs 4").unwrap();
    let lines: Vec<String> = schema::diff(&old, &new)
        .iter()
        .map(ToString::to_string)
        .collect();
    for expected in [
        "~ GET /status/datastore-usage: + data[].mount-status (string)",
        "~ GET /admin/prune: - data[].keep-hourly (integer)",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "missing {expected}: {lines:?}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("/admin/metrics")),
        "{lines:?}"
    );
    assert!(schema::diff(&old, &old).is_empty());
}

#[test]
fn datastore_usage_decodes_with_its_estimate_its_gc_and_an_error() {
    let stores = fixture::<GetStatusDatastoreUsageResponse>("/status/datastore-usage").data;
    assert_eq!(stores.len(), 3);
    let full = &stores[0];
    assert_eq!(full.store.known(), Some("store1"));
    assert_eq!(full.total.known(), Some(8_001_563_222_016));
    assert_eq!(full.estimated_full_date.known(), Some(1_781_481_600));
    let gc = full.gc_status.as_ref().unwrap();
    assert_eq!(gc.removed_bytes.known(), Some(45_678_901_234));
    assert_eq!(gc.still_bad.known(), Some(0));
    // A history with gaps (`null`) decodes; a datastore in maintenance has only its error.
    assert_eq!(full.history.as_ref().map(Vec::len), Some(5));
    let offline = &stores[2];
    assert_eq!(offline.total.known(), None);
    assert!(
        offline
            .error
            .known()
            .is_some_and(|e| e.contains("maintenance"))
    );
    let listed = fixture::<GetAdminDatastoreResponse>("/admin/datastore").data;
    assert!(
        listed[2]
            .maintenance
            .known()
            .is_some_and(|m| m.starts_with("type=offline"))
    );
}

#[test]
fn job_lists_decode_with_their_last_run_and_next_run() {
    let gc = fixture::<GetAdminGcResponse>("/admin/gc").data;
    assert_eq!(gc[0].last_run_state.known(), Some("ok"));
    assert_eq!(gc[0].duration.known(), Some(3421));
    assert!(
        gc[1]
            .last_run_state
            .known()
            .is_some_and(|s| s.starts_with("TASK ERROR"))
    );
    let verify = fixture::<GetAdminVerifyResponse>("/admin/verify").data;
    assert_eq!(verify[1].ns.known(), Some("prod"));
    assert_eq!(verify[1].last_run_endtime.known(), Some(1_780_100_000));
    // A sync job that never ran: no last state, no end time.
    let sync = fixture::<GetAdminSyncResponse>("/admin/sync").data;
    assert_eq!(sync[0].remote_store.known(), Some("main"));
    assert_eq!(sync[0].last_run_state.known(), None);
    assert_eq!(sync[0].next_run.known(), Some(1_780_275_600));
    let prune = fixture::<GetAdminPruneResponse>("/admin/prune").data;
    assert_eq!(prune[0].keep_daily.known(), Some(7));
    assert_eq!(prune[0].disable.known(), Some(false));
}

#[test]
fn groups_node_status_subscription_tasks_and_version_decode() {
    let groups = fixture::<GetAdminDatastoreStoreGroupsResponse>("/admin/datastore/store1/groups");
    let kinds: Vec<&str> = (groups.data.iter())
        .filter_map(|g| g.backup_type.known())
        .collect();
    assert_eq!(kinds, ["vm", "ct", "host"]);
    assert_eq!(groups.data[0].backup_count.known(), Some(14));
    assert_eq!(groups.data[1].last_backup.known(), Some(1_779_800_000));
    let status = fixture::<GetNodesNodeStatusResponse>("/nodes/localhost/status").data;
    assert_eq!(
        status.memory.as_ref().and_then(|m| m.total.known()),
        Some(67_275_878_400)
    );
    assert_eq!(
        status.root.as_ref().and_then(|r| r.avail.known()),
        Some(95_260_299_264)
    );
    assert_eq!(status.loadavg.as_ref().map(Vec::len), Some(3));
    let subscription =
        fixture::<GetNodesNodeSubscriptionResponse>("/nodes/localhost/subscription").data;
    assert_eq!(subscription.status.known(), Some("active"));
    // Times as strings, as in PVE's quirks, decode all the same.
    let tasks = fixture::<GetNodesNodeTasksResponse>("/nodes/localhost/tasks").data;
    assert_eq!(tasks[1].endtime.known(), Some(1_780_200_000));
    assert_eq!(tasks[0].worker_type.known(), Some("garbage_collection"));
    let version = fixture::<GetVersionResponse>("/version").data;
    assert_eq!(version.version.known(), Some("3.2"));
}
