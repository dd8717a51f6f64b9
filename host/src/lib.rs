//! portfolio-operator: a Kubernetes operator whose reconcile logic lives in
//! sandboxed WebAssembly plugins.
//!
//! [`plugin`] runs components under limits and validates what they return,
//! [`registry`] resolves plugin references across sources (built-ins, a
//! directory), [`policy`] decides what a plugin may create, [`decorate`] adds
//! what the operator owns (labels, owner references), and [`render`] ties
//! them together offline. [`crds`] holds the CustomResourceDefinitions,
//! [`controller`] reconciles PortfolioApps, [`client`] connects to a cluster,
//! [`leader`] lets one replica of several act, [`health`] tells the probes
//! whether it is ready and alive, [`manifests`] installs it in a cluster,
//! [`kit`] helps plugin authors (new, test, pack),
//! [`operator`] runs it all, and [`dev`] runs it on an embedded emulated
//! cluster.
//!
//! One place for each step of a reconcile: the kinds a plugin may create and
//! the operator watches, applies, prunes and is granted are [`kinds`]; resolve
//! → call → policy → decorate is [`pipeline`]; deciding and acting on children,
//! and writing status, are in [`controller`]; Events go through [`events`];
//! every failure is a [`failure::ReconcileError`].

pub mod builtin;
pub mod client;
pub mod controller;
pub mod crds;
pub mod decorate;
pub mod dev;
pub mod events;
pub mod failure;
pub mod health;
pub mod kinds;
pub mod kit;
pub mod leader;
pub mod manifests;
pub mod operator;
pub mod pipeline;
pub mod plugin;
pub mod policy;
pub mod registry;
pub mod render;
