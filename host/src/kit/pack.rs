//! `plugin pack`: the ConfigMap that publishes a component, checked with the
//! operator's own reading code ([`configmaps::load`]) before it is printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::decorate::ANNOTATION_PLUGIN_DIGEST;
use crate::plugin::{LoadError, Plugin, Runtime};
use crate::registry::configmaps::{self, COMPONENT_KEY, COMPRESSED_KEY, PLUGIN_LABEL};

/// Most bytes of `data` and `binaryData` (keys and values) a ConfigMap may
/// hold: the API server refuses larger ones.
pub const MAX_CONFIG_MAP_BYTES: usize = 1 << 20;

/// Most bytes of annotations an object may carry. Client-side `kubectl
/// apply` copies the whole object into its last-applied annotation, so a
/// larger ConfigMap needs `kubectl apply --server-side`.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 << 10;

/// Whether to gzip the component.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// When the result is smaller (what a component almost always is).
    #[default]
    Auto,
    /// Always, as `plugin.wasm.gz`.
    Always,
    /// Never, as `plugin.wasm`.
    Never,
}

/// What to pack besides the component.
#[derive(Clone, Debug, Default)]
pub struct PackOptions {
    /// The plugin namespace the operator reads ConfigMaps from.
    pub namespace: String,
    /// The ConfigMap's name [default: the plugin's name].
    pub name: Option<String>,
    /// `data.settings`, as written (a YAML or JSON mapping).
    pub settings: Option<String>,
    /// `data.limits`, as written (a YAML or JSON mapping).
    pub limits: Option<String>,
    /// Whether to gzip the component.
    pub compression: Compression,
}

/// A checked plugin ConfigMap.
#[derive(Debug)]
pub struct Packed {
    /// The ConfigMap, ready to apply.
    pub config_map: ConfigMap,
    /// The plugin as the operator will load it.
    pub plugin: Arc<Plugin>,
    /// Whether the component is gzip-compressed in it.
    pub compressed: bool,
    /// Bytes of data and binaryData, as the API server counts them.
    pub size: usize,
}

impl Packed {
    /// Whether client-side `kubectl apply` can apply it (its last-applied
    /// annotation holds the whole object, base64 and all).
    pub fn fits_client_side_apply(&self) -> bool {
        serde_json::to_vec(&self.config_map).is_ok_and(|json| json.len() < MAX_ANNOTATIONS_BYTES)
    }

    /// The ConfigMap as YAML for `kubectl apply -f -`.
    pub fn to_yaml(&self) -> Result<String, PackError> {
        let value =
            serde_json::to_value(&self.config_map).map_err(|e| PackError::Format(e.to_string()))?;
        serde_saphyr::to_string(&value).map_err(|e| PackError::Format(e.to_string()))
    }
}

/// The component cannot be published as a ConfigMap.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The operator would refuse it. (Not a `source`: the message already
    /// holds the load error's, and a chain would repeat it.)
    #[error("the operator would refuse it: the plugin {0}")]
    Refused(LoadError),
    /// Too big for a ConfigMap even compressed.
    #[error(
        "the ConfigMap would hold {bytes} bytes ({how}), more than the {MAX_CONFIG_MAP_BYTES} a ConfigMap can; make the component smaller (opt-level = \"s\", lto, strip, no_std) or load it with --plugin-dir"
    )]
    TooLarge {
        /// What it would hold.
        bytes: usize,
        /// `gzip-compressed` or `uncompressed`.
        how: &'static str,
    },
    /// `--name` or `-n` is not a valid Kubernetes name.
    #[error("{what} {value:?} is not a valid Kubernetes name")]
    BadName {
        /// `the ConfigMap name` or `the namespace`.
        what: &'static str,
        /// What was given.
        value: String,
    },
    /// Compressing or printing failed.
    #[error("cannot format the ConfigMap: {0}")]
    Format(String),
}

impl From<LoadError> for PackError {
    fn from(error: LoadError) -> Self {
        PackError::Refused(error)
    }
}

/// Pack `bytes` as the plugin ConfigMap `options` describe, after loading it
/// exactly as the operator loads a ConfigMap: compile, world, `describe`,
/// settings and limits, name and version; and once more in its final form.
pub async fn pack(
    runtime: &Runtime,
    bytes: Vec<u8>,
    options: &PackOptions,
) -> Result<Packed, PackError> {
    if !crate::plugin::is_dns_label(&options.namespace) {
        return Err(PackError::BadName {
            what: "the namespace",
            value: options.namespace.clone(),
        });
    }
    if let Some(name) = &options.name
        && !crate::plugin::is_dns_subdomain(name)
    {
        return Err(PackError::BadName {
            what: "the ConfigMap name",
            value: name.clone(),
        });
    }
    // First as it is, to learn the name and version it describes.
    let draft = config_map(options, "draft", None, (COMPONENT_KEY, bytes.clone()));
    let plugin = configmaps::load(&draft, runtime).await?;

    let gzipped = gzip(&bytes)?;
    let compressed = match options.compression {
        Compression::Always => true,
        Compression::Never => false,
        Compression::Auto => gzipped.len() < bytes.len(),
    };
    let component = if compressed {
        (COMPRESSED_KEY, gzipped)
    } else {
        (COMPONENT_KEY, bytes)
    };
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| plugin.id().name.clone());
    let final_map = config_map(options, &name, Some(&plugin), component);
    let size = stored_bytes(&final_map);
    if size > MAX_CONFIG_MAP_BYTES {
        return Err(PackError::TooLarge {
            bytes: size,
            how: if compressed {
                "gzip-compressed"
            } else {
                "uncompressed"
            },
        });
    }
    // What will be applied is what the operator will read: load it again
    // (compiled once per digest, so this costs a `describe` call).
    let plugin = configmaps::load(&final_map, runtime).await?;
    Ok(Packed {
        config_map: final_map,
        plugin,
        compressed,
        size,
    })
}

/// A plugin ConfigMap holding `component` (key, bytes); with `plugin`, also
/// its name, version and digest as the component describes itself.
fn config_map(
    options: &PackOptions,
    name: &str,
    plugin: Option<&Plugin>,
    component: (&str, Vec<u8>),
) -> ConfigMap {
    let mut data = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    if let Some(plugin) = plugin {
        data.insert("name".to_owned(), plugin.id().name.clone());
        data.insert("version".to_owned(), plugin.id().version.to_string());
        // For people: which bytes these are, as `spec.generator.plugin:
        // name@sha256:…` would pin them.
        annotations.insert(
            ANNOTATION_PLUGIN_DIGEST.to_owned(),
            plugin.digest().to_string(),
        );
    }
    if let Some(settings) = &options.settings {
        data.insert("settings".to_owned(), settings.clone());
    }
    if let Some(limits) = &options.limits {
        data.insert("limits".to_owned(), limits.clone());
    }
    let (key, bytes) = component;
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(options.namespace.clone()),
            labels: Some(BTreeMap::from([(
                PLUGIN_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        },
        data: Some(data),
        binary_data: Some(BTreeMap::from([(key.to_owned(), ByteString(bytes))])),
        ..ConfigMap::default()
    }
}

/// Bytes of keys and values in `data` and `binaryData`, as the API server
/// counts them against [`MAX_CONFIG_MAP_BYTES`].
fn stored_bytes(config_map: &ConfigMap) -> usize {
    let data: usize = config_map
        .data
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let binary: usize = config_map
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.0.len())
        .sum();
    data + binary
}

/// `bytes` gzip-compressed, as the operator's reader expects.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>, PackError> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_err(|e| PackError::Format(format!("cannot gzip the component: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bytes_count_keys_and_values_of_both_maps() {
        let options = PackOptions {
            namespace: "ns".into(),
            settings: Some("a: b".into()),
            ..PackOptions::default()
        };
        let map = config_map(&options, "x", None, (COMPONENT_KEY, vec![0; 10]));
        assert_eq!(
            stored_bytes(&map),
            "settings".len() + 4 + COMPONENT_KEY.len() + 10
        );
    }

    fn runtime() -> Runtime {
        Runtime::new(crate::plugin::RuntimeConfig::default()).expect("runtime")
    }

    fn generator() -> Vec<u8> {
        crate::builtin::BUILTINS[0].bytes.to_vec()
    }

    #[tokio::test]
    async fn pack_then_the_operators_reader_gives_the_same_bytes_and_registration() {
        let runtime = runtime();
        for compression in [Compression::Auto, Compression::Always, Compression::Never] {
            let options = PackOptions {
                namespace: "portfolio-system".into(),
                settings: Some("labels:\n  team: web\n".into()),
                limits: Some("timeoutMs: 500\n".into()),
                compression,
                ..PackOptions::default()
            };
            let packed = pack(&runtime, generator(), &options).await.expect("pack");
            assert_eq!(packed.compressed, compression != Compression::Never);
            // Through YAML, as kubectl would send it.
            let yaml = packed.to_yaml().expect("yaml");
            let value: serde_json::Value = serde_saphyr::from_str(&yaml).expect("parse");
            assert_eq!(value["apiVersion"], "v1");
            assert_eq!(value["kind"], "ConfigMap");
            let parsed: ConfigMap = serde_json::from_value(value).expect("ConfigMap");
            let read = configmaps::read(&parsed, 32 << 20).expect("read");
            assert_eq!(read.bytes, generator());
            assert_eq!(read.name.as_deref(), Some("deployment-generator"));
            assert_eq!(
                read.version.as_deref(),
                Some(packed.plugin.id().version.to_string().as_str())
            );
            assert_eq!(read.options.settings["labels"]["team"], "web");
            assert_eq!(read.options.limits.timeout_ms, Some(500));
            assert_eq!(
                parsed.metadata.name.as_deref(),
                Some("deployment-generator")
            );
            assert_eq!(
                parsed.metadata.namespace.as_deref(),
                Some("portfolio-system")
            );
            assert!(packed.fits_client_side_apply() || !packed.compressed);
        }
    }

    #[tokio::test]
    async fn what_the_operator_would_refuse_is_refused_before_anything_is_printed() {
        let runtime = runtime();
        let options = PackOptions {
            namespace: "ns".into(),
            ..PackOptions::default()
        };
        let not_wasm = pack(&runtime, b"#!/bin/sh\necho hi\n".to_vec(), &options).await;
        assert!(
            matches!(not_wasm, Err(PackError::Refused(LoadError::NotWasm))),
            "{not_wasm:?}"
        );
        let core_module = pack(&runtime, b"\0asm\x01\0\0\0".to_vec(), &options).await;
        assert!(
            matches!(core_module, Err(PackError::Refused(LoadError::CoreModule))),
            "{core_module:?}"
        );
        let bad_limits = PackOptions {
            limits: Some("timeoutMillis: 3".into()),
            ..options.clone()
        };
        let error = pack(&runtime, generator(), &bad_limits)
            .await
            .expect_err("bad limits");
        assert!(error.to_string().contains("data.limits"), "{error}");
        let out_of_range = PackOptions {
            limits: Some("timeoutMs: 0".into()),
            ..options.clone()
        };
        let error = pack(&runtime, generator(), &out_of_range)
            .await
            .expect_err("range");
        assert!(error.to_string().contains("timeoutMs"), "{error}");
        let bad_settings = PackOptions {
            settings: Some("[1, 2]".into()),
            ..options.clone()
        };
        pack(&runtime, generator(), &bad_settings)
            .await
            .expect_err("settings not a mapping");
        let bad_namespace = PackOptions {
            namespace: "Not_A_Namespace".into(),
            ..options.clone()
        };
        let error = pack(&runtime, generator(), &bad_namespace)
            .await
            .expect_err("namespace");
        assert!(matches!(error, PackError::BadName { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_component_too_big_for_a_config_map_is_refused() {
        // A valid component padded with a custom section of random-looking
        // bytes, which gzip cannot shrink below the limit.
        let mut bytes = generator();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let payload: Vec<u8> = (0..MAX_CONFIG_MAP_BYTES + 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let name = b"padding";
        let mut section = vec![name.len() as u8];
        section.extend_from_slice(name);
        section.extend_from_slice(&payload);
        bytes.push(0); // custom section id
        let mut size = section.len();
        loop {
            let byte = (size & 0x7f) as u8;
            size >>= 7;
            if size == 0 {
                bytes.push(byte);
                break;
            }
            bytes.push(byte | 0x80);
        }
        bytes.extend_from_slice(&section);
        let options = PackOptions {
            namespace: "ns".into(),
            ..PackOptions::default()
        };
        let error = pack(&runtime(), bytes, &options)
            .await
            .expect_err("too large");
        assert!(matches!(error, PackError::TooLarge { .. }), "{error}");
        assert!(error.to_string().contains("1048576"), "{error}");
    }

    #[test]
    fn gzip_is_what_the_operator_reads_back() {
        let bytes = b"\0asm and some more bytes, and more bytes".repeat(10);
        let map = config_map(
            &PackOptions {
                namespace: "ns".into(),
                limits: Some("timeoutMs: 250".into()),
                settings: Some("greeting: hi".into()),
                ..PackOptions::default()
            },
            "x",
            None,
            (COMPRESSED_KEY, gzip(&bytes).expect("gzip")),
        );
        let read = configmaps::read(&map, 1 << 20).expect("read");
        assert_eq!(read.bytes, bytes);
        assert_eq!(read.options.limits.timeout_ms, Some(250));
        assert_eq!(read.options.settings["greeting"], "hi");
        assert_eq!(
            map.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(PLUGIN_LABEL))
                .map(String::as_str),
            Some("true")
        );
    }
}
