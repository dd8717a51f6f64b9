//! Offline rendering: the objects the operator would apply for each
//! `PortfolioApp` and `DatabaseMigration` in some files, produced by the real
//! plugins with no cluster.

mod input;
mod output;

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use portfolio_api::{API_VERSION, APP_KIND, DatabaseMigration, MIGRATION_KIND, PortfolioApp};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::controller::app::{GENERATOR_FIELD, reference_of};
use crate::decorate::DesiredObject;
use crate::pipeline::{Pipeline, PipelineError, Subject};
use crate::plugin::World;
use crate::policy::OutputPolicy;
use crate::registry::Registry;

pub use input::{Document, Location, read_manifests};
pub use output::{to_json, to_yaml};

/// Rendering failed; the message names the file, document, object and plugin.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {problem}")]
pub struct RenderError {
    /// The file, document and object.
    pub location: Location,
    /// What went wrong there.
    pub problem: Box<Problem>,
}

/// What went wrong while rendering one input.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The file cannot be read.
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    /// The file is not YAML (or JSON).
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// A document is neither a `PortfolioApp` nor a `DatabaseMigration`.
    #[error("{0}")]
    NotOurs(String),
    /// A custom resource that does not match the schema.
    #[error("invalid {kind}: {message}")]
    Invalid {
        /// `PortfolioApp` or `DatabaseMigration`.
        kind: &'static str,
        /// What is wrong, starting with the field.
        message: String,
    },
    /// Resolving the plugin, calling it, or checking its output failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Nothing to render.
    #[error("no {API_VERSION} {APP_KIND} or {MIGRATION_KIND} found")]
    Empty,
}

/// Renders custom resources with the plugins of a registry, under an output policy.
pub struct Renderer {
    registry: Arc<Registry>,
    policy: OutputPolicy,
}

/// A custom resource of ours, parsed.
pub enum Resource {
    /// A `PortfolioApp`.
    App(Box<PortfolioApp>),
    /// A `DatabaseMigration`.
    Migration(Box<DatabaseMigration>),
}

impl Renderer {
    /// A renderer over `registry`'s plugins.
    pub fn new(registry: Arc<Registry>, policy: OutputPolicy) -> Self {
        Renderer { registry, policy }
    }

    /// The objects for every `PortfolioApp` and `DatabaseMigration` in
    /// `paths` (files, or directories of `*.yaml`, `*.yml` and `*.json`), in
    /// input order. For a migration these are the Jobs of its plan, in the
    /// order they would run.
    pub async fn render_paths(&self, paths: &[PathBuf]) -> Result<Vec<DesiredObject>, RenderError> {
        let documents = read_manifests(paths)?;
        if documents.is_empty() {
            return Err(RenderError {
                location: Location {
                    path: paths.first().cloned().unwrap_or_default(),
                    document: None,
                    object: None,
                },
                problem: Box::new(Problem::Empty),
            });
        }
        let mut objects = Vec::new();
        for document in documents {
            objects.extend(self.render_document(document).await.map_err(
                |(location, problem)| RenderError {
                    location,
                    problem: Box::new(problem),
                },
            )?);
        }
        Ok(objects)
    }

    async fn render_document(
        &self,
        document: Document,
    ) -> Result<Vec<DesiredObject>, (Location, Problem)> {
        let mut location = document.location;
        let resource = parse(document.value).map_err(|problem| (location.clone(), problem))?;
        let (kind, metadata) = match &resource {
            Resource::App(app) => (APP_KIND, &app.metadata),
            Resource::Migration(migration) => (MIGRATION_KIND, &migration.metadata),
        };
        let namespace = metadata.namespace.as_deref().unwrap_or("default");
        let name = metadata.name.as_deref().unwrap_or_default();
        location.object = Some(format!("{kind} {namespace}/{name}"));
        let rendered = match &resource {
            Resource::App(app) => self.render_app(app).await,
            Resource::Migration(migration) => self.render_migration(migration).await,
        };
        rendered.map_err(|problem| (location, Problem::Pipeline(problem)))
    }

    fn pipeline(&self) -> Pipeline<'_> {
        Pipeline::new(&self.registry, &self.policy)
    }

    async fn render_app(&self, app: &PortfolioApp) -> Result<Vec<DesiredObject>, PipelineError> {
        let pipeline = self.pipeline();
        let plugin = pipeline.resolve(GENERATOR_FIELD, reference_of(app), World::Generator)?;
        let subject = Subject::new(APP_KIND, &app.metadata, &app.spec)?;
        Ok(pipeline
            .generate(&plugin, &subject, Vec::new(), false)
            .await?
            .desired)
    }

    async fn render_migration(
        &self,
        migration: &DatabaseMigration,
    ) -> Result<Vec<DesiredObject>, PipelineError> {
        let reference = migration
            .spec
            .strategy
            .as_ref()
            .map_or(migration.spec.tool.as_str(), |strategy| {
                strategy.plugin.as_str()
            });
        let pipeline = self.pipeline();
        let plugin =
            pipeline.resolve("spec.strategy.plugin", reference, World::MigrationStrategy)?;
        let subject = Subject::new(MIGRATION_KIND, &migration.metadata, &migration.spec)?;
        let (steps, _) = pipeline.plan(&plugin, &subject, Vec::new()).await?;
        Ok(steps.into_iter().map(|step| step.job).collect())
    }
}

/// One of our custom resources from JSON, with errors that name the field
/// (also how `plugin test` reads a case's input).
pub fn parse(value: Value) -> Result<Resource, Problem> {
    let Value::Object(map) = &value else {
        return Err(Problem::NotOurs(format!(
            "expected a {API_VERSION} object, found {}",
            short(&value)
        )));
    };
    let text = |field: &str| {
        map.get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    match (api_version.as_str(), kind.as_str()) {
        (API_VERSION, APP_KIND) => {
            let app: PortfolioApp = typed(APP_KIND, value)?;
            check_name(APP_KIND, &app.metadata)?;
            Ok(Resource::App(Box::new(app)))
        }
        (API_VERSION, MIGRATION_KIND) => {
            let migration: DatabaseMigration = typed(MIGRATION_KIND, value)?;
            check_name(MIGRATION_KIND, &migration.metadata)?;
            Ok(Resource::Migration(Box::new(migration)))
        }
        _ => {
            let found = if api_version.is_empty() && kind.is_empty() {
                "an object without apiVersion and kind".to_owned()
            } else {
                format!("a {api_version} {kind}")
            };
            Err(Problem::NotOurs(format!(
                "this is {found}, not a {API_VERSION} {APP_KIND} or {MIGRATION_KIND}"
            )))
        }
    }
}

fn typed<T: DeserializeOwned>(kind: &'static str, value: Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        Problem::Invalid {
            kind,
            message: format!("{path}: {}", error.into_inner()),
        }
    })
}

fn check_name(kind: &'static str, metadata: &ObjectMeta) -> Result<(), Problem> {
    match metadata.name.as_deref() {
        Some(name) if crate::plugin::is_dns_subdomain(name) => Ok(()),
        Some(name) => Err(Problem::Invalid {
            kind,
            message: format!(
                "metadata.name: {name:?} is not a valid name (lower case letters, digits, '-' and '.')"
            ),
        }),
        None => Err(Problem::Invalid {
            kind,
            message: "metadata.name: missing".to_owned(),
        }),
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}
