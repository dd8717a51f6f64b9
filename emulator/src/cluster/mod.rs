//! Simulated controllers: what kube-controller-manager, the scheduler and the kubelet do for
//! the kinds the emulator serves, so a whole story (a Deployment becoming available, a Job
//! completing, children collected when their owner goes) can be tested without a cluster.
//!
//! Each controller is a level-based loop over a work queue, fed by the store's change stream
//! and by timers, and writes only through the in-process [`Api`] with Kubernetes' field
//! managers, so its writes carry the same managed fields, validation and watch events as
//! those of the real components.

use std::sync::Arc;

use crate::api::Api;
use crate::control::Control;

mod bootstrap;
mod controllers;
mod ctx;
mod deployment;
mod events;
mod hash;
mod hpa;
mod job;
mod kubelet;
mod namespace;
mod object;
mod replicaset;
mod runner;
pub(crate) mod storage;

pub(crate) use bootstrap::bootstrap;
pub use controllers::Controller;
pub(crate) use ctx::{Ctx, gr};
pub(crate) use events::Recorder;
pub(crate) use hash::{canonical, fnv32a};
pub(crate) use object::{
    condition, controller_ref, controller_uid, deleting, int_at, is_true, key_of, omit_zero,
    seconds_since, str_at,
};
pub(crate) use runner::Reconciler;

pub(crate) use crate::api::safe_encode;

/// The field manager of kube-controller-manager's writes.
pub(crate) const KCM: &str = "kube-controller-manager";

/// The node every pod runs on.
pub const NODE_NAME: &str = "emulator";

/// A work-queue key: namespace and name of the object a controller reconciles.
pub(crate) type Key = (String, String);

/// Starts the enabled controllers on the current runtime.
pub(crate) fn start(
    api: Arc<Api>,
    control: Arc<Control>,
    recorder: Arc<Recorder>,
    root_ca: String,
) {
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        control: control.clone(),
        recorder,
        root_ca,
    });
    if control.runs(Controller::GarbageCollector) {
        tokio::spawn(runner::garbage_collector(api.clone()));
    }
    let mut recs: Vec<Arc<dyn Reconciler>> = Vec::new();
    if control.runs(Controller::ServiceAccount) || control.runs(Controller::RootCaPublisher) {
        recs.push(Arc::new(namespace::Namespaces::new(ctx.clone())));
    }
    if control.runs(Controller::Scheduler) || control.runs(Controller::Kubelet) {
        recs.push(Arc::new(kubelet::Kubelet::new(ctx.clone())));
    }
    if control.runs(Controller::ReplicaSet) {
        recs.push(Arc::new(replicaset::ReplicaSets::new(ctx.clone())));
    }
    if control.runs(Controller::Deployment) {
        recs.push(Arc::new(deployment::Deployments::new(ctx.clone())));
    }
    if control.runs(Controller::Job) || control.runs(Controller::TtlAfterFinished) {
        recs.push(Arc::new(job::Jobs::new(ctx.clone())));
    }
    if control.runs(Controller::HorizontalPodAutoscaler) {
        recs.push(Arc::new(hpa::Autoscalers::new(ctx.clone())));
    }
    if control.runs(Controller::PersistentVolume) {
        recs.push(Arc::new(storage::Storage::new(ctx.clone())));
    }
    runner::run(api, recs);
}
