//! The on-disk compile cache: written by one runtime, used by the next, and
//! never trusted when it looks tampered with.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use portfolio_operator::plugin::{LoadOptions, Plugin, Runtime, RuntimeConfig};
use serde_json::json;
use sha2::Digest as _;

use crate::common::{component, config_map, context, input};

fn runtime(cache: &Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.to_owned()),
        instance_slots: 4,
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

/// `plugin` turns one ConfigMap into one object: its code works.
fn assert_runs(plugin: &Plugin, what: &str) {
    let output = plugin
        .generate(&input(json!({"objects": [config_map("a")]})), &context())
        .expect(what);
    assert_eq!(output.objects.len(), 1, "{what}");
}

/// A cache directory (alive as long as its guard), the test component, and a
/// runtime that has compiled the component into that cache once.
fn compiled_once() -> (tempfile::TempDir, PathBuf, Vec<u8>, Runtime) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let bytes = component("hostile");
    let first = runtime(&cache);
    first.load(&bytes, &LoadOptions::default()).expect("load");
    (dir, cache, bytes, first)
}

fn entries(cache: &Path) -> Vec<PathBuf> {
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
    let (_dir, cache, bytes, first) = compiled_once();
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
    assert_runs(&plugin, "a cached component runs");
}

#[test]
fn a_corrupt_entry_is_replaced_by_a_fresh_compile() {
    let (_dir, cache, bytes, _) = compiled_once();
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

/// `bytes` with a custom section appended: another digest, the same code.
fn with_custom_section(bytes: &[u8], payload: &[u8]) -> Vec<u8> {
    let name = b"portfolio-test";
    let mut content = vec![name.len() as u8];
    content.extend_from_slice(name);
    content.extend_from_slice(payload);
    assert!(content.len() < 128, "one-byte LEB128 size");
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(content.len() as u8);
    out.extend_from_slice(&content);
    out
}

fn function_entries(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache.join("functions-v1"))
        .expect("read the function cache")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect()
}

#[test]
fn a_new_version_compiles_only_the_functions_it_changed() {
    let (_dir, cache, bytes, first) = compiled_once();
    // A component repeats some functions (its adapters' trampolines, say):
    // the second of each is reused already.
    let stats = first.stats();
    let functions = stats.functions_compiled + stats.functions_reused;
    assert!(stats.functions_compiled > 10, "{stats:?}");
    // One entry per distinct function (two threads may compile the same one).
    let entries = function_entries(&cache);
    assert!(entries.len() > 10 && entries.len() as u64 <= stats.functions_compiled);
    let mode = std::fs::metadata(&entries[0])
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only");

    // Another component (its digest differs) with the same code, in the same
    // runtime and in the next one: compiled as a whole, its functions reused.
    for (runtime, payload) in [(&first, &b"v2"[..]), (&runtime(&cache), &b"v3"[..])] {
        let before = runtime.stats();
        let changed = with_custom_section(&bytes, payload);
        let plugin = runtime
            .load(&changed, &LoadOptions::default())
            .expect("load");
        let after = runtime.stats();
        assert_eq!(after.compiled, before.compiled + 1, "not an artifact hit");
        // Some functions come out of a (parallel) compile under other keys
        // than last time, and are compiled again: 4 to 14 % of them here.
        let reused = after.functions_reused - before.functions_reused;
        let compiled = after.functions_compiled - before.functions_compiled;
        assert_eq!(reused + compiled, functions, "{after:?}");
        assert!(
            compiled * 4 <= functions,
            "{compiled} of {functions} compiled again"
        );
        assert_runs(&plugin, "reused code runs");
    }
}

#[test]
fn torn_or_loose_function_entries_are_compiled_again() {
    let (_dir, cache, bytes, _) = compiled_once();
    let entries = function_entries(&cache);
    let (torn, loose) = entries.split_at(entries.len() / 2);
    for path in torn {
        let mut content = std::fs::read(path).expect("read");
        content.truncate(content.len() - 1);
        std::fs::write(path, content).expect("tear");
    }
    for path in loose {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    let next = runtime(&cache);
    let plugin = next
        .load(&with_custom_section(&bytes, b"v2"), &LoadOptions::default())
        .expect("load");
    // The damaged entries were compiled again and rewritten whole: owner-only,
    // ending with the SHA-256 of the rest (those whose function came out under
    // another key are left as they are, never read).
    let rewritten = entries
        .iter()
        .filter(|path| {
            let mode = std::fs::metadata(path).map(|m| m.permissions().mode());
            let content = std::fs::read(path).unwrap_or_default();
            mode.is_ok_and(|mode| mode & 0o777 == 0o600)
                && content.len() > 32
                && sha2::Sha256::digest(&content[..content.len() - 32]).as_slice()
                    == &content[content.len() - 32..]
        })
        .count();
    assert!(
        rewritten * 4 >= entries.len() * 3,
        "{rewritten} of {} entries rewritten",
        entries.len()
    );
    assert!(next.stats().functions_compiled as usize >= rewritten);
    assert_runs(&plugin, "recompiled code runs");
}
