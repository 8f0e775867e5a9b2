//! A Proxmox Backup Server target: the `pbs_*` collectors through the dispatcher speaking
//! PBS's credentials, against the simulated backup server (`Answers::generate_pbs`) and our
//! PBS 3.x fixtures (`tests/pbs-fixtures/pbs3/`), the way `/probe?module=M` serves them for a
//! module with `product: pbs`.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proxmox_exporter::collectors::pbs;
use proxmox_exporter::exporter::{Body, Exporter, Format};
use proxmox_exporter::pve::{Dispatcher, DispatcherConfig, Login, Product};
use proxmox_exporter::sim::{Answer, Answers, SimApi};

/// A simulated backup server on a loopback port, taking the test token.
async fn serve(answers: Answers) -> (SimApi, reqwest::Url) {
    let api = SimApi::new_for(
        Product::Pbs,
        answers,
        support::TOKEN_ID,
        support::TOKEN_SECRET,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = reqwest::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(api.clone().serve(listener));
    (api, url)
}

fn pbs_config(url: reqwest::Url) -> DispatcherConfig {
    DispatcherConfig {
        product: Product::Pbs,
        ..support::config(vec![url])
    }
}

/// The PBS collectors over `config`, answers kept for 29 s, "now" the snapshot tests' day.
fn exporter(config: &DispatcherConfig) -> Exporter {
    let dispatcher = Arc::new(Dispatcher::new(config).unwrap());
    Exporter::new(dispatcher, Duration::from_secs(29), 100)
        .with_collectors(pbs::defaults())
        .without_inventory()
        .with_clock(support::fixed_now)
}

async fn text(exporter: &Exporter) -> String {
    let bytes = match exporter.exposition(Format::Text, false, None).await {
        Body::Whole(bytes) => bytes.to_vec(),
        Body::Chunks(mut chunks) => {
            let mut all = Vec::new();
            while let Some(chunk) = chunks.recv().await {
                all.extend_from_slice(&chunk);
            }
            all
        }
    };
    String::from_utf8(bytes).unwrap()
}

/// The value of the series `series` (its name and labels as written), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn success(text: &str, collector: &str) -> Option<f64> {
    value(
        text,
        &format!("proxmox_exporter_collector_success{{collector=\"{collector}\"}}"),
    )
}

fn generated() -> Answers {
    Answers::generate_pbs(3, 40, 7, support::fixed_now())
}

/// Every family a backup server's scrape gives, each with at least one series.
const FAMILIES: &[&str] = &[
    "proxmox_pbs_up",
    "proxmox_pbs_version_info",
    "proxmox_pbs_host_cpu_usage_ratio",
    "proxmox_pbs_host_cpu_iowait_ratio",
    "proxmox_pbs_host_memory_size_bytes",
    "proxmox_pbs_host_memory_used_bytes",
    "proxmox_pbs_host_memory_free_bytes",
    "proxmox_pbs_host_swap_size_bytes",
    "proxmox_pbs_host_swap_used_bytes",
    "proxmox_pbs_host_rootfs_size_bytes",
    "proxmox_pbs_host_rootfs_used_bytes",
    "proxmox_pbs_host_rootfs_available_bytes",
    "proxmox_pbs_host_uptime_seconds",
    "proxmox_pbs_host_load",
    "proxmox_pbs_datastore_up",
    "proxmox_pbs_datastore_error_info",
    "proxmox_pbs_datastore_size_bytes",
    "proxmox_pbs_datastore_used_bytes",
    "proxmox_pbs_datastore_available_bytes",
    "proxmox_pbs_datastore_estimated_full_timestamp_seconds",
    "proxmox_pbs_datastore_gc_disk_bytes",
    "proxmox_pbs_datastore_gc_index_data_bytes",
    "proxmox_pbs_datastore_gc_pending_bytes",
    "proxmox_pbs_datastore_gc_removed_bytes",
    "proxmox_pbs_datastore_gc_bad_chunks",
    "proxmox_pbs_datastore_maintenance_info",
    "proxmox_pbs_datastore_info",
    "proxmox_pbs_job_info",
    "proxmox_pbs_job_last_run_success",
    "proxmox_pbs_job_last_run_end_timestamp_seconds",
    "proxmox_pbs_job_next_run_timestamp_seconds",
    "proxmox_pbs_job_last_run_duration_seconds",
    "proxmox_pbs_group_snapshots",
    "proxmox_pbs_group_last_backup_timestamp_seconds",
    "proxmox_pbs_group_info",
    "proxmox_pbs_subscription_active",
    "proxmox_pbs_subscription_info",
    "proxmox_pbs_subscription_next_due_timestamp_seconds",
    "proxmox_pbs_tasks_failed_total",
    "proxmox_pbs_tasks_warned_total",
    "proxmox_pbs_task_last_failure_timestamp_seconds",
];

#[tokio::test]
async fn a_scrape_of_the_simulated_backup_server_gives_every_family() {
    let (_api, url) = serve(generated()).await;
    let text = text(&exporter(&pbs_config(url))).await;
    for family in FAMILIES {
        assert!(
            text.lines()
                .any(|l| l.starts_with(family) && l[family.len()..].starts_with([' ', '{'])),
            "{family} missing:\n{text}"
        );
    }
    for collector in pbs::REGISTRY {
        assert_eq!(
            success(&text, collector.name()),
            Some(1.0),
            "{}",
            collector.name()
        );
    }
    // The simulated server's states, as its README promises them.
    assert_eq!(value(&text, "proxmox_pbs_up"), Some(1.0));
    let job = |kind: &str, id: &str| {
        format!(
            "proxmox_pbs_job_last_run_success{{datastore=\"{}\",id=\"{id}\",type=\"{kind}\"}}",
            if kind == "gc" { id } else { &id[2..] }
        )
    };
    assert_eq!(value(&text, &job("gc", "store2")), Some(0.0), "a failed GC");
    assert_eq!(value(&text, &job("gc", "store1")), Some(1.0));
    assert_eq!(
        value(&text, &job("verify", "v-store2")),
        Some(0.0),
        "a failed verify job"
    );
    assert!(
        text.contains("id=\"s-offsite\",schedule=\"hourly\",state=\"never\",type=\"sync\""),
        "a sync job that never ran"
    );
    assert!(
        !text.contains("proxmox_pbs_job_last_run_success{datastore=\"store2\",id=\"s-offsite\"")
    );
    assert_eq!(
        value(&text, "proxmox_pbs_datastore_up{datastore=\"offsite\"}"),
        Some(0.0)
    );
    assert!(text.contains(
        "proxmox_pbs_datastore_error_info{datastore=\"offsite\",reason=\"maintenance\"} 1"
    ));
    assert!(text.contains(
        "proxmox_pbs_datastore_maintenance_info{datastore=\"offsite\",mode=\"offline\"} 1"
    ));
    let full = value(
        &text,
        "proxmox_pbs_datastore_estimated_full_timestamp_seconds{datastore=\"store1\"}",
    );
    let now = support::fixed_now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(full, Some(now + 5.0 * 86_400.0), "store1 full in 5 days");
    // 40 groups in each of the three datastores in use (none in the offline one).
    let groups = text
        .lines()
        .filter(|l| l.starts_with("proxmox_pbs_group_snapshots{"))
        .count();
    assert_eq!(groups, 3 * 40);
    assert!(!text.contains("datastore=\"offsite\",id="));
}

#[tokio::test]
async fn a_failing_part_costs_only_its_families() {
    let (api, url) = serve(generated()).await;
    api.set_answer("/admin/gc", Answer::Status(500));
    api.set_answer(
        "/admin/datastore/store2/groups?ns=prod",
        Answer::Message(400, "unable to read group list".into()),
    );
    let text = text(&exporter(&pbs_config(url))).await;
    assert_eq!(success(&text, "pbs_jobs"), Some(0.0), "{text}");
    assert_eq!(success(&text, "pbs_groups"), Some(0.0));
    assert_eq!(success(&text, "pbs_datastore"), Some(1.0));
    assert_eq!(success(&text, "pbs_host"), Some(1.0));
    // The other kinds of job, and the other namespaces' groups, are still there.
    assert!(text.contains("type=\"verify\""));
    assert!(!text.contains("type=\"gc\""));
    assert!(text.contains("proxmox_pbs_group_snapshots{datastore=\"store2\",id="));
    assert!(!text.contains("namespace=\"prod\",type") || text.contains("datastore=\"store3\""));
}

#[tokio::test]
async fn an_unreachable_server_shows_as_down_and_every_part_failed() {
    let url = support::dead_url().await;
    let text = text(&exporter(&pbs_config(url))).await;
    assert_eq!(value(&text, "proxmox_pbs_up"), Some(0.0), "{text}");
    for collector in pbs::REGISTRY {
        assert_eq!(
            success(&text, collector.name()),
            Some(0.0),
            "{}",
            collector.name()
        );
    }
}

#[tokio::test]
async fn a_server_before_3_3_is_asked_for_its_sync_jobs_without_the_direction() {
    let (api, url) = serve(generated()).await;
    api.set_answer(
        "/admin/sync?sync-direction=all",
        Answer::Message(
            400,
            "parameter verification failed - 'sync-direction': schema does not allow \
             additional properties"
                .into(),
        ),
    );
    api.count_paths();
    let text = text(&exporter(&pbs_config(url))).await;
    assert_eq!(success(&text, "pbs_jobs"), Some(1.0), "{text}");
    assert!(text.contains("id=\"s-offsite\""));
    assert_eq!(api.take_paths()["/admin/sync"], 2);
}

#[tokio::test]
async fn requests_per_window_are_what_the_cost_table_says() {
    let (api, url) = serve(generated()).await;
    api.count_paths();
    let dispatcher = Arc::new(Dispatcher::new(&pbs_config(url)).unwrap());
    let exporter = Exporter::new(dispatcher, Duration::from_millis(200), 100)
        .with_collectors(pbs::defaults())
        .without_inventory();
    let _ = text(&exporter).await;
    let first: u64 = api.take_paths().values().sum();
    // datastore 2 + jobs 4 + host 2 + subscription 1 + tasks 1, and the groups: the
    // datastore list, the namespaces of the 3 datastores in use (the offline one is not
    // asked) and their 1 + 3 + 3 namespaces' groups.
    assert_eq!(first, 2 + 4 + 2 + 1 + 1 + (1 + 3 + 7));
    // The next window: the groups (5 minutes) and the subscription (an hour) are kept.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = text(&exporter).await;
    let later: u64 = api.take_paths().values().sum();
    assert_eq!(later, 2 + 4 + 2 + 1);
}

#[tokio::test]
async fn a_password_login_gets_a_pbs_ticket() {
    let (api, url) = serve(generated()).await;
    api.set_login("monitor@pbs", "hunter2", Duration::from_secs(7200));
    let config = DispatcherConfig {
        credentials: proxmox_exporter::pve::Credentials::Password(Login {
            user: "monitor@pbs".into(),
            password: "hunter2".into(),
            renew_after: Duration::from_secs(3600),
        }),
        ..pbs_config(url)
    };
    let exporter = exporter(&config);
    let text = text(&exporter).await;
    assert_eq!(success(&text, "pbs_host"), Some(1.0), "{text}");
    assert_eq!(api.logins(), 1);
}

#[tokio::test]
async fn a_pbs_module_is_scraped_on_probe_and_refused_on_pve() {
    let (_api, url) = serve(generated()).await;
    let target = format!("127.0.0.1:{}", url.port().unwrap());
    let yaml = format!(
        "backup:\n  product: pbs\n  scheme: http\n  user: monitoring@pve\n  token_name: exporter\n  \
         token_value: {}\n",
        support::TOKEN_SECRET
    );
    let base = support::serve_targets(support::targets(&yaml, 10, Duration::from_secs(60))).await;
    let (status, body) =
        support::get_text(&format!("{base}/probe?module=backup&target={target}")).await;
    assert_eq!(status, 200);
    assert!(body.contains("proxmox_pbs_up 1"), "{body}");
    assert!(
        !body.contains("proxmox_node_"),
        "no PVE collector runs for a backup server"
    );
    let (status, body) =
        support::get_text(&format!("{base}/pve?module=backup&target={target}")).await;
    assert_eq!(status, 400);
    assert!(body.contains("/probe"), "{body}");
}

#[test]
fn a_pbs_module_defaults_to_port_8007_and_refuses_an_unknown_product() {
    use proxmox_exporter::compat::modules::Modules;
    let base = "m:\n  user: u@pbs\n  token_name: t\n  token_value: v\n";
    let modules = Modules::parse(&format!("{base}  product: pbs\n"), Path::new(".")).unwrap();
    let module = &modules.modules["m"];
    assert_eq!((module.product, module.port), (Product::Pbs, 8007));
    let pve = Modules::parse(base, Path::new(".")).unwrap();
    assert_eq!(pve.modules["m"].port, 8006);
    let error = Modules::parse(&format!("{base}  product: pmg\n"), Path::new(".")).unwrap_err();
    assert!(error.contains("key product"), "{error}");
}

/// The whole exposition of our PBS 3.x fixtures, pinned.
#[tokio::test]
async fn the_pbs3_fixtures_exposition() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pbs-fixtures/pbs3");
    let (_api, url) = serve(Answers::from_dir(&dir).unwrap()).await;
    let text = text(&exporter(&pbs_config(url))).await;
    let masked: String = text
        .lines()
        .map(|line| {
            if line.starts_with("proxmox_exporter_collector_duration_seconds{") {
                let (series, _) = line.rsplit_once(' ').unwrap();
                format!("{series} [duration]\n")
            } else {
                format!(
                    "{}\n",
                    line.replace(
                        concat!("version=\"", env!("CARGO_PKG_VERSION"), "\""),
                        "version=\"[version]\""
                    )
                )
            }
        })
        .filter(|line| !line.starts_with("proxmox_exporter_api_requests_total{"))
        .collect();
    for collector in pbs::REGISTRY {
        assert_eq!(
            success(&text, collector.name()),
            Some(1.0),
            "{}: {text}",
            collector.name()
        );
    }
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("pbs3", masked);
    });
}

#[tokio::test]
async fn the_demo_serves_a_backup_server_and_prints_its_probe_url() {
    let running = support::run_exporter(&["--demo"], &[]);
    let url = (0..50)
        .find_map(|_| {
            let line = running.logs.recv_timeout(Duration::from_secs(10)).ok()?;
            let at = line.find("http://")?;
            Some(line[at..].trim().to_owned()).filter(|u| u.contains("/probe?module="))
        })
        .expect("no /probe URL printed");
    let (status, body) = support::get_text(&url).await;
    assert_eq!(status, 200);
    assert!(body.contains("proxmox_pbs_up 1"), "{body}");
    assert!(body.contains(
        "proxmox_pbs_datastore_maintenance_info{datastore=\"offsite\",mode=\"offline\"} 1"
    ));
}

#[tokio::test]
async fn one_backup_server_by_flags_is_served_on_metrics() {
    let (_api, url) = serve(generated()).await;
    let running = support::run_exporter(
        &["--pbs-endpoints", url.as_str()],
        &[
            ("PROXMOX_EXPORTER_PBS_TOKEN_ID", support::TOKEN_ID),
            ("PROXMOX_EXPORTER_PBS_TOKEN", support::TOKEN_SECRET),
        ],
    );
    let (status, body) = support::get_text(&format!("http://{}/metrics", running.address)).await;
    assert_eq!(status, 200);
    assert!(body.contains("proxmox_pbs_up 1"), "{body}");
    assert!(body.contains("proxmox_exporter_collector_success{collector=\"pbs_groups\"} 1"));
    assert!(!body.contains("proxmox_up"), "no PVE inventory is asked");
    assert!(!body.contains(support::TOKEN_SECRET));
}

#[test]
fn a_cluster_and_a_backup_server_by_flags_at_once_are_refused() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_proxmox-exporter"))
        .args(["--proxmox-endpoints", "https://pve1:8006/"])
        .args(["--proxmox-token-id", "a@pve!b", "--proxmox-token", "s"])
        .args(["--pbs-endpoints", "https://pbs1:8007/"])
        .args(["--pbs-token-id", "a@pbs!b", "--pbs-token", "s"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--pbs-endpoints"), "{stderr}");
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_proxmox-exporter"))
        .args(["--pbs-endpoints", "https://pbs1:8007/"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("--pbs-token-id"), "{stderr}");
}
