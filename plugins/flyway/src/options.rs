//! `spec.flyway` checked and turned into Flyway's command line.
//!
//! Everything but the credentials travels as command-line arguments, which
//! take precedence over any `flyway.toml` in the image (the official image
//! ships one with `cleanDisabled = false` and a SQLite URL); the user name
//! and password come from the Secret through `FLYWAY_USER` and
//! `FLYWAY_PASSWORD`, so they never appear in the Job or a process list.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use portfolio_api::FlywayOptions;
use strategy_kit::Invalid;
use strategy_kit::spec::{Migration, check_parameter_name, check_relative_path, check_text};

/// At most this many locations, schemas or placeholders: more is a mistake,
/// and each becomes part of a command line.
const MAX_ITEMS: usize = 64;

/// The Flyway arguments every step shares, starting with the executable.
pub fn common_args(migration: &Migration) -> Result<Vec<String>, Invalid> {
    let spec = &migration.spec;
    let default_options = FlywayOptions::default();
    let options = spec.flyway.as_ref().unwrap_or(&default_options);
    let root = &spec.source.path;
    let mut args = vec![
        "flyway".to_owned(),
        // Machine-readable output (errors included) on stdout, for the summary.
        "-outputType=json".to_owned(),
        format!("-url={}", spec.database.url),
        format!("-locations={}", locations(root, &options.locations)?),
        // Never let anything wipe the schema, whatever the image's config says.
        "-cleanDisabled=true".to_owned(),
        format!("-validateOnMigrate={}", options.validate_on_migrate),
    ];
    if !options.schemas.is_empty() {
        args.push(format!("-schemas={}", schemas(&options.schemas)?));
    }
    if let Some(target) = &options.target {
        check_target(target)?;
        args.push(format!("-target={target}"));
    }
    if options.baseline_on_migrate {
        args.push("-baselineOnMigrate=true".to_owned());
    }
    if options.out_of_order {
        args.push("-outOfOrder=true".to_owned());
    }
    if options.placeholders.len() > MAX_ITEMS {
        return Err(Invalid::new(
            "spec.flyway.placeholders",
            format!("at most {MAX_ITEMS} placeholders"),
        ));
    }
    for (name, value) in &options.placeholders {
        let field = format!("spec.flyway.placeholders.{name}");
        check_parameter_name(&field, name)?;
        check_text(&field, value, 4096)?;
        args.push(format!("-placeholders.{name}={value}"));
    }
    Ok(args)
}

/// `filesystem:` locations under the source path.
fn locations(root: &str, relative: &[String]) -> Result<String, Invalid> {
    if relative.is_empty() {
        return Ok(format!("filesystem:{root}"));
    }
    if relative.len() > MAX_ITEMS {
        return Err(Invalid::new(
            "spec.flyway.locations",
            format!("at most {MAX_ITEMS} locations"),
        ));
    }
    let mut joined = String::new();
    for (index, location) in relative.iter().enumerate() {
        check_relative_path(location)
            .map_err(|message| Invalid::new(format!("spec.flyway.locations[{index}]"), message))?;
        if index > 0 {
            joined.push(',');
        }
        joined.push_str("filesystem:");
        joined.push_str(root);
        joined.push('/');
        joined.push_str(location);
    }
    Ok(joined)
}

fn schemas(schemas: &[String]) -> Result<String, Invalid> {
    if schemas.len() > MAX_ITEMS {
        return Err(Invalid::new(
            "spec.flyway.schemas",
            format!("at most {MAX_ITEMS} schemas"),
        ));
    }
    for (index, schema) in schemas.iter().enumerate() {
        let valid = !schema.is_empty()
            && schema.len() <= 128
            && !schema
                .chars()
                .any(|c| c == ',' || c == '"' || c.is_whitespace() || c.is_control());
        if !valid {
            return Err(Invalid::new(
                format!("spec.flyway.schemas[{index}]"),
                format!(
                    "{schema:?} is not a schema name (no commas, quotes or spaces, at most 128)"
                ),
            ));
        }
    }
    Ok(schemas.join(","))
}

/// `latest`, `current`, `next`, or a version such as `5`, `5.1` or `2024_01_15`.
fn check_target(target: &str) -> Result<(), Invalid> {
    let version = !target.is_empty()
        && target.len() <= 64
        && target.as_bytes()[0].is_ascii_digit()
        && target
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'_');
    if version || matches!(target, "latest" | "current" | "next") {
        Ok(())
    } else {
        Err(Invalid::new(
            "spec.flyway.target",
            format!("{target:?} is not a version (e.g. 5.1), latest, current or next"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strategy_kit::Input;

    fn migration(flyway: &str) -> Result<Vec<String>, Invalid> {
        let spec = format!(
            r#"{{"tool": "flyway", "database": {{"url": "jdbc:postgresql://db/shop", "credentialsSecretRef": {{"name": "db"}}}}, "source": {{"configMapRef": {{"name": "sql"}}}}, "flyway": {flyway}}}"#
        );
        let input = Input {
            name: "shop",
            uid: "",
            annotations: &[],
            spec: &spec,
            settings: "",
        };
        let migration = Migration::parse(&input, portfolio_api::MigrationTool::Flyway)?;
        common_args(&migration)
    }

    #[test]
    fn defaults_scan_the_source_path_and_disable_clean() {
        let args = migration("{}").unwrap();
        assert_eq!(
            args,
            [
                "flyway",
                "-outputType=json",
                "-url=jdbc:postgresql://db/shop",
                "-locations=filesystem:/migrations",
                "-cleanDisabled=true",
                "-validateOnMigrate=true",
            ]
        );
    }

    #[test]
    fn every_option_reaches_the_command_line() {
        let args = migration(
            r#"{"locations": ["v1", "v2/sql"], "schemas": ["app", "audit"], "target": "5.1", "baselineOnMigrate": true, "outOfOrder": true, "validateOnMigrate": false, "placeholders": {"owner": "app user", "b": "x=y"}}"#,
        )
        .unwrap();
        for expected in [
            "-locations=filesystem:/migrations/v1,filesystem:/migrations/v2/sql",
            "-schemas=app,audit",
            "-target=5.1",
            "-baselineOnMigrate=true",
            "-outOfOrder=true",
            "-validateOnMigrate=false",
            "-placeholders.owner=app user",
            "-placeholders.b=x=y",
        ] {
            assert!(
                args.iter().any(|arg| arg == expected),
                "{expected} missing from {args:?}"
            );
        }
        assert!(args.iter().any(|arg| arg == "-cleanDisabled=true"));
    }

    #[test]
    fn bad_options_name_their_field() {
        let cases = [
            (
                r#"{"locations": ["ok", "../etc"]}"#,
                "spec.flyway.locations[1]",
            ),
            (r#"{"locations": ["/abs"]}"#, "spec.flyway.locations[0]"),
            (
                r#"{"locations": ["a,filesystem:/etc"]}"#,
                "spec.flyway.locations[0]",
            ),
            (r#"{"schemas": ["a", "b,c"]}"#, "spec.flyway.schemas[1]"),
            (r#"{"schemas": [""]}"#, "spec.flyway.schemas[0]"),
            (r#"{"target": "v5"}"#, "spec.flyway.target"),
            (r#"{"target": "5; rm -rf /"}"#, "spec.flyway.target"),
            (
                r#"{"placeholders": {"a b": "x"}}"#,
                "spec.flyway.placeholders.a b",
            ),
            (
                r#"{"placeholders": {"a": "x\u0000y"}}"#,
                "spec.flyway.placeholders.a",
            ),
            (r#"{"placeholders": ["a"]}"#, "spec.flyway.placeholders"),
            (
                r#"{"baselineOnMigrate": "yes"}"#,
                "spec.flyway.baselineOnMigrate",
            ),
        ];
        for (options, field) in cases {
            assert_eq!(migration(options).unwrap_err().field, field, "{options}");
        }
        for target in ["latest", "current", "next", "7", "2024_01_15", "1.2.3"] {
            assert!(check_target(target).is_ok(), "{target}");
        }
    }
}
