//! The CustomResourceDefinitions of the operator's resources, generated from `api/`.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams};
use portfolio_api::{DatabaseMigration, PortfolioApp};

/// Both CRDs, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![PortfolioApp::crd(), DatabaseMigration::crd()]
}

/// File name of a CRD under `crds/`: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// One CRD as a YAML document (without the leading `---`).
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, String> {
    let value = serde_json::to_value(crd).map_err(|e| e.to_string())?;
    serde_saphyr::to_string(&value).map_err(|e| e.to_string())
}

/// Installing the CRDs into a cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The API server refused a CRD.
    #[error("cannot apply the CustomResourceDefinition {name}: {source}")]
    Apply {
        /// The CRD.
        name: String,
        /// What the API server said.
        #[source]
        source: kube::Error,
    },
    /// A CRD was accepted but is not served yet.
    #[error("the CustomResourceDefinition {name} is not established after {waited:?}")]
    NotEstablished {
        /// The CRD.
        name: String,
        /// How long it was given.
        waited: Duration,
    },
}

/// Install (or update) both CRDs with server-side apply as `field_manager`,
/// and wait (at most `timeout` each) until the API server serves them.
pub async fn install(
    client: &kube::Client,
    field_manager: &str,
    timeout: Duration,
) -> Result<(), InstallError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        // Forced: the CRDs are the operator's to define, whoever applied them before.
        api.patch(
            &name,
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(|source| InstallError::Apply {
            name: name.clone(),
            source,
        })?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let established = api
                .get_opt(&name)
                .await
                .ok()
                .flatten()
                .and_then(|crd| crd.status?.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(InstallError::NotEstablished {
                    name,
                    waited: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}
