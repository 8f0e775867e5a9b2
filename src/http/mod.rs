//! The HTTP side: the routes ([`server`]) over the exporter's core, and the exporter's own
//! endpoint security, TLS ([`tls`]) and basic authentication ([`web`]) from a web
//! configuration file. Nothing below this folder depends on it.

pub mod server;
pub mod tls;
pub mod web;
