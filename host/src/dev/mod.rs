//! `dev`: the whole product on one machine — the embedded emulator as a
//! cluster, the CRDs, the operator, optionally some manifests, and a live view
//! of each app's conditions as they change.
//!
//! `session` runs it all, `manifests` applies what `--apply` names, and
//! `view` prints each app's state.

mod manifests;
mod session;
mod view;

use std::path::PathBuf;

use crate::controller::ControllerConfig;
use crate::operator::StartError;
use crate::policy::OutputPolicy;
use crate::render::{Location, RenderError};

pub use session::run;
pub use view::View;

/// The field manager of what `dev` itself applies (CRDs, namespaces, manifests).
pub const FIELD_MANAGER: &str = "portfolio-dev";

/// What `dev` is told.
#[derive(Clone, Debug, Default)]
pub struct DevOptions {
    /// Port of the emulated API server on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// Write the kubeconfig here and keep it; otherwise a temporary file, removed on exit.
    pub kubeconfig: Option<PathBuf>,
    /// Manifests to apply once the operator runs (files or directories).
    pub apply: Vec<PathBuf>,
    /// Watch this directory for plugins too.
    pub plugin_dir: Option<PathBuf>,
    /// Namespace of the plugin ConfigMaps (created).
    pub plugin_namespace: String,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub ops_addr: Option<std::net::SocketAddr>,
    /// What plugins may create.
    pub policy: OutputPolicy,
    /// The controller's settings (`namespace` is ignored: dev watches all).
    pub controller: ControllerConfig,
}

/// `dev` could not start or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// A manifest cannot be read.
    #[error(transparent)]
    Manifest(#[from] RenderError),
    /// A manifest is not an object Kubernetes can take.
    #[error("{location}: {message}")]
    InvalidManifest {
        /// The file and document it came from.
        location: Location,
        /// What is wrong.
        message: String,
    },
    /// The emulator cannot start.
    #[error("cannot start the emulated cluster: {0}")]
    Emulator(#[from] emulator::Error),
    /// The emulator's kubeconfig does not give a client.
    #[error("cannot connect to the emulated cluster: {0}")]
    Client(#[from] crate::client::ClientError),
    /// The CRDs cannot be installed.
    #[error(transparent)]
    Crds(#[from] crate::crds::InstallError),
    /// The API server refused something `dev` applies.
    #[error("{what}: {source}")]
    Apply {
        /// What was applied, and from where.
        what: String,
        /// Why it was refused.
        #[source]
        source: kube::Error,
    },
    /// The operator could not start.
    #[error(transparent)]
    Operator(#[from] StartError),
}
