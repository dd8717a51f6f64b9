//! `plugin test`: run a component on cases and compare what it returns with
//! what each case expects, through the same pipeline as the operator and
//! `render` (load with the registration's settings → call → output policy →
//! decorate).
//!
//! A case is a directory with `input.yaml` (one `PortfolioApp` or
//! `DatabaseMigration`), optionally `observed.yaml` (the children the
//! operator would observe, as documents or a `List`) and `settings.yaml` (the
//! plugin's settings, as a plugin ConfigMap's `data.settings` holds them), and
//! `expected.yaml`: what the plugin returns, or the error it fails with. A
//! case may also be one file, `NAME.yaml`, with the keys `input`, `observed`,
//! `settings` and `expected`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::controller::app::{GENERATOR_FIELD, reference_of};
use crate::decorate::{
    ANNOTATION_DESIRED_HASH, ANNOTATION_PLUGIN_DIGEST, ANNOTATION_TEMPLATE_HASH,
};
use crate::pipeline::{Generated, Pipeline, PipelineError, Subject};
use crate::plugin::{LimitsOverride, LoadError, LoadOptions, Plugin, Runtime, World};
use crate::policy::OutputPolicy;
use crate::registry::{PluginRef, Registry};
use crate::render::{self, Resource};
use portfolio_api::{APP_KIND, MIGRATION_KIND};

/// File of a directory case that holds the input.
pub const INPUT_FILE: &str = "input.yaml";
/// File of a directory case that holds the observed children.
pub const OBSERVED_FILE: &str = "observed.yaml";
/// File of a directory case that holds the plugin's settings.
pub const SETTINGS_FILE: &str = "settings.yaml";
/// File of a directory case that holds the expectation.
pub const EXPECTED_FILE: &str = "expected.yaml";

/// The keys of an expectation; anything else is a typo worth reporting.
const EXPECTED_KEYS: [&str; 7] = [
    "objects",
    "conditions",
    "status",
    "requeueAfterSeconds",
    "summary",
    "steps",
    "error",
];

/// Annotations the operator computes from the component's bytes or from the
/// rest of the object: left out of expectations, so that a rebuild with
/// another compiler does not fail every case.
const BOOKKEEPING: [&str; 3] = [
    ANNOTATION_PLUGIN_DIGEST,
    ANNOTATION_DESIRED_HASH,
    ANNOTATION_TEMPLATE_HASH,
];

/// A case that cannot be run as written, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// A file cannot be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// A file is not what a case holds there.
    #[error("{}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what belongs there.
        message: String,
    },
    /// The plugin cannot be loaded with this case's settings, or is of the wrong world.
    #[error("{}: the plugin {error}", path.display())]
    Load {
        /// The file whose content the plugin refused (settings or input).
        path: PathBuf,
        /// Why.
        error: LoadError,
    },
}

/// The cases could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    /// The cases directory cannot be read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// There is nothing to run.
    #[error(
        "{}: no cases (a case is a directory with {INPUT_FILE}, or a NAME.yaml file with an `input` key)",
        .0.display()
    )]
    Empty(PathBuf),
    /// The component is not a usable plugin.
    #[error("{}: not a usable plugin: the plugin {error}", path.display())]
    Plugin {
        /// The component file.
        path: PathBuf,
        /// Why.
        error: LoadError,
    },
}

/// What became of one case.
#[derive(Debug)]
pub enum Outcome {
    /// The plugin returned what the case expects.
    Passed,
    /// It returned something else; the diff is unified, expected → actual.
    Failed {
        /// A unified diff of the expectation (`-`) and what came back (`+`).
        diff: String,
    },
    /// The case has no expectation yet (run with `update` to record one).
    Unrecorded {
        /// What the plugin returned, as YAML.
        actual: String,
    },
    /// `update`: the expectation was written (it was missing or differed).
    Recorded,
    /// The case cannot be run as written.
    Broken(CaseError),
}

impl Outcome {
    /// Whether the case counts as a failure.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Failed { .. } | Outcome::Unrecorded { .. } | Outcome::Broken(_)
        )
    }
}

/// One case's name (its directory or file name) and outcome.
#[derive(Debug)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// What became of it.
    pub outcome: Outcome,
}

/// Runs cases against one component.
pub struct Tester {
    runtime: Runtime,
    bytes: Arc<[u8]>,
    plugin: Arc<Plugin>,
    policy: OutputPolicy,
    limits: LimitsOverride,
}

/// Where a case's parts live.
enum Layout {
    /// A directory with one file per part.
    Directory(PathBuf),
    /// One file with one key per part.
    File(PathBuf),
}

/// A case, read.
struct Case {
    layout: Layout,
    /// The file the input came from (for messages).
    input_path: PathBuf,
    input: Value,
    observed: Option<Value>,
    settings: Option<Value>,
    settings_path: PathBuf,
    expected: Option<Value>,
    expected_path: PathBuf,
}

impl Tester {
    /// A tester of the component `bytes` (read from `path`), loaded as the
    /// operator loads it; its objects are checked against `policy`, and its
    /// calls run under `limits` as a registration would set them.
    pub async fn new(
        runtime: Runtime,
        path: &Path,
        bytes: Vec<u8>,
        policy: OutputPolicy,
        limits: LimitsOverride,
    ) -> Result<Self, CasesError> {
        let bytes: Arc<[u8]> = bytes.into();
        let plugin = runtime
            .load_async(
                bytes.to_vec(),
                LoadOptions {
                    limits: limits.clone(),
                    ..LoadOptions::default()
                },
            )
            .await
            .map_err(|error| CasesError::Plugin {
                path: path.to_owned(),
                error,
            })?;
        Ok(Tester {
            runtime,
            bytes,
            plugin,
            policy,
            limits,
        })
    }

    /// The plugin as loaded (for the report's header).
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Run every case under `dir` (or the one case `dir` is), in name order;
    /// with `update`, record what the plugin returns as each case's expectation.
    pub async fn run(&self, dir: &Path, update: bool) -> Result<Vec<CaseResult>, CasesError> {
        let mut results = Vec::new();
        for (name, layout) in discover(dir)? {
            let outcome = match read_case(layout) {
                Ok(case) => self.run_case(&case, update).await,
                Err(error) => Outcome::Broken(error),
            };
            results.push(CaseResult { name, outcome });
        }
        Ok(results)
    }

    async fn run_case(&self, case: &Case, update: bool) -> Outcome {
        let actual = match self.actual(case).await {
            Ok(actual) => actual,
            Err(error) => return Outcome::Broken(error),
        };
        if case.expected.as_ref() == Some(&actual) {
            return Outcome::Passed;
        }
        if update {
            return match record(case, &actual) {
                Ok(()) => Outcome::Recorded,
                Err(error) => Outcome::Broken(error),
            };
        }
        match &case.expected {
            None => Outcome::Unrecorded {
                actual: yaml(&actual),
            },
            Some(expected) => Outcome::Failed {
                diff: diff(&yaml(expected), &yaml(&actual)),
            },
        }
    }

    /// What the plugin returns for the case, as an expectation is written.
    async fn actual(&self, case: &Case) -> Result<Value, CaseError> {
        let malformed = |path: &Path, message: String| CaseError::Malformed {
            path: path.to_owned(),
            message,
        };
        let resource = render::parse(case.input.clone())
            .map_err(|problem| malformed(&case.input_path, problem.to_string()))?;
        let (world, reference) = match &resource {
            Resource::App(app) => (
                World::Generator,
                app.spec
                    .generator
                    .as_ref()
                    .map(|_| (GENERATOR_FIELD, reference_of(app).to_owned())),
            ),
            Resource::Migration(migration) => (
                World::MigrationStrategy,
                migration
                    .spec
                    .strategy
                    .as_ref()
                    .map(|strategy| ("spec.strategy.plugin", strategy.plugin.clone())),
            ),
        };
        let settings = case
            .settings
            .clone()
            .unwrap_or_else(|| Value::Object(Map::new()));
        let plugin = self
            .runtime
            .load_async(
                self.bytes.to_vec(),
                LoadOptions {
                    expected_world: Some(world),
                    settings,
                    limits: self.limits.clone(),
                },
            )
            .await
            .map_err(|error| CaseError::Load {
                path: match error {
                    LoadError::WrongWorld { .. } => case.input_path.clone(),
                    _ => case.settings_path.clone(),
                },
                error,
            })?;
        // A reference this plugin does not satisfy means the operator would
        // call another plugin for this input: the case would test nothing.
        if let Some((field, reference)) = reference {
            let parsed: PluginRef = reference
                .parse()
                .map_err(|e| malformed(&case.input_path, format!("{field}: {e}")))?;
            if !parsed.matches(plugin.id(), plugin.digest()) {
                return Err(malformed(
                    &case.input_path,
                    format!(
                        "{field} is {reference:?}, which {} ({}) does not satisfy: the operator would call another plugin for it",
                        plugin.id(),
                        plugin.digest()
                    ),
                ));
            }
        }
        let observed = match &case.observed {
            None => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => {
                return Err(malformed(
                    &case.input_path,
                    "`observed` must be a list of objects".to_owned(),
                ));
            }
        };
        let registry = Registry::new();
        let pipeline = Pipeline::new(&registry, &self.policy);
        let result = match &resource {
            Resource::App(app) => {
                let subject = Subject::new(APP_KIND, &app.metadata, &app.spec)
                    .map_err(|e| malformed(&case.input_path, e.to_string()))?;
                pipeline
                    .generate(&plugin, &subject, observed, false)
                    .await
                    .map(generated)
            }
            Resource::Migration(migration) => {
                let subject = Subject::new(MIGRATION_KIND, &migration.metadata, &migration.spec)
                    .map_err(|e| malformed(&case.input_path, e.to_string()))?;
                pipeline
                    .plan(&plugin, &subject, observed)
                    .await
                    .map(|(steps, summary)| {
                        let steps: Vec<Value> = steps
                            .into_iter()
                            .map(|step| {
                                json!({
                                    "key": step.key,
                                    "phase": step.phase.as_str(),
                                    "description": step.description,
                                    "job": without_bookkeeping(step.job.into_object()),
                                })
                            })
                            .collect();
                        json!({"summary": summary, "steps": steps})
                    })
            }
        };
        Ok(result.unwrap_or_else(|error| failure(&error)))
    }
}

/// A generator's output as an expectation: the objects as the operator
/// would apply them (without its bookkeeping annotations), and the
/// conditions, status and requeue hint when there are any.
fn generated(generated: Generated) -> Value {
    let mut out = Map::new();
    out.insert(
        "objects".into(),
        Value::Array(
            generated
                .desired
                .into_iter()
                .map(|object| without_bookkeeping(object.into_object()))
                .collect(),
        ),
    );
    let output = generated.output;
    if !output.conditions.is_empty() {
        let conditions = output
            .conditions
            .iter()
            .map(|c| {
                json!({
                    "type": c.type_,
                    "status": c.status.as_str(),
                    "reason": c.reason,
                    "message": c.message,
                })
            })
            .collect();
        out.insert("conditions".into(), Value::Array(conditions));
    }
    if !output.status.is_empty() {
        out.insert("status".into(), Value::Object(output.status));
    }
    if let Some(after) = output.requeue_after {
        out.insert("requeueAfterSeconds".into(), json!(after.as_secs()));
    }
    Value::Object(out)
}

/// A failed call as an expectation: the reason the app's `Degraded`
/// condition would carry, and the message.
fn failure(error: &PipelineError) -> Value {
    json!({"error": {"reason": error.failure().reason(), "message": error.to_string()}})
}

fn without_bookkeeping(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            for key in BOOKKEEPING {
                annotations.remove(key);
            }
        }
        if metadata
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            metadata.remove("annotations");
        }
    }
    object
}

/// The cases under `dir`, by name: `dir` itself when it is one, else each
/// subdirectory with an input file and each `*.yaml`/`*.yml` file.
fn discover(dir: &Path) -> Result<Vec<(String, Layout)>, CasesError> {
    let io = |source| CasesError::Io {
        path: dir.to_owned(),
        error: source,
    };
    let name_of = |path: &Path| {
        path.file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string())
    };
    let meta = fs::metadata(dir).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![(name_of(dir), Layout::File(dir.to_owned()))]);
    }
    if dir.join(INPUT_FILE).is_file() {
        return Ok(vec![(name_of(dir), Layout::Directory(dir.to_owned()))]);
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    let mut cases = Vec::new();
    for path in entries {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            cases.push((name_of(&path), Layout::Directory(path)));
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            cases.push((name_of(&path), Layout::File(path)));
        }
    }
    if cases.is_empty() {
        return Err(CasesError::Empty(dir.to_owned()));
    }
    Ok(cases)
}

/// Read a file; `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, CaseError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CaseError::Io {
            path: path.to_owned(),
            error: source,
        }),
    }
}

/// The one document of a YAML file (`null` when empty).
fn one_document(path: &Path, text: &str) -> Result<Value, CaseError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| CaseError::Malformed {
            path: path.to_owned(),
            message: format!("not valid YAML: {e}"),
        })?;
    let mut documents: Vec<Value> = documents.into_iter().filter(|d| !d.is_null()).collect();
    match documents.len() {
        0 => Ok(Value::Null),
        1 => Ok(documents.remove(0)),
        n => Err(CaseError::Malformed {
            path: path.to_owned(),
            message: format!("holds {n} YAML documents; it must hold one"),
        }),
    }
}

fn read_case(layout: Layout) -> Result<Case, CaseError> {
    match layout {
        Layout::Directory(dir) => read_directory_case(dir),
        Layout::File(file) => read_file_case(file),
    }
}

fn read_directory_case(dir: PathBuf) -> Result<Case, CaseError> {
    let input_path = dir.join(INPUT_FILE);
    let Some(text) = read_optional(&input_path)? else {
        return Err(CaseError::Malformed {
            path: dir.clone(),
            message: format!(
                "a case directory needs {INPUT_FILE} (one PortfolioApp or DatabaseMigration)"
            ),
        });
    };
    let input = one_document(&input_path, &text)?;
    let observed_path = dir.join(OBSERVED_FILE);
    let observed =
        match read_optional(&observed_path)? {
            None => None,
            Some(_) => {
                // Documents or a List, as `kubectl get -o yaml` prints them.
                let documents = render::read_manifests(std::slice::from_ref(&observed_path))
                    .map_err(|e| CaseError::Malformed {
                        path: observed_path.clone(),
                        message: e.problem.to_string(),
                    })?;
                Some(Value::Array(
                    documents.into_iter().map(|d| d.value).collect(),
                ))
            }
        };
    let settings_path = dir.join(SETTINGS_FILE);
    let settings = match read_optional(&settings_path)? {
        None => None,
        Some(text) => Some(one_document(&settings_path, &text)?),
    };
    let expected_path = dir.join(EXPECTED_FILE);
    let expected = match read_optional(&expected_path)? {
        None => None,
        Some(text) => Some(one_document(&expected_path, &text)?),
    };
    let case = Case {
        layout: Layout::Directory(dir),
        input_path,
        input,
        observed,
        settings: settings.map(null_is_empty),
        settings_path,
        expected,
        expected_path,
    };
    check_parts(&case)?;
    Ok(case)
}

fn read_file_case(file: PathBuf) -> Result<Case, CaseError> {
    let malformed = |message: String| CaseError::Malformed {
        path: file.clone(),
        message,
    };
    let text = fs::read_to_string(&file).map_err(|source| CaseError::Io {
        path: file.clone(),
        error: source,
    })?;
    let Value::Object(mut parts) = one_document(&file, &text)? else {
        return Err(malformed(
            "a case file is a mapping with `input` and optionally `observed`, `settings` and `expected`".to_owned(),
        ));
    };
    if let Some(unknown) = parts
        .keys()
        .find(|k| !["input", "observed", "settings", "expected"].contains(&k.as_str()))
    {
        return Err(malformed(format!(
            "unknown key `{unknown}`; a case file has `input`, `observed`, `settings` and `expected`"
        )));
    }
    let Some(input) = parts.remove("input") else {
        return Err(malformed(
            "no `input` (one PortfolioApp or DatabaseMigration)".to_owned(),
        ));
    };
    let case = Case {
        input_path: file.clone(),
        settings_path: file.clone(),
        expected_path: file.clone(),
        layout: Layout::File(file),
        input,
        observed: parts.remove("observed").map(|observed| match observed {
            // `kubectl get -o yaml` prints a List.
            Value::Object(mut list) if list.get("kind") == Some(&json!("List")) => {
                list.remove("items").unwrap_or(Value::Array(Vec::new()))
            }
            other => other,
        }),
        settings: parts.remove("settings").map(null_is_empty),
        expected: parts.remove("expected"),
    };
    check_parts(&case)?;
    Ok(case)
}

fn null_is_empty(value: Value) -> Value {
    if value.is_null() {
        Value::Object(Map::new())
    } else {
        value
    }
}

/// Refuse parts of the wrong shape before anything runs, naming the file.
fn check_parts(case: &Case) -> Result<(), CaseError> {
    let malformed = |path: &Path, message: &str| CaseError::Malformed {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    if !case.input.is_object() {
        return Err(malformed(
            &case.input_path,
            "the input must be one PortfolioApp or DatabaseMigration",
        ));
    }
    if let Some(settings) = &case.settings
        && !settings.is_object()
    {
        return Err(malformed(
            &case.settings_path,
            "the settings must be a mapping (as a plugin ConfigMap's data.settings)",
        ));
    }
    if let Some(Value::Array(items)) = &case.observed {
        for (index, item) in items.iter().enumerate() {
            let named = item["apiVersion"].is_string()
                && item["kind"].is_string()
                && item["metadata"]["name"].is_string();
            if !named {
                return Err(malformed(
                    &case.input_path,
                    &format!(
                        "observed object {} has no apiVersion, kind and metadata.name",
                        index + 1
                    ),
                ));
            }
        }
    }
    if let Some(expected) = &case.expected {
        let Value::Object(map) = expected else {
            return Err(malformed(
                &case.expected_path,
                "the expectation must be a mapping (objects, conditions, … or error)",
            ));
        };
        if let Some(unknown) = map.keys().find(|k| !EXPECTED_KEYS.contains(&k.as_str())) {
            return Err(malformed(
                &case.expected_path,
                &format!(
                    "unknown key `{unknown}` in the expectation; it may have {}",
                    EXPECTED_KEYS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Write `actual` as the case's expectation.
fn record(case: &Case, actual: &Value) -> Result<(), CaseError> {
    let (path, text) = match &case.layout {
        Layout::Directory(dir) => (
            dir.join(EXPECTED_FILE),
            format!(
                "# Recorded by `portfolio-operator plugin test --update` for {INPUT_FILE}:\n# what the plugin returns, as the operator would apply it. Review it before committing.\n{}",
                yaml(actual)
            ),
        ),
        Layout::File(file) => {
            // The whole file is written again (its comments are not kept).
            let mut parts = Map::new();
            parts.insert("input".into(), case.input.clone());
            if let Some(observed) = &case.observed {
                parts.insert("observed".into(), observed.clone());
            }
            if let Some(settings) = &case.settings {
                parts.insert("settings".into(), settings.clone());
            }
            parts.insert("expected".into(), actual.clone());
            (file.clone(), yaml(&Value::Object(parts)))
        }
    };
    fs::write(&path, text).map_err(|source| CaseError::Io {
        path,
        error: source,
    })
}

/// `value` as YAML text.
fn yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|e| format!("# cannot be shown as YAML: {e}\n"))
}

/// A unified diff from `expected` to `actual`, with three lines of context.
fn diff(expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, path: &str, text: &str) -> PathBuf {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
        path
    }

    const APP: &str = "apiVersion: portfolio.dev/v1alpha1\nkind: PortfolioApp\nmetadata:\n  name: shop\nspec:\n  image: a:1\n";

    #[test]
    fn cases_are_directories_and_files_in_name_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "b/input.yaml", APP);
        write(
            dir.path(),
            "a.yaml",
            &format!("input:\n  {}", APP.replace('\n', "\n  ")),
        );
        write(dir.path(), "notes.txt", "ignored");
        write(dir.path(), ".hidden/input.yaml", APP);
        let cases = discover(dir.path()).expect("discover");
        let names: Vec<&str> = cases.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        // A case directory given directly is the one case.
        assert_eq!(discover(&dir.path().join("b")).expect("one").len(), 1);
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(matches!(discover(empty.path()), Err(CasesError::Empty(_))));
    }

    #[test]
    fn malformed_cases_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let check = |case: &str, layout: Layout, needle: &str, file: &str| {
            let error = read_case(layout).err().expect(case);
            let text = error.to_string();
            assert!(text.contains(needle), "{case}: {text}");
            assert!(text.contains(file), "{case} names {file}: {text}");
        };
        let no_input = dir.path().join("no-input");
        fs::create_dir_all(&no_input).expect("mkdir");
        check(
            "no-input",
            Layout::Directory(no_input),
            "needs input.yaml",
            "no-input",
        );

        write(dir.path(), "bad-yaml/input.yaml", "kind: [unclosed");
        check(
            "bad-yaml",
            Layout::Directory(dir.path().join("bad-yaml")),
            "not valid YAML",
            "bad-yaml/input.yaml",
        );

        write(dir.path(), "two/input.yaml", &format!("{APP}---\n{APP}"));
        check(
            "two",
            Layout::Directory(dir.path().join("two")),
            "2 YAML documents",
            "two/input.yaml",
        );

        write(dir.path(), "settings/input.yaml", APP);
        write(dir.path(), "settings/settings.yaml", "- a list\n");
        check(
            "settings",
            Layout::Directory(dir.path().join("settings")),
            "must be a mapping",
            "settings/settings.yaml",
        );

        write(dir.path(), "typo/input.yaml", APP);
        write(dir.path(), "typo/expected.yaml", "objcts: []\n");
        check(
            "typo",
            Layout::Directory(dir.path().join("typo")),
            "unknown key `objcts`",
            "typo/expected.yaml",
        );

        write(dir.path(), "observed/input.yaml", APP);
        write(dir.path(), "observed/observed.yaml", "kind: ConfigMap\n");
        check(
            "observed",
            Layout::Directory(dir.path().join("observed")),
            "has no apiVersion, kind and metadata.name",
            "observed/input.yaml",
        );

        let file = write(dir.path(), "file.yaml", "inptu: {}\n");
        check(
            "file",
            Layout::File(file),
            "unknown key `inptu`",
            "file.yaml",
        );
        let file = write(dir.path(), "list.yaml", "- 1\n");
        check(
            "list",
            Layout::File(file),
            "a case file is a mapping",
            "list.yaml",
        );
    }

    #[test]
    fn bookkeeping_annotations_are_left_out_and_others_kept() {
        let object = json!({"metadata": {"name": "x", "annotations": {
            ANNOTATION_PLUGIN_DIGEST: "sha256:00", ANNOTATION_DESIRED_HASH: "ab", "team": "web"}}});
        assert_eq!(
            without_bookkeeping(object),
            json!({"metadata": {"name": "x", "annotations": {"team": "web"}}})
        );
        let only = json!({"metadata": {"name": "x", "annotations": {ANNOTATION_PLUGIN_DIGEST: "sha256:00"}}});
        assert_eq!(
            without_bookkeeping(only),
            json!({"metadata": {"name": "x"}})
        );
    }

    #[test]
    fn a_diff_shows_what_changed_with_context() {
        let text = diff("a: 1\nb: 2\nc: 3\n", "a: 1\nb: 5\nc: 3\n");
        assert!(text.contains("--- expected"), "{text}");
        assert!(text.contains("-b: 2") && text.contains("+b: 5"), "{text}");
    }
}
