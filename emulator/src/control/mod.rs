//! The emulator's control plane for tests: fault injection (failing, delaying or expiring
//! requests, pausing the whole server) and the behaviour of simulated workloads (job outcomes,
//! images that never become ready, autoscaler metrics, timings). Every operation is a library
//! call on [`Control`] (reached through [`crate::Emulator::control`]) and an HTTP endpoint
//! under `/emulator/v1/` on the same server (see [`handle`]).

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard, RwLock};

use crate::cluster::Controller;
use watches::Expiry;

mod faults;
mod http;
mod knobs;
mod patterns;
mod pause;
mod watches;
mod workloads;

pub use faults::{ActiveFault, FaultRecord, FaultRule};
pub use http::handle;
pub use knobs::{Knobs, KnobsPatch};
pub use patterns::glob;
pub use pause::PauseMode;
pub use watches::WatchExpiry;
pub use workloads::{MetricRule, Outcome, OutcomeRule, Resolved};

/// The reserved path prefix of the control API.
pub const PREFIX: &str = "/emulator/v1";

/// How many injected faults the log keeps.
const LOG_CAPACITY: usize = 1000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves consistent data, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Rules with the identifiers they were added under.
#[derive(Default)]
struct Rules<T> {
    next: u64,
    items: Vec<(u64, T)>,
}

impl<T: Clone> Rules<T> {
    fn add(&mut self, t: T) -> u64 {
        self.next += 1;
        self.items.push((self.next, t));
        self.next
    }
}

/// The emulator's control state, shared by the HTTP server and the simulated controllers.
pub struct Control {
    /// Itself, for work scheduled after an answer (a refusing pause over HTTP).
    me: std::sync::Weak<Control>,
    faults: Mutex<Vec<ActiveFault>>,
    next_fault: AtomicU64,
    log: Mutex<VecDeque<FaultRecord>>,
    expiries: Mutex<Vec<Expiry>>,
    pause: tokio::sync::watch::Sender<Option<PauseMode>>,
    pause_generation: std::sync::Arc<AtomicU64>,
    watch_cut: tokio::sync::watch::Sender<u64>,
    knobs: RwLock<Knobs>,
    outcomes: Mutex<Rules<OutcomeRule>>,
    metrics: Mutex<Rules<MetricRule>>,
    controllers: Vec<Controller>,
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    compact: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("controllers", &self.controllers)
            .finish_non_exhaustive()
    }
}

impl Control {
    /// A control plane with these knobs and controllers; `compact` forgets the store's history.
    pub(crate) fn new(
        knobs: Knobs,
        controllers: Vec<Controller>,
        compact: Box<dyn Fn() + Send + Sync>,
    ) -> std::sync::Arc<Self> {
        std::sync::Arc::new_cyclic(|me| Control {
            me: me.clone(),
            faults: Mutex::new(Vec::new()),
            next_fault: AtomicU64::new(0),
            log: Mutex::new(VecDeque::new()),
            expiries: Mutex::new(Vec::new()),
            pause: tokio::sync::watch::channel(None).0,
            pause_generation: std::sync::Arc::new(AtomicU64::new(0)),
            watch_cut: tokio::sync::watch::channel(0).0,
            knobs: RwLock::new(knobs),
            outcomes: Mutex::new(Rules::default()),
            metrics: Mutex::new(Rules::default()),
            controllers,
            runtime: Mutex::new(None),
            compact,
        })
    }

    fn self_handle(&self) -> std::sync::Weak<Control> {
        self.me.clone()
    }

    pub(crate) fn set_runtime(&self, h: tokio::runtime::Handle) {
        *lock(&self.runtime) = Some(h);
    }

    /// The simulated controllers that run.
    pub fn controllers(&self) -> &[Controller] {
        &self.controllers
    }

    /// Whether this controller runs.
    pub fn runs(&self, c: Controller) -> bool {
        self.controllers.contains(&c)
    }
}
