//! The Proxmox VE API client: generated types and calls ([`client`]), the lenient scalars
//! they decode into ([`lenient`]), and the dispatcher that spreads requests over endpoints.

pub mod client;
pub mod lenient;

pub use lenient::Known;
