//! One way from a kubeconfig to an API client, for every command that talks
//! to a cluster.

use std::path::{Path, PathBuf};

use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};

/// No API client could be made; the message names the kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file cannot be read or parsed.
    #[error("cannot read kubeconfig {}: {}", path.display(), read_cause(error))]
    Read {
        /// The kubeconfig's path.
        path: PathBuf,
        /// What kube found wrong.
        error: KubeconfigError,
    },
    /// The kubeconfig was read but does not describe a usable cluster.
    #[error("kubeconfig {}: {error}", path.display())]
    Invalid {
        /// The kubeconfig's path.
        path: PathBuf,
        /// What kube found wrong.
        error: KubeconfigError,
    },
    /// No kubeconfig was given and none was found, and this is not a pod.
    #[error(
        "no kubeconfig was given, none was found (KUBECONFIG, ~/.kube/config), and this is not running in a cluster: {0}"
    )]
    Infer(InferConfigError),
    /// The configuration does not make a client (for example a bad TLS setting).
    #[error("cannot create an API client from {origin}: {error}")]
    Client {
        /// The kubeconfig's path, or where the configuration was found.
        origin: String,
        /// What kube says.
        error: kube::Error,
    },
}

/// kube's read error repeats the path; keep only what went wrong.
fn read_cause(error: &KubeconfigError) -> String {
    match error {
        KubeconfigError::ReadConfig(io, _) => io.to_string(),
        other => other.to_string(),
    }
}

/// The configuration of `kubeconfig`, or else the one kube infers
/// (`KUBECONFIG`, `~/.kube/config`, then the in-cluster service account).
pub async fn config(kubeconfig: Option<&Path>) -> Result<kube::Config, ClientError> {
    let Some(path) = kubeconfig else {
        return kube::Config::infer().await.map_err(ClientError::Infer);
    };
    let file = Kubeconfig::read_from(path).map_err(|error| ClientError::Read {
        path: path.to_owned(),
        error,
    })?;
    kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|error| ClientError::Invalid {
            path: path.to_owned(),
            error,
        })
}

/// A client for `config`, which came from `kubeconfig` (named in errors).
pub fn client(
    config: kube::Config,
    kubeconfig: Option<&Path>,
) -> Result<kube::Client, ClientError> {
    kube::Client::try_from(config).map_err(|error| ClientError::Client {
        origin: kubeconfig.map_or_else(
            || "the inferred configuration".to_owned(),
            |path| format!("kubeconfig {}", path.display()),
        ),
        error,
    })
}

/// A client for `kubeconfig`, or for the configuration kube infers.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<kube::Client, ClientError> {
    client(config(kubeconfig).await?, kubeconfig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_kubeconfig_is_named_once() {
        let error = config(Some(Path::new("/no/such/kubeconfig")))
            .await
            .expect_err("no file");
        let message = error.to_string();
        assert!(
            message.starts_with("cannot read kubeconfig /no/such/kubeconfig: "),
            "{message}"
        );
        assert_eq!(
            message.matches("/no/such/kubeconfig").count(),
            1,
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_kubeconfig_without_a_cluster_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\ncurrent-context: nowhere\n",
        )
        .unwrap();
        let message = config(Some(&path))
            .await
            .expect_err("no cluster")
            .to_string();
        assert!(
            message.starts_with(&format!("kubeconfig {}: ", path.display())),
            "{message}"
        );
    }
}
