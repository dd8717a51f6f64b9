//! Reading manifests: files or directories of YAML/JSON documents, each
//! with where it came from, so that every error can name its place.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Problem, RenderError};

/// Where in the input something went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// 1-based document number within the file, when the file was read.
    pub document: Option<usize>,
    /// `Kind namespace/name` of the object, when known.
    pub object: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(document) = self.document {
            write!(f, ", document {document}")?;
        }
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        Ok(())
    }
}

/// One object read from a manifest file, with where it came from.
#[derive(Clone, Debug)]
pub struct Document {
    /// The file and document number.
    pub location: Location,
    /// The object as written.
    pub value: Value,
}

/// Every object in `paths` (files, or the `*.yaml`, `*.yml` and `*.json`
/// files of directories, not their subdirectories), in order; `List`s are unpacked.
pub fn read_manifests(paths: &[PathBuf]) -> Result<Vec<Document>, RenderError> {
    let mut documents = Vec::new();
    for path in paths {
        for file in expand(path)? {
            documents.extend(read_documents(&file)?);
        }
    }
    Ok(documents)
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
