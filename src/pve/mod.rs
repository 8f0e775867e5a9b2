//! The Proxmox VE API client: generated types and calls ([`client`]), the lenient scalars
//! they decode into ([`lenient`]), and the [`dispatcher`] that spreads requests over endpoints.

pub mod client;
pub mod dispatcher;
pub mod lenient;
pub mod operations;
pub mod secret;
pub mod stream;

pub use dispatcher::{
    ApiError, ApiToken, Backoff, Credentials, Dispatcher, DispatcherConfig, ErrorKind, Login,
};
pub use lenient::{Known, named};
