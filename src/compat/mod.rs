//! prometheus-pve-exporter compatibility: its families on `/pve` ([`families`]) and its
//! `pve.yml` modules of credentials ([`modules`]), so its users keep their jobs, dashboards,
//! alerts and configuration file.

pub mod families;
pub mod modules;
