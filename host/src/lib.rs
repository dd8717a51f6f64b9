//! portfolio-operator: a Kubernetes operator whose reconcile logic lives in
//! sandboxed WebAssembly plugins.
//!
//! [`plugin`] runs components under limits and validates what they return,
//! [`registry`] resolves plugin references across sources (built-ins, a
//! directory), [`policy`] decides what a plugin may create, [`decorate`] adds
//! what the operator owns (labels, owner references), and [`render`] ties
//! them together offline. [`crds`] holds the CustomResourceDefinitions,
//! [`controller`] reconciles PortfolioApps, [`leader`] lets one replica of
//! several act, [`manifests`] installs it in a cluster, [`operator`] runs it
//! all, and [`dev`] runs it on an embedded emulated cluster.

pub mod builtin;
pub mod controller;
pub mod crds;
pub mod decorate;
pub mod dev;
pub mod leader;
pub mod manifests;
pub mod operator;
pub mod plugin;
pub mod policy;
pub mod registry;
pub mod render;
