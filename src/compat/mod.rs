//! prometheus-pve-exporter compatibility: its families on `/pve` ([`families`]) and its
//! `pve.yml` modules of credentials ([`modules`]), so its users keep their jobs, dashboards,
//! alerts and configuration file; and what a target may be and where a module's credentials
//! may go ([`target`]), where this exporter is stricter than the peer.

pub mod families;
pub mod modules;
pub mod target;
