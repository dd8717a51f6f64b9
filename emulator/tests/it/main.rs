//! The emulator's integration tests, in one binary (each test binary links kube again): the
//! conformance suite and its kubectl cases, the simulated cluster, fault injection, and
//! hostile input. With `EMULATOR_CONFORMANCE_KUBECONFIG` set, the conformance, kubectl and
//! cluster tests run against that cluster instead.

mod cel;
mod cluster;
mod common;
mod conformance;
mod faults;
mod hostile;
mod kubectl;
