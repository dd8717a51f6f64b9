//! The built-in plugins: each loads with every check, and each stays small
//! enough to ship in a ConfigMap.

use portfolio_operator::builtin::BUILTINS;
use portfolio_operator::plugin::{LoadOptions, Runtime, RuntimeConfig};

/// Ceiling per plugin: a ConfigMap holds 1 MiB, base64 takes a third more,
/// and room must remain for a team's larger plugins.
const MAX_BYTES: usize = 300_000;

#[test]
fn every_builtin_is_small_and_loads() {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    assert!(!BUILTINS.is_empty());
    for builtin in BUILTINS {
        assert!(
            builtin.bytes.len() <= MAX_BYTES,
            "{} is {} bytes, more than {MAX_BYTES}",
            builtin.file,
            builtin.bytes.len()
        );
        let plugin = runtime
            .load(builtin.bytes, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", builtin.file));
        assert!(
            !plugin.info().kinds.is_empty(),
            "{} declares no kinds",
            builtin.file
        );
        let schema = plugin.info().settings_schema.as_ref();
        assert!(
            schema.is_some(),
            "{} publishes no settings schema",
            builtin.file
        );
    }
}
