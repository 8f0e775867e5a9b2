//! The Proxmox VE API client: generated types and calls ([`client`]), the lenient scalars
//! they decode into ([`lenient`]), the [`dispatcher`] that spreads requests over endpoints,
//! the streamed decoding of large answers ([`stream`]), the operations the collectors may
//! call ([`operations`]) and secrets kept in files that rotate ([`secret`]).

pub mod client;
pub mod dispatcher;
pub mod lenient;
pub mod operations;
pub mod secret;
pub mod stream;

pub use dispatcher::{
    ApiClient, ApiError, ApiToken, Backoff, Credentials, Dispatcher, DispatcherConfig, ErrorKind,
    Login, Product,
};
pub use lenient::{Known, named};
