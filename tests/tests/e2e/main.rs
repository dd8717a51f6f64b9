//! The end-to-end tests, in one binary (each test binary links wasmtime and
//! kube). The harness is this crate's library (`portfolio_e2e::Harness`);
//! every test works in a namespace of its own, on the emulator or, with
//! `PORTFOLIO_E2E_KUBECONFIG`, on a real cluster.
//!
//! One module per subject; to add one, write `tests/e2e/<subject>.rs` and
//! add `mod <subject>;` below. Run one with
//! `cargo test -p portfolio-e2e --test e2e <subject>::`.

mod apps;
mod choreography;
mod lifecycle;
mod migrations;
mod namespaces;
mod plugin_kit;
mod plugins;
