//! The custom resources of portfolio-operator (`portfolio.dev/v1alpha1`).
//!
//! The spec types compile anywhere, including `wasm32-wasip2`, so that Rust
//! plugins share them with the operator. The `kube` feature adds the
//! `CustomResource` wrappers, status types and JSON schemas the operator needs.

// Without the operator's `kube` feature the types need only `alloc`, so
// plugins can be `no_std` (smaller, and free of WASI imports).
#![cfg_attr(not(any(feature = "kube", test)), no_std)]

extern crate alloc;

pub mod app;
pub mod json_path;
pub mod migration;
pub mod raw;

pub use app::*;
pub use migration::*;
pub use raw::RawJson;

/// API group of every custom resource here.
pub const GROUP: &str = "portfolio.dev";
/// Version of every custom resource here, the only one served and stored.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every custom resource here.
pub const API_VERSION: &str = "portfolio.dev/v1alpha1";
