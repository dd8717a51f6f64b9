//! An embedded, in-memory Kubernetes API server for tests and local runs, optionally with
//! simulated controllers that make it behave as a cluster (Deployments become available,
//! Jobs complete, pods run), and a control API for faults and workload outcomes.
//!
//! ```no_run
//! // A bare API server:
//! let emu = emulator::Emulator::start().expect("emulator");
//! println!("kubectl --kubeconfig {} get ns", emu.kubeconfig_path().display());
//! // A living cluster whose migration Jobs fail:
//! let cluster = emulator::Emulator::cluster().expect("emulator");
//! cluster
//!     .control()
//!     .add_outcome(emulator::OutcomeRule::fail("relation exists").name("migrate-*"))
//!     .expect("rule");
//! ```

pub mod api;
mod base64;
mod builder;
pub mod builtin_schema;
mod cel;
pub mod cluster;
pub mod control;
pub mod convert;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod fields;
pub mod http;
mod instance;
mod kubeconfig;
mod openapi;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod schema;
pub mod selector;
mod server;
pub mod store;
pub mod table;
pub mod tls;
pub mod validation;
mod value_path;

pub use api::{Api, Options};
pub use builder::Builder;
pub use cluster::Controller;
pub use control::{
    Control, FaultRule, Knobs, MetricRule, Outcome, OutcomeRule, PauseMode, WatchExpiry,
};
pub use error::{ApiError, Error};
pub use http::{HookOutcome, RequestHook, RequestInfo};
pub use instance::Emulator;
pub use kubeconfig::kubeconfig_yaml;
