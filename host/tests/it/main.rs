//! The host's integration tests, in one binary: every test binary links
//! wasmtime and kube, so each file of its own would cost a link and ~45 MB.
//!
//! One module per subject, each with a `//!` line saying what it checks.
//! To add one, say `tests/it/ops.rs`: write the file, add `mod ops;` below,
//! and reach shared helpers as `crate::common::…`. Run one module with
//! `cargo test -p portfolio-operator --test it ops::`.

mod common;

mod builtins;
mod cache;
mod cli;
mod cluster_api;
mod crds;
mod deploy;
mod dev;
mod generator_properties;
mod hostile;
mod leader;
mod local_job;
mod manifests;
mod migration_lock;
mod ops;
mod plugin_dir;
mod plugin_kit;
mod postgres;
mod real_tools;
