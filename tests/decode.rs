//! Every quirk of real PVE answers (see `../shared/README.md`) decodes through the generated
//! types. The fixtures in `tests/fixtures/quirks/` are our own, modelled on real answers.

use proxmox_exporter::pve::Known;
use proxmox_exporter::pve::client::types::{
    GetClusterResourcesResponse, GetClusterResourcesResponseDataItem,
    GetNodesNodeCertificatesInfoResponse, GetNodesNodeDisksListResponse,
};
use serde::de::DeserializeOwned;

fn fixture<T: DeserializeOwned>(path: &str) -> T {
    let file = format!(
        "{}/tests/fixtures/quirks{path}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&file).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn resources() -> Vec<GetClusterResourcesResponseDataItem> {
    fixture::<GetClusterResourcesResponse>("/cluster/resources").data
}

fn by_id(
    rows: &[GetClusterResourcesResponseDataItem],
    id: &str,
) -> GetClusterResourcesResponseDataItem {
    rows.iter()
        .find(|r| r.id.known() == Some(id))
        .unwrap_or_else(|| panic!("no row {id}"))
        .clone()
}

#[test]
fn every_resource_row_decodes_whatever_its_type() {
    let rows = resources();
    assert_eq!(rows.len(), 13);
    let types: Vec<&str> = rows.iter().filter_map(|r| r.type_.known()).collect();
    // PVE 9's `network` rows and a type no PVE has sent yet decode like the rest.
    for t in [
        "node", "qemu", "lxc", "storage", "network", "sdn", "pool", "quantum",
    ] {
        assert!(types.contains(&t), "{t}");
    }
}

#[test]
fn numbers_sent_as_strings_and_exponent_floats() {
    let rows = resources();
    let vm = by_id(&rows, "qemu/101");
    assert_eq!(vm.vmid.known(), Some(101));
    assert_eq!(vm.maxcpu.known(), Some(8.0));
    assert_eq!(vm.cpu.known(), Some(0.0536));
    let node = by_id(&rows, "node/atlas");
    assert_eq!(node.maxmem.known(), Some(137_438_953_472));
    assert_eq!(node.mem.known(), Some(51_539_607_552));
    assert_eq!(node.maxdisk.known(), Some(100_861_726_720));
    let ceph = by_id(&rows, "storage/atlas/ceph-vm");
    assert_eq!(ceph.maxdisk.known(), Some(2_406_956_265_150));
}

#[test]
fn booleans_as_numbers_strings_and_words() {
    let rows = resources();
    assert_eq!(by_id(&rows, "qemu/9000").template.known(), Some(true));
    assert_eq!(by_id(&rows, "qemu/101").template.known(), Some(false));
    assert_eq!(by_id(&rows, "lxc/102").template.known(), Some(false));
    assert_eq!(
        by_id(&rows, "storage/atlas/local").shared.known(),
        Some(false)
    );
    assert_eq!(
        by_id(&rows, "storage/atlas/ceph-vm").shared.known(),
        Some(true)
    );
    // Absent: unknown, not false.
    assert_eq!(by_id(&rows, "qemu/130").template.known(), None);
}

#[test]
fn offline_nodes_and_their_guests() {
    let rows = resources();
    let node = by_id(&rows, "node/borealis");
    assert_eq!(node.status.known(), Some("offline"));
    assert_eq!(node.maxcpu.known(), None);
    assert_eq!(node.maxmem.known(), None);
    let guest = by_id(&rows, "qemu/130");
    assert_eq!(guest.status.known(), Some("unknown"));
    assert_eq!(guest.node.known(), Some("borealis"));
    assert_eq!(guest.maxmem.known(), None);
}

#[test]
fn pve9_additions_and_nulls() {
    let rows = resources();
    // PVE 9's fields no collector reads (`memhost`, the SDN rows' `network-type`, `zone-type`,
    // `protocol`) are not decoded (operations.txt keeps /cluster/resources to the fields read),
    // and rows carrying them decode the rest.
    let guest = by_id(&rows, "qemu/101");
    assert_eq!(guest.mem.known(), Some(12_884_901_888));
    assert_eq!(guest.hastate.known(), Some("started"));
    let zone = by_id(&rows, "network/atlas/zone/lab");
    assert_eq!(zone.type_.known(), Some("network"));
    assert_eq!(zone.status.known(), Some("ok"));
    assert_eq!(by_id(&rows, "lxc/102").disk.known(), None);
    assert_eq!(by_id(&rows, "qemu/101").lock.known(), None);
}

#[test]
fn disks_with_na_wearout_string_rpm_and_every_health() {
    let disks = fixture::<GetNodesNodeDisksListResponse>("/nodes/atlas/disks/list").data;
    let health: Vec<Option<&str>> = disks.iter().map(|d| d.health.known()).collect();
    assert_eq!(
        health,
        [
            Some("PASSED"),
            Some("OK"),
            Some("FAILED"),
            Some("UNKNOWN"),
            None
        ]
    );
    // Only the fields the collector reads are decoded (operations.txt: `=devpath =health`);
    // rows whose other fields carry PVE's quirks (`N/A` wearout, a string rpm, a null
    // osdid-list) decode them all the same.
    assert_eq!(disks[4].devpath.known(), Some("/dev/sdd"));
}

#[test]
fn certificates_with_string_and_missing_dates() {
    let certs =
        fixture::<GetNodesNodeCertificatesInfoResponse>("/nodes/atlas/certificates/info").data;
    assert_eq!(certs[0].notafter.known(), Some(2_015_360_000));
    assert_eq!(certs[1].notafter.known(), Some(1_763_280_000));
    // Only `notafter` and `subject` are decoded (operations.txt): the PEM text and the rest
    // of each certificate are skipped, whatever their shape.
    assert_eq!(certs[2].notafter.known(), None);
    assert!(
        certs[0]
            .subject
            .known()
            .unwrap()
            .contains("PVE Cluster Manager CA")
    );
}

#[test]
fn wrong_shapes_fail_instead_of_guessing() {
    for body in [
        r#"{"data": {"not": "a list"}}"#,
        r#"{"data": [{"id": "qemu/1", "maxmem": [1, 2]}]}"#,
        r#"{"data": null}"#,
        r#"{}"#,
    ] {
        assert!(
            serde_json::from_str::<GetClusterResourcesResponse>(body).is_err(),
            "{body}"
        );
    }
}

/// The shapes of a real client's recorded answers from `../shared/pve-fixtures` decode too.
#[test]
fn recorded_answers_from_shared_fixtures() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pve-fixtures/go-proxmox");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let (Some(resources), Some(disks)) = (
        read("get_cluster_resources.json"),
        read("get_node_disks_list.json"),
    ) else {
        eprintln!(
            "SKIPPED: {} is absent (the ../shared reference folder is not here)",
            dir.display()
        );
        return;
    };
    let resources: GetClusterResourcesResponse = serde_json::from_str(&resources).unwrap();
    assert!(!resources.data.is_empty());
    assert!(resources.data.iter().all(|r| r.type_.known().is_some()));
    let disks: GetNodesNodeDisksListResponse = serde_json::from_str(&disks).unwrap();
    assert!(disks.data.iter().all(|d| d.devpath.known().is_some()));
}
