//! A running emulator: its address, kubeconfig, in-process API and control plane; it stops
//! when dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::Builder;
use crate::api::Api;
use crate::control::Control;
use crate::error::Error;
use crate::http::{self, RequestHook};
use crate::kubeconfig::Kubeconfig;

/// A running emulator: an API server on 127.0.0.1 with its own kubeconfig; stops on drop.
pub struct Emulator {
    pub(crate) scheme: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) kubeconfig: Kubeconfig,
    pub(crate) api: Arc<Api>,
    pub(crate) state: Arc<http::ServerState>,
    pub(crate) control: Arc<Control>,
    pub(crate) shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) thread: Option<std::thread::JoinHandle<()>>,
}

impl Emulator {
    /// Starts an emulator with default settings on a free port.
    pub fn start() -> Result<Emulator, Error> {
        Builder::default().start()
    }

    /// A builder for non-default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Starts an emulator in cluster mode (every simulated controller on) on a free port.
    pub fn cluster() -> Result<Emulator, Error> {
        Builder::default().cluster(true).start()
    }

    /// The control plane: faults, pauses, workload outcomes, knobs (also served over HTTP
    /// under `/emulator/v1/`).
    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// `http://127.0.0.1:<port>` (or `https://` with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The kubeconfig file pointing at this emulator.
    pub fn kubeconfig_path(&self) -> &Path {
        self.kubeconfig.path()
    }

    /// The in-process API (what simulated controllers and tests use without HTTP).
    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    /// Installs (or clears) the hook consulted before every resource request.
    pub fn set_request_hook(&self, hook: Option<Arc<dyn RequestHook>>) {
        *self.state.hook.write().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Ends every open watch stream (clients see the connection close and re-watch).
    pub fn cut_watches(&self) {
        self.control.cut_watches();
    }

    /// Forgets history: watches and lists at older resourceVersions get 410 Gone.
    pub fn compact(&self) {
        self.control.compact();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_stops_and_removes_its_kubeconfig() {
        let emu = Emulator::start().unwrap();
        let path = emu.kubeconfig_path().to_path_buf();
        assert!(path.exists());
        let addr = emu.addr();
        drop(emu);
        assert!(!path.exists());
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
