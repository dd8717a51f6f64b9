//! How controllers run: a deduplicating work queue per controller fed by the store's change
//! stream and timers, with retries that back off; and the garbage collector's loop.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::{Controller, Key};
use crate::api::Api;
use crate::error::ApiError;
use crate::store::Event;

/// A controller's reconciliation, run for one key at a time.
pub(crate) trait Reconciler: Send + Sync + 'static {
    /// The controller, for logs.
    fn controller(&self) -> Controller;
    /// Keys an event in the store makes stale.
    fn keys(&self, e: &Event, out: &mut Vec<Key>);
    /// Every key, on start and after missed events.
    fn all_keys(&self) -> Vec<Key>;
    /// Brings one object towards its desired state; answers when to look again.
    fn reconcile(&self, key: &Key) -> Result<Option<Duration>, ApiError>;
}

/// A deduplicating work queue with delayed additions.
pub(crate) struct Queue {
    tx: mpsc::UnboundedSender<Key>,
    queued: Mutex<HashSet<Key>>,
}

impl Queue {
    fn new() -> (Arc<Queue>, mpsc::UnboundedReceiver<Key>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Queue {
                tx,
                queued: Mutex::new(HashSet::new()),
            }),
            rx,
        )
    }

    fn add(&self, k: Key) {
        let fresh = self
            .queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k.clone());
        if fresh {
            let _ = self.tx.send(k);
        }
    }

    fn add_after(self: &Arc<Self>, k: Key, d: Duration) {
        if d.is_zero() {
            self.add(k);
            return;
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            q.add(k);
        });
    }

    fn done(&self, k: &Key) {
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(k);
    }
}

async fn work(rec: Arc<dyn Reconciler>, queue: Arc<Queue>, mut rx: mpsc::UnboundedReceiver<Key>) {
    let mut failures: HashMap<Key, u32> = HashMap::new();
    while let Some(k) = rx.recv().await {
        queue.done(&k);
        match rec.reconcile(&k) {
            Ok(next) => {
                failures.remove(&k);
                if let Some(d) = next {
                    queue.add_after(k, d);
                }
            }
            Err(e) => {
                // Conflicts are routine (someone wrote in between): retry soon, backing off.
                let n = failures.entry(k.clone()).or_insert(0);
                *n = (*n + 1).min(10);
                let backoff = Duration::from_millis(5u64 << *n).min(Duration::from_secs(2));
                tracing::debug!(target: "emulator::cluster", controller = rec.controller().name(), ns = %k.0, name = %k.1, code = e.code, error = %e.message, "reconcile failed; retrying");
                queue.add_after(k, backoff);
            }
        }
        // Let the server and the other controllers run between reconciles.
        tokio::task::yield_now().await;
    }
}

/// Runs each reconciler on a work queue of its own, fed by the store's events.
pub(super) fn run(api: Arc<Api>, recs: Vec<Arc<dyn Reconciler>>) {
    if recs.is_empty() {
        return;
    }
    let mut workers = Vec::new();
    for rec in recs {
        let (queue, rx) = Queue::new();
        tokio::spawn(work(rec.clone(), queue.clone(), rx));
        workers.push((rec, queue));
    }
    tokio::spawn(dispatch(api, workers));
}

/// Feeds every store event to each controller's queue; after missed events (a lagging
/// subscriber), every controller resyncs.
async fn dispatch(api: Arc<Api>, workers: Vec<(Arc<dyn Reconciler>, Arc<Queue>)>) {
    // Subscribe before listing, so nothing between the two is missed.
    let mut rx = api.store().subscribe();
    let resync = |workers: &[(Arc<dyn Reconciler>, Arc<Queue>)]| {
        for (rec, q) in workers {
            for k in rec.all_keys() {
                q.add(k);
            }
        }
    };
    resync(&workers);
    let mut keys = Vec::new();
    loop {
        match rx.recv().await {
            Ok(e) => {
                for (rec, q) in &workers {
                    keys.clear();
                    rec.keys(&e, &mut keys);
                    for k in keys.drain(..) {
                        q.add(k);
                    }
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::debug!(target: "emulator::cluster", missed = n, "controllers missed events; resyncing");
                resync(&workers);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// The garbage collector: every change in the store, in order, through the API's collection
/// logic; a full pass on start and after missed events.
pub(super) async fn garbage_collector(api: Arc<Api>) {
    let mut rx = api.store().subscribe();
    api.gc_resync();
    loop {
        match rx.recv().await {
            Ok(e) => api.gc_event(&e),
            Err(RecvError::Lagged(_)) => api.gc_resync(),
            Err(RecvError::Closed) => return,
        }
        tokio::task::yield_now().await;
    }
}
