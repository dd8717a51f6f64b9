//! Pausing the whole server: refusing connections, or holding every request (watches
//! included) until it is resumed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Control, lock};

/// How a paused server treats clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PauseMode {
    /// The port is closed: new connections are refused and open ones (watches too) drop.
    Refuse,
    /// Connections are accepted but no request is answered (watches go silent) until resumed;
    /// the control API keeps answering.
    Hang,
}

impl Control {
    /// Pauses the whole server until [`Control::resume`] (or `auto_resume` elapses).
    pub fn pause(&self, mode: PauseMode, auto_resume: Option<Duration>) {
        tracing::info!(target: "emulator::control", ?mode, ?auto_resume, "injected fault: pausing the server");
        let generation = self.pause_generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.pause.send_replace(Some(mode));
        let Some(d) = auto_resume else { return };
        let Some(h) = lock(&self.runtime).clone() else {
            return;
        };
        let tx = self.pause.clone();
        let current = self.pause_generation.clone();
        h.spawn(async move {
            tokio::time::sleep(d).await;
            // A later pause or resume supersedes this timer.
            if current.load(Ordering::SeqCst) == generation {
                tracing::info!(target: "emulator::control", "server resumed after its pause elapsed");
                tx.send_replace(None);
            }
        });
    }

    /// Ends a pause.
    pub fn resume(&self) {
        self.pause_generation.fetch_add(1, Ordering::SeqCst);
        tracing::info!(target: "emulator::control", "server resumed");
        self.pause.send_replace(None);
    }

    /// The current pause, if any.
    pub fn paused(&self) -> Option<PauseMode> {
        *self.pause.borrow()
    }

    pub(crate) fn pause_watch(&self) -> tokio::sync::watch::Receiver<Option<PauseMode>> {
        self.pause.subscribe()
    }
}
