//! The CustomResourceDefinitions of the operator's resources, generated from `api/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
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
