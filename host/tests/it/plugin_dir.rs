//! The directory source: plugins appear, change, fail and disappear while watched.

use std::sync::Arc;
use std::time::Duration;

use portfolio_operator::plugin::World;
use portfolio_operator::registry::{
    PluginRef, Registry, RegistryEvent, SourceKind, watch_directory,
};
use tokio::sync::broadcast;

use crate::common::{component, runtime};

/// Wait (generously) for the first event that `pick` accepts.
async fn wait_for<T>(
    events: &mut broadcast::Receiver<RegistryEvent>,
    mut pick: impl FnMut(&RegistryEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("timed out waiting for a registry event")
            .expect("event channel");
        if let Some(found) = pick(&event) {
            return found;
        }
    }
}

/// Replace `path` at once, as a deployment tool does (write beside, then
/// rename): a plain write truncates first, and the watcher may read the
/// empty file in between, which is a different (also refused) upload.
fn replace(path: &std::path::Path, bytes: &[u8]) {
    let staged = path.with_file_name(format!(
        ".{}.staged",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("plugin")
    ));
    std::fs::write(&staged, bytes).expect("write");
    std::fs::rename(&staged, path).expect("rename");
}

fn resolve(
    registry: &Registry,
    reference: &str,
) -> Option<Arc<portfolio_operator::plugin::Plugin>> {
    let reference: PluginRef = reference.parse().expect("reference");
    registry.resolve(&reference, World::Generator).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_follow_the_directory_and_bad_files_never_replace_good_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = runtime();
    let registry = Arc::new(Registry::new());
    let mut events = registry.subscribe();

    let hostile_path = dir.path().join("team.wasm");
    replace(&hostile_path, &component("hostile"));
    // Not plugins: ignored.
    std::fs::write(dir.path().join("notes.txt"), "hello").expect("write");
    std::fs::write(dir.path().join(".hidden.wasm"), "junk").expect("write");

    let _watch = watch_directory(
        dir.path().to_owned(),
        runtime.clone(),
        Arc::clone(&registry),
    )
    .await
    .expect("watch");
    let key = hostile_path.display().to_string();
    let good = resolve(&registry, "hostile").expect("loaded by the first scan");
    assert_eq!(registry.entries().len(), 1, "only team.wasm is a plugin");

    // A broken upload: the good version stays active, and the failure is reported.
    replace(&hostile_path, b"\0asm garbage");
    let error = wait_for(&mut events, |event| match event {
        RegistryEvent::Rejected { key: k, error, .. } if *k == key => Some(error.clone()),
        _ => None,
    })
    .await;
    assert!(
        error.contains("not a valid WebAssembly component"),
        "{error}"
    );
    let still = resolve(&registry, "hostile").expect("the good version is kept");
    assert_eq!(still.digest(), good.digest());

    // Fixed, with a registration: settings and limits apply.
    std::fs::write(
        dir.path().join("team.yaml"),
        "settings:\n  greeting: hello\nlimits:\n  timeoutMs: 300\n",
    )
    .expect("write");
    replace(&hostile_path, &component("hostile"));
    let settings = wait_for(&mut events, |event| match event {
        RegistryEvent::Activated { key: k, .. } if *k == key => {
            resolve(&registry, "hostile").map(|p| p.settings().to_owned())
        }
        _ => None,
    })
    .await;
    assert_eq!(settings, r#"{"greeting":"hello"}"#);
    assert_eq!(
        resolve(&registry, "hostile")
            .expect("active")
            .limits()
            .timeout,
        Duration::from_millis(300)
    );

    // A bad registration is refused like a bad component.
    std::fs::write(dir.path().join("team.yaml"), "limits:\n  timeoutMs: 0\n").expect("write");
    let error = wait_for(&mut events, |event| match event {
        RegistryEvent::Rejected { key: k, error, .. } if *k == key => Some(error.clone()),
        _ => None,
    })
    .await;
    assert!(error.contains("timeoutMs"), "{error}");
    assert_eq!(
        resolve(&registry, "hostile")
            .expect("kept")
            .limits()
            .timeout,
        Duration::from_millis(300)
    );

    // A second plugin appears, then disappears.
    let second = dir.path().join("future.wasm");
    std::fs::write(&second, component("future_minor")).expect("write");
    wait_for(&mut events, |event| match event {
        RegistryEvent::Activated {
            id,
            source: SourceKind::Directory,
            ..
        } if id.name == "future-minor" => Some(()),
        _ => None,
    })
    .await;
    assert!(resolve(&registry, "future-minor@0.2.0").is_some());
    std::fs::remove_file(&second).expect("remove");
    wait_for(&mut events, |event| match event {
        RegistryEvent::Removed { id, .. } if id.name == "future-minor" => Some(()),
        _ => None,
    })
    .await;
    assert!(resolve(&registry, "future-minor").is_none());
    assert!(resolve(&registry, "hostile").is_some());
}

#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let registry = Arc::new(Registry::new());
    let error = watch_directory("/nonexistent/plugins".into(), runtime(), registry)
        .await
        .err()
        .expect("must fail");
    assert!(
        error
            .to_string()
            .starts_with("plugin directory /nonexistent/plugins: "),
        "{error}"
    );
}
