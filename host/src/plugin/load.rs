//! Turning bytes into a checked [`Plugin`]: header, world, version, imports, exports, `describe`.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceType};

use super::bindings::{generator, migration, types};
use super::domain::{Digest, KindRef, PluginId, PluginInfo, WIT_VERSION, World};
use super::error::{LoadError, PluginError};
use super::limits::{Limits, LimitsOverride};
use super::sandbox::{self, CallContext, HostState, NotGranted, WorldPre};

/// How to load one component.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Refuse a component of the other world.
    pub expected_world: Option<World>,
    /// The plugin's settings from its registration (a JSON object).
    pub settings: Value,
    /// Limits that differ from the runtime's defaults.
    pub limits: LimitsOverride,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            expected_world: None,
            settings: Value::Object(Map::new()),
            limits: LimitsOverride::default(),
        }
    }
}

/// A compiled, linked component; shared by every [`Plugin`] with the same bytes.
pub(crate) struct Compiled {
    pub(crate) digest: Digest,
    pub(crate) world: World,
    pub(crate) wit_version: semver::Version,
    pub(crate) pre: WorldPre,
    pub(crate) size: usize,
}

/// A loaded, checked plugin, ready to be called.
pub struct Plugin {
    pub(crate) compiled: Arc<Compiled>,
    pub(crate) info: PluginInfo,
    pub(crate) settings: Arc<str>,
    pub(crate) limits: Limits,
    pub(crate) label: Arc<str>,
    /// Its version as a label value and its digest as text, as decorate
    /// puts them on every object (made once, not per object).
    pub(crate) marks: Marks,
}

/// What decorate writes of a plugin on each object it makes.
#[derive(Debug)]
pub(crate) struct Marks {
    pub(crate) version_label: String,
    pub(crate) digest: String,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.info.id)
            .field("world", &self.compiled.world)
            .field("digest", &self.compiled.digest)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Name and version, as the plugin described itself.
    pub fn id(&self) -> &PluginId {
        &self.info.id
    }

    /// Its version made into a valid label value.
    pub fn version_label(&self) -> &str {
        &self.marks.version_label
    }

    /// Its digest as text (`sha256:…`).
    pub fn digest_text(&self) -> &str {
        &self.marks.digest
    }

    /// Everything it said about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Which world it exports.
    pub fn world(&self) -> World {
        self.compiled.world
    }

    /// SHA-256 of its bytes.
    pub fn digest(&self) -> Digest {
        self.compiled.digest
    }

    /// Size of the component, in bytes.
    pub fn size(&self) -> usize {
        self.compiled.size
    }

    /// The limits each call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Settings from its registration, as the JSON text every call passes on.
    pub fn settings(&self) -> &str {
        &self.settings
    }

    /// Whether it may emit `api_version` / `kind`.
    pub fn declares_kind(&self, api_version: &str, kind: &str) -> bool {
        self.info
            .kinds
            .iter()
            .any(|k| k.api_version == api_version && k.kind == kind)
    }
}

/// The header of a core module and of a component (magic, then version/layer).
const CORE_HEADER: [u8; 8] = *b"\0asm\x01\0\0\0";
const COMPONENT_MAGIC: [u8; 4] = *b"\0asm";

/// Refuse what is plainly not a component, with a message that says what it is instead.
pub(crate) fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if wasmtime::Engine::detect_precompiled(bytes).is_some() {
        return Err(LoadError::Precompiled);
    }
    if !bytes.starts_with(&COMPONENT_MAGIC) {
        return Err(LoadError::NotWasm);
    }
    if bytes.starts_with(&CORE_HEADER) {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

fn host_version() -> semver::Version {
    semver::Version::parse(WIT_VERSION).unwrap_or_else(|_| semver::Version::new(0, 0, 0))
}

/// Whether a component built against `found` can be used by a host of `host`:
/// Cargo's rule, where the first non-zero component is the breaking one.
pub(crate) fn compatible(host: &semver::Version, found: &semver::Version) -> bool {
    if !found.pre.is_empty() || !host.pre.is_empty() {
        return found == host;
    }
    match (host.major, found.major) {
        (0, 0) => match (host.minor, found.minor) {
            (0, 0) => host.patch == found.patch,
            (h, f) => h == f,
        },
        (h, f) => h == f,
    }
}

/// Split `ns:pkg/iface@1.2.3` into (`ns:pkg/iface`, version).
fn split_versioned(name: &str) -> Option<(&str, Option<semver::Version>)> {
    match name.split_once('@') {
        Some((base, version)) => Some((base, semver::Version::parse(version).ok())),
        None => Some((name, None)),
    }
}

/// Find which world the component exports, and against which contract version.
pub(crate) fn detect_world(
    component: &Component,
    engine: &wasmtime::Engine,
) -> Result<(World, semver::Version), LoadError> {
    let host = host_version();
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    for name in &exports {
        let Some((base, version)) = split_versioned(name) else {
            continue;
        };
        let Some(world) = World::ALL.into_iter().find(|w| w.interface() == base) else {
            continue;
        };
        let Some(version) = version else {
            return Err(LoadError::IncompatibleVersion {
                interface: base.to_owned(),
                found: "(no version)".to_owned(),
                host: WIT_VERSION,
            });
        };
        if !compatible(&host, &version) {
            return Err(LoadError::IncompatibleVersion {
                interface: base.to_owned(),
                found: version.to_string(),
                host: WIT_VERSION,
            });
        }
        return Ok((world, version));
    }
    Err(LoadError::NoKnownWorld { exports })
}

/// Refuse imports the host does not grant; WASI interfaces are allowed but trap.
pub(crate) fn check_imports(
    component: &Component,
    engine: &wasmtime::Engine,
) -> Result<(), LoadError> {
    let host = host_version();
    for (name, item) in component.component_type().imports(engine) {
        let (base, version) = split_versioned(name).unwrap_or((name, None));
        let ours = matches!(base, "portfolio:plugin/host" | "portfolio:plugin/types")
            && version.as_ref().is_some_and(|v| compatible(&host, v))
            && matches!(item.ty, ComponentItem::ComponentInstance(_));
        // Rust's standard library links a dozen WASI interfaces it never calls
        // in a plugin; they are defined as traps, so nothing is granted.
        let wasi = base.starts_with("wasi:");
        if !ours && !wasi {
            return Err(LoadError::UnsupportedImport {
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

/// Define every WASI function the component imports as a trap, and every
/// WASI resource as an opaque host type, so that linking succeeds and
/// nothing is granted. Only `wasi:` imports are stubbed: the contract's own
/// imports must resolve to the real host functions (by semver-compatible
/// name, so a plugin built against a newer minor version links too).
fn stub_wasi_imports(
    linker: &mut Linker<HostState>,
    component: &Component,
    engine: &wasmtime::Engine,
) -> wasmtime::Result<()> {
    for (name, import) in component.component_type().imports(engine) {
        if !name.starts_with("wasi:") {
            continue;
        }
        let ComponentItem::ComponentInstance(instance) = import.ty else {
            continue;
        };
        let mut stubs = linker.instance(name)?;
        for (export, item) in instance.exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(_) => {
                    let import = format!("{name}#{export}");
                    stubs.func_new(export, move |_, _, _, _| {
                        Err(wasmtime::Error::new(NotGranted {
                            import: import.clone(),
                        }))
                    })?;
                }
                ComponentItem::Resource(_) => {
                    stubs.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Link the component against the host's imports and type-check its exports.
pub(crate) fn link(
    base: &Linker<HostState>,
    component: &Component,
    world: World,
) -> Result<WorldPre, LoadError> {
    let mut linker = base.clone();
    stub_wasi_imports(&mut linker, component, base.engine())
        .map_err(|error| LoadError::Host(format!("{error:#}")))?;
    let signature = |error: wasmtime::Error| LoadError::Signature {
        world,
        host: WIT_VERSION,
        detail: format!("{error:#}"),
    };
    let pre = linker.instantiate_pre(component).map_err(signature)?;
    Ok(match world {
        World::Generator => {
            WorldPre::Generator(generator::GeneratorPre::new(pre).map_err(signature)?)
        }
        World::MigrationStrategy => WorldPre::MigrationStrategy(
            migration::MigrationStrategyPre::new(pre).map_err(signature)?,
        ),
    })
}

/// Check what `describe()` returned.
pub(crate) fn check_info(
    raw: types::PluginInfo,
    wit_version: semver::Version,
) -> Result<PluginInfo, LoadError> {
    let invalid = |detail: String| LoadError::InvalidInfo(detail);
    if !is_dns_label(&raw.name) {
        return Err(invalid(format!(
            "the name {:?}, which is not a DNS-1123 label (lower case letters, digits and '-', at most 63 characters)",
            raw.name
        )));
    }
    let version = semver::Version::parse(&raw.version).map_err(|error| {
        invalid(format!(
            "the version {:?}, which is not a semantic version: {error}",
            raw.version
        ))
    })?;
    if raw.description.len() > 1024 {
        return Err(invalid("a description longer than 1024 bytes".to_owned()));
    }
    if raw.kinds.len() > 256 {
        return Err(invalid(format!("{} kinds (at most 256)", raw.kinds.len())));
    }
    let mut kinds = Vec::with_capacity(raw.kinds.len());
    for kind in raw.kinds {
        let valid_version = !kind.api_version.is_empty()
            && kind.api_version.len() <= 253
            && kind
                .api_version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '/'));
        let valid_kind = kind.kind.starts_with(|c: char| c.is_ascii_uppercase())
            && kind.kind.len() <= 63
            && kind.kind.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid_version || !valid_kind {
            return Err(invalid(format!(
                "the kind {:?} {:?}, which is not a valid apiVersion and kind",
                kind.api_version, kind.kind
            )));
        }
        kinds.push(KindRef {
            api_version: kind.api_version,
            kind: kind.kind,
        });
    }
    kinds.sort();
    kinds.dedup();
    let settings_schema = match raw.settings_schema {
        None => None,
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(schema @ (Value::Object(_) | Value::Bool(_))) => Some(schema),
            Ok(_) => {
                return Err(invalid(
                    "a settings schema that is not a JSON object".into(),
                ));
            }
            Err(error) => {
                return Err(invalid(format!(
                    "a settings schema that is not JSON: {error}"
                )));
            }
        },
    };
    Ok(PluginInfo {
        id: PluginId {
            name: raw.name,
            version,
        },
        description: raw.description,
        kinds,
        settings_schema,
        wit_version,
    })
}

/// `describe()` of a freshly linked component, under the plugin's limits.
pub(crate) fn describe(
    pre: &WorldPre,
    limits: &Limits,
    label: &Arc<str>,
) -> Result<types::PluginInfo, PluginError> {
    sandbox::run(
        pre,
        limits,
        label,
        "describe",
        &CallContext::default(),
        |store, pre| match pre {
            WorldPre::Generator(pre) => {
                let bindings = pre.instantiate(&mut *store)?;
                bindings
                    .portfolio_plugin_generation()
                    .call_describe(&mut *store)
            }
            WorldPre::MigrationStrategy(pre) => {
                let bindings = pre.instantiate(&mut *store)?;
                bindings
                    .portfolio_plugin_migration()
                    .call_describe(&mut *store)
            }
        },
    )
}

/// Whether `value` is a DNS-1123 label: lower case letters, digits and '-',
/// at most 63 characters, neither starting nor ending with '-'.
pub fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use semver::Version;

    #[test]
    fn compatibility_follows_cargo_rules() {
        let v = |s: &str| Version::parse(s).unwrap();
        assert!(compatible(&v("0.1.0"), &v("0.1.0")));
        assert!(compatible(&v("0.1.0"), &v("0.1.7")));
        assert!(!compatible(&v("0.1.0"), &v("0.2.0")));
        assert!(!compatible(&v("0.1.0"), &v("1.0.0")));
        assert!(compatible(&v("1.2.0"), &v("1.0.3")));
        assert!(!compatible(&v("1.2.0"), &v("2.0.0")));
        assert!(!compatible(&v("0.0.1"), &v("0.0.2")));
        assert!(!compatible(&v("0.1.0"), &v("0.1.0-rc.1")));
    }

    #[test]
    fn headers_say_what_the_bytes_are() {
        assert!(matches!(check_header(b"hello"), Err(LoadError::NotWasm)));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(matches!(check_header(b""), Err(LoadError::NotWasm)));
    }

    fn raw_info(name: &str, version: &str) -> types::PluginInfo {
        types::PluginInfo {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            kinds: vec![],
            settings_schema: None,
        }
    }

    #[test]
    fn info_is_checked() {
        let wit = Version::new(0, 1, 0);
        assert!(check_info(raw_info("ok-name", "1.2.3"), wit.clone()).is_ok());
        let bad_name = check_info(raw_info("Bad_Name", "1.2.3"), wit.clone()).unwrap_err();
        assert!(bad_name.to_string().contains("DNS-1123"), "{bad_name}");
        let bad_version = check_info(raw_info("ok", "one"), wit.clone()).unwrap_err();
        assert!(bad_version.to_string().contains("semantic version"));
        let mut bad_schema = raw_info("ok", "1.0.0");
        bad_schema.settings_schema = Some("[1]".into());
        assert!(check_info(bad_schema, wit).is_err());
    }
}
