//! The custom resources of portfolio-operator (`portfolio.dev/v1alpha1`).
//!
//! The spec types compile anywhere, including `wasm32-wasip2`, so that Rust
//! plugins share them with the operator. The `kube` feature adds the
//! `CustomResource` wrappers, status types and JSON schemas the operator needs.

#![warn(missing_docs)]

pub mod app;
pub mod migration;

pub use app::*;
pub use migration::*;

/// API group of every custom resource here.
pub const GROUP: &str = "portfolio.dev";
/// API version served.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every custom resource here.
pub const API_VERSION: &str = "portfolio.dev/v1alpha1";
