//! The on-disk compile cache: written by one runtime, used by the next, and
//! never trusted when it looks tampered with.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use portfolio_operator::plugin::{LoadOptions, Runtime, RuntimeConfig};
use serde_json::json;

use crate::common::{component, config_map, context, input};

fn runtime(cache: &Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.to_owned()),
        instance_slots: 4,
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

fn entries(cache: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(cache)
        .expect("read cache")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_second_runtime_loads_what_the_first_compiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let bytes = component("hostile");

    let first = runtime(&cache);
    first.load(&bytes, &LoadOptions::default()).expect("load");
    assert_eq!(first.stats().compiled, 1);
    let files = entries(&cache);
    assert_eq!(files.len(), 1);
    let mode = std::fs::metadata(&files[0])
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only");

    let second = runtime(&cache);
    let plugin = second.load(&bytes, &LoadOptions::default()).expect("load");
    assert_eq!(second.stats().compiled, 0);
    assert_eq!(second.stats().disk_hits, 1);
    let output = plugin
        .generate(&input(json!({"objects": [config_map("a")]})), &context())
        .expect("a cached component runs");
    assert_eq!(output.objects.len(), 1);
}

#[test]
fn a_corrupt_entry_is_replaced_by_a_fresh_compile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let bytes = component("hostile");
    runtime(&cache)
        .load(&bytes, &LoadOptions::default())
        .expect("load");
    let file = entries(&cache).remove(0);
    std::fs::write(&file, b"corrupt").expect("corrupt");

    let next = runtime(&cache);
    next.load(&bytes, &LoadOptions::default()).expect("load");
    assert_eq!(next.stats().compiled, 1);
    assert_eq!(next.stats().disk_hits, 0);
    assert!(std::fs::read(&file).expect("rewritten").len() > 1000);
}

#[test]
fn a_cache_others_can_write_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).expect("mkdir");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o775)).expect("chmod");
    let error = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache),
        ..RuntimeConfig::default()
    })
    .err()
    .expect("must refuse");
    assert!(
        error
            .to_string()
            .contains("not safe to load native code from"),
        "{error}"
    );
}
