//! Offline rendering: the objects the operator would apply for each
//! `PortfolioApp` in some files, produced by the real plugins with no cluster.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portfolio_api::{API_VERSION, APP_KIND, PortfolioApp};
use serde_json::Value;

use crate::builtin::DEFAULT_GENERATOR;
use crate::decorate::{DesiredObject, Owner, decorate};
use crate::plugin::{CallContext, GenerateInput, PluginError, World};
use crate::policy::{OutputPolicy, PolicyViolation};
use crate::registry::{PluginRef, PluginRefError, Registry, ResolveError};

/// Where in the input something went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// 1-based document number within the file, when the file was read.
    pub document: Option<usize>,
    /// `namespace/name` of the object, when known.
    pub object: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(document) = self.document {
            write!(f, ", document {document}")?;
        }
        if let Some(object) = &self.object {
            write!(f, " ({APP_KIND} {object})")?;
        }
        Ok(())
    }
}

/// Rendering failed; the message names the file, document, object and plugin.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {problem}")]
pub struct RenderError {
    /// Where.
    pub location: Location,
    /// What.
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
    /// A document is not a `PortfolioApp`.
    #[error("{0}")]
    NotAnApp(String),
    /// A `PortfolioApp` that does not match the schema.
    #[error("invalid {APP_KIND}: {0}")]
    InvalidApp(String),
    /// The generator reference cannot be parsed.
    #[error("spec.generator.plugin: {0}")]
    Reference(Box<PluginRefError>),
    /// No plugin matches the generator reference.
    #[error("spec.generator.plugin: {0}")]
    Resolve(Box<ResolveError>),
    /// The plugin failed.
    #[error("{0}")]
    Plugin(Box<PluginError>),
    /// The plugin returned something the operator does not allow.
    #[error("plugin {plugin} broke the output policy: {violation}")]
    Policy {
        /// `name@version`.
        plugin: String,
        /// The rule.
        violation: Box<PolicyViolation>,
    },
    /// Nothing to render.
    #[error("no {API_VERSION} {APP_KIND} found")]
    Empty,
}

/// Renders apps with the plugins of a registry, under an output policy.
pub struct Renderer {
    registry: Arc<Registry>,
    policy: OutputPolicy,
}

/// One app found in the input.
struct Document {
    location: Location,
    value: Value,
}

impl Renderer {
    /// A renderer over `registry`'s plugins.
    pub fn new(registry: Arc<Registry>, policy: OutputPolicy) -> Self {
        Renderer { registry, policy }
    }

    /// The objects for every `PortfolioApp` in `paths` (files, or directories
    /// of `*.yaml`, `*.yml` and `*.json`), in input order.
    pub async fn render_paths(&self, paths: &[PathBuf]) -> Result<Vec<DesiredObject>, RenderError> {
        let mut documents = Vec::new();
        for path in paths {
            for file in expand(path)? {
                documents.extend(read_documents(&file)?);
            }
        }
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
            objects.extend(
                self.render_value(document)
                    .await
                    .map_err(|(location, problem)| RenderError {
                        location,
                        problem: Box::new(problem),
                    })?,
            );
        }
        Ok(objects)
    }

    /// The objects for one `PortfolioApp` given as JSON.
    async fn render_value(
        &self,
        document: Document,
    ) -> Result<Vec<DesiredObject>, (Location, Problem)> {
        let mut location = document.location;
        let app = match parse_app(document.value) {
            Ok(app) => app,
            Err(problem) => return Err((location, problem)),
        };
        let name = app.metadata.name.clone().unwrap_or_default();
        let namespace = app
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        location.object = Some(format!("{namespace}/{name}"));
        self.render_app(&app, &name, &namespace)
            .await
            .map_err(|problem| (location, problem))
    }

    async fn render_app(
        &self,
        app: &PortfolioApp,
        name: &str,
        namespace: &str,
    ) -> Result<Vec<DesiredObject>, Problem> {
        let reference: PluginRef = app
            .spec
            .generator
            .as_ref()
            .map_or(DEFAULT_GENERATOR, |generator| generator.plugin.as_str())
            .parse()
            .map_err(|e| Problem::Reference(Box::new(e)))?;
        let plugin = self
            .registry
            .resolve(&reference, World::Generator)
            .map_err(|e| Problem::Resolve(Box::new(e)))?;
        let spec = serde_json::to_value(&app.spec)
            .map_err(|e| Problem::InvalidApp(format!("spec cannot be serialised: {e}")))?;
        let input = GenerateInput {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            uid: app.metadata.uid.clone().unwrap_or_default(),
            generation: app.metadata.generation.unwrap_or(0),
            labels: app.metadata.labels.clone().unwrap_or_default(),
            annotations: app.metadata.annotations.clone().unwrap_or_default(),
            spec,
            observed: Vec::new(),
        };
        let context = CallContext {
            object: format!("{namespace}/{name}"),
        };
        let output = plugin
            .generate_async(input, context)
            .await
            .map_err(|e| Problem::Plugin(Box::new(e)))?;
        let owner = Owner {
            api_version: API_VERSION,
            kind: APP_KIND,
            name,
            namespace,
            uid: app.metadata.uid.as_deref().filter(|uid| !uid.is_empty()),
        };
        let mut objects = Vec::with_capacity(output.objects.len());
        for child in output.objects {
            self.policy
                .check(plugin.info(), &child, namespace)
                .map_err(|violation| Problem::Policy {
                    plugin: plugin.id().to_string(),
                    violation: Box::new(violation),
                })?;
            objects.push(decorate(child, &owner, &plugin));
        }
        Ok(objects)
    }
}

/// A file, or the `*.yaml`, `*.yml` and `*.json` files of a directory, sorted.
fn expand(path: &Path) -> Result<Vec<PathBuf>, RenderError> {
    let error = |problem| RenderError {
        location: Location {
            path: path.to_owned(),
            document: None,
            object: None,
        },
        problem: Box::new(problem),
    };
    let meta = std::fs::metadata(path).map_err(|e| error(Problem::Read(e)))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| error(Problem::Read(e)))? {
        let file = entry.map_err(|e| error(Problem::Read(e)))?.path();
        let manifest = file
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| matches!(ext, "yaml" | "yml" | "json"));
        if manifest && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

/// The non-empty documents of a YAML file; `List` objects are unpacked.
fn read_documents(path: &Path) -> Result<Vec<Document>, RenderError> {
    let location = |document| Location {
        path: path.to_owned(),
        document,
        object: None,
    };
    let text = std::fs::read_to_string(path).map_err(|e| RenderError {
        location: location(None),
        problem: Box::new(Problem::Read(e)),
    })?;
    let values: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| RenderError {
        location: location(None),
        problem: Box::new(Problem::Yaml(e.to_string())),
    })?;
    let mut documents = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let document = Some(index + 1);
        match value {
            Value::Null => {}
            Value::Object(mut map) if map.get("kind") == Some(&Value::from("List")) => {
                let items = match map.remove("items") {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                documents.extend(items.into_iter().map(|value| Document {
                    location: location(document),
                    value,
                }));
            }
            value => documents.push(Document {
                location: location(document),
                value,
            }),
        }
    }
    Ok(documents)
}

/// A `PortfolioApp` from JSON, with errors that name the field.
fn parse_app(value: Value) -> Result<PortfolioApp, Problem> {
    let Value::Object(map) = &value else {
        return Err(Problem::NotAnApp(format!(
            "expected a {API_VERSION} {APP_KIND} object, found {}",
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
    if api_version != API_VERSION || kind != APP_KIND {
        let found = if api_version.is_empty() && kind.is_empty() {
            "an object without apiVersion and kind".to_owned()
        } else {
            format!("a {api_version} {kind}")
        };
        return Err(Problem::NotAnApp(format!(
            "this is {found}, not a {API_VERSION} {APP_KIND}"
        )));
    }
    let app: PortfolioApp = serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        Problem::InvalidApp(format!("{path}: {}", error.into_inner()))
    })?;
    match app.metadata.name.as_deref() {
        Some(name) if crate::plugin::is_dns_subdomain(name) => Ok(app),
        Some(name) => Err(Problem::InvalidApp(format!(
            "metadata.name: {name:?} is not a valid name (lower case letters, digits, '-' and '.')"
        ))),
        None => Err(Problem::InvalidApp("metadata.name: missing".to_owned())),
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

/// Objects as multi-document YAML, the way `kubectl apply -f` reads them.
pub fn to_yaml(objects: &[DesiredObject]) -> Result<String, String> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(object.object()).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Objects as a JSON `v1 List`, the way `kubectl apply -f` reads them.
pub fn to_json(objects: &[DesiredObject]) -> Result<String, String> {
    let mut list = BTreeMap::new();
    list.insert("apiVersion", Value::from("v1"));
    list.insert("kind", Value::from("List"));
    list.insert(
        "items",
        Value::Array(objects.iter().map(|o| o.object().clone()).collect()),
    );
    serde_json::to_string_pretty(&list)
        .map(|mut text| {
            text.push('\n');
            text
        })
        .map_err(|e| e.to_string())
}
