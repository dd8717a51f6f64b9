//! Reading a `DatabaseMigration` spec and checking what both strategies rely on.
//!
//! The CRD schema already refuses most bad specs, but a plugin cannot trust
//! it: `render` runs without an API server, the schema may be older than the
//! plugin, and a team plugin may hand the same spec to these helpers. So
//! everything that ends up in a Job is checked again here, and every refusal
//! names the field.

use alloc::format;
use alloc::string::{String, ToString};

use portfolio_api::{DatabaseMigrationSpec, MigrationTool};
use serde::de::DeserializeOwned;

use crate::names::{is_data_key, is_dns_subdomain};
use crate::settings::{ObjectSettings, check_image};
use crate::{Input, Invalid, duration};

/// A spec that passed the common checks, with what was derived from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Migration {
    /// The spec as parsed.
    pub spec: DatabaseMigrationSpec,
    /// `spec.timeout` in seconds: the Jobs' `activeDeadlineSeconds`.
    pub timeout_seconds: u64,
    /// What `spec.strategy.settings` overrides.
    pub object_settings: ObjectSettings,
}

/// Where the migrations come from, after the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source<'a> {
    /// A ConfigMap mounted at the source path.
    ConfigMap(&'a str),
    /// An image whose source path is copied into the pod.
    Image(&'a str),
}

impl Migration {
    /// Parse `input.spec` and check the parts common to both tools; `tool`
    /// is the strategy's own tool.
    pub fn parse(input: &Input<'_>, tool: MigrationTool) -> Result<Migration, Invalid> {
        if !is_dns_subdomain(input.name) {
            return Err(Invalid::new(
                "metadata.name",
                format!("{:?} is not a valid object name", input.name),
            ));
        }
        let spec: DatabaseMigrationSpec = parse_json("spec", input.spec)?;
        if spec.tool != tool {
            return Err(Invalid::new(
                "spec.tool",
                format!(
                    "this is the {} strategy but spec.tool is {}; drop spec.strategy to use the built-in {} strategy",
                    tool.as_str(),
                    spec.tool.as_str(),
                    spec.tool.as_str()
                ),
            ));
        }
        let foreign = match tool {
            MigrationTool::Flyway => spec.liquibase.is_some().then_some("spec.liquibase"),
            MigrationTool::Liquibase => spec.flyway.is_some().then_some("spec.flyway"),
        };
        if let Some(field) = foreign {
            return Err(Invalid::new(
                field,
                format!(
                    "only spec.{} applies to tool {}",
                    tool.as_str(),
                    tool.as_str()
                ),
            ));
        }
        check_jdbc_url(&spec.database.url)?;
        let credentials = &spec.database.credentials_secret_ref;
        if !is_dns_subdomain(&credentials.name) {
            return Err(Invalid::new(
                "spec.database.credentialsSecretRef.name",
                format!("{:?} is not a valid Secret name", credentials.name),
            ));
        }
        for (field, key) in [
            ("usernameKey", &credentials.username_key),
            ("passwordKey", &credentials.password_key),
        ] {
            if !is_data_key(key) {
                return Err(Invalid::new(
                    format!("spec.database.credentialsSecretRef.{field}"),
                    format!("{key:?} is not a valid Secret key"),
                ));
            }
        }
        check_source(&spec)?;
        let timeout_seconds = duration::parse(&spec.timeout)
            .map_err(|message| Invalid::new("spec.timeout", message))?;
        if let Some(image) = &spec.image {
            check_image("spec.image", image)?;
        }
        let object_settings = ObjectSettings::parse(
            spec.strategy
                .as_ref()
                .and_then(|strategy| strategy.settings.as_ref())
                .map(|settings| settings.get()),
        )?;
        Ok(Migration {
            spec,
            timeout_seconds,
            object_settings,
        })
    }

    /// Where the migrations come from (checked by [`Migration::parse`]).
    pub fn source(&self) -> Source<'_> {
        match (&self.spec.source.config_map_ref, &self.spec.source.image) {
            (Some(config_map), _) => Source::ConfigMap(&config_map.name),
            (None, Some(image)) => Source::Image(image),
            // parse refuses a source with neither.
            (None, None) => Source::ConfigMap(""),
        }
    }
}

/// Parse the JSON object `text`; on failure, name the field under `root` (`spec.timeout`).
pub fn parse_json<T: DeserializeOwned>(root: &str, text: &str) -> Result<T, Invalid> {
    // serde reads a struct from an array too; an array here is a mistake.
    if !text.trim_start().starts_with('{') {
        return Err(Invalid::new(root, "must be a JSON object"));
    }
    serde_json::from_str(text).map_err(|error| {
        Invalid::new(
            portfolio_api::json_path::field_of(root, text, &error),
            error.to_string(),
        )
    })
}

fn check_source(spec: &DatabaseMigrationSpec) -> Result<(), Invalid> {
    let source = &spec.source;
    match (&source.config_map_ref, &source.image) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(Invalid::new(
                "spec.source",
                "set exactly one of source.configMapRef and source.image",
            ));
        }
        (Some(config_map), None) if !is_dns_subdomain(&config_map.name) => {
            return Err(Invalid::new(
                "spec.source.configMapRef.name",
                format!("{:?} is not a valid ConfigMap name", config_map.name),
            ));
        }
        (None, Some(image)) => check_image("spec.source.image", image)?,
        _ => {}
    }
    check_source_path(&source.path).map_err(|message| Invalid::new("spec.source.path", message))
}

/// Directories a source may not be mounted over: the system's, the JVM's
/// (`/opt/java` in the Temurin-based tool images), and the pod's scratch
/// space and copy target.
const RESERVED_TREES: [&str; 17] = [
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/opt/java",
    crate::job::SOURCE_COPY_DIR,
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
];

/// Directories that may hold a source below them but not be replaced by one:
/// the tools' installations (their `sql/` and `changelog/` are fine).
const RESERVED_DIRS: [&str; 3] = ["/", "/flyway", "/liquibase"];

/// Check the absolute directory where the migrations are mounted.
pub fn check_source_path(path: &str) -> Result<(), String> {
    let plain = path.len() <= 253
        && path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'));
    if !plain {
        return Err(format!(
            "{path:?} must be an absolute directory of letters, digits, '.', '_', '-' and '/', e.g. /migrations"
        ));
    }
    if path.len() > 1
        && path
            .split('/')
            .skip(1)
            .any(|part| matches!(part, "" | "." | ".."))
    {
        return Err(format!(
            "{path:?} must be a plain path: no empty, '.' or '..' parts and no trailing '/'"
        ));
    }
    let reserved = RESERVED_DIRS.contains(&path)
        || RESERVED_TREES.iter().any(|tree| {
            path == *tree
                || path
                    .strip_prefix(tree)
                    .is_some_and(|rest| rest.starts_with('/'))
        });
    if reserved {
        return Err(format!(
            "{path:?} would hide files the Job needs; use a directory of its own such as /migrations"
        ));
    }
    Ok(())
}

/// Check a relative path inside the source (a Flyway location, a Liquibase changelog).
pub fn check_relative_path(path: &str) -> Result<(), String> {
    let plain = !path.is_empty()
        && path.len() <= 512
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'));
    if !plain
        || path.starts_with('/')
        || path.split('/').any(|part| matches!(part, "" | "." | ".."))
    {
        return Err(format!(
            "{path:?} must be a path relative to spec.source.path, of letters, digits, '.', '_', '-' and '/', without '..'"
        ));
    }
    Ok(())
}

/// Check the JDBC URL: well formed, and free of credentials (they belong in the Secret).
pub fn check_jdbc_url(url: &str) -> Result<(), Invalid> {
    const FIELD: &str = "spec.database.url";
    let well_formed = url.len() <= 1024
        && url.strip_prefix("jdbc:").is_some_and(|rest| {
            let protocol_end = rest.find(':').unwrap_or(0);
            protocol_end > 0
                && rest[..protocol_end]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && rest.len() > protocol_end + 1
        })
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !well_formed {
        return Err(Invalid::new(
            FIELD,
            format!("{url:?} is not a JDBC URL such as jdbc:postgresql://db.shop.svc:5432/shop"),
        ));
    }
    let lower = url.to_ascii_lowercase();
    let password_parameter = ["password=", "pwd=", "passwd="].iter().any(|needle| {
        lower.match_indices(needle).any(|(at, _)| {
            // A parameter name starts the query, or follows a separator.
            at == 0 || matches!(lower.as_bytes()[at - 1], b'?' | b'&' | b';' | b':')
        })
    });
    let user_info = lower.find("//").is_some_and(|start| {
        let authority = &lower[start + 2..];
        let end = authority.find(['/', '?', ';']).unwrap_or(authority.len());
        authority[..end].contains('@')
    });
    // Oracle's thin driver takes `user/password@host`.
    let oracle_credentials = lower
        .strip_prefix("jdbc:oracle:thin:")
        .and_then(|rest| rest.split_once('@'))
        .is_some_and(|(before, _)| before.contains('/'));
    if password_parameter || user_info || oracle_credentials {
        return Err(Invalid::new(
            FIELD,
            "the URL carries credentials; remove them and put the user name and password in the Secret named by spec.database.credentialsSecretRef",
        ));
    }
    Ok(())
}

/// Check a string that ends up in a container's arguments or environment:
/// at most `max` bytes and no NUL (which neither can carry).
pub fn check_text(field: &str, text: &str, max: usize) -> Result<(), Invalid> {
    if text.len() > max {
        return Err(Invalid::new(field, format!("is longer than {max} bytes")));
    }
    if text.contains('\0') {
        return Err(Invalid::new(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// Check a name (placeholder, parameter) passed as `<prefix><name>=<value>`:
/// letters, digits, `_`, `.` and `-`, at most 128 bytes.
pub fn check_parameter_name(field: &str, name: &str) -> Result<(), Invalid> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{name:?} must be letters, digits, '_', '.' and '-' (at most 128)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(spec: &str) -> Input<'_> {
        Input {
            name: "shop",
            uid: "u",
            annotations: &[],
            spec,
            settings: "{}",
        }
    }

    const GOOD: &str = r#"{"tool": "flyway", "database": {"url": "jdbc:postgresql://db:5432/shop", "credentialsSecretRef": {"name": "db"}}, "source": {"configMapRef": {"name": "sql"}}}"#;

    fn with(patch: &str) -> String {
        let mut base: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        let patch: serde_json::Value = serde_json::from_str(patch).unwrap();
        merge(&mut base, patch);
        base.to_string()
    }

    fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
        match (base, patch) {
            (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
                for (key, value) in patch {
                    if value.is_null() {
                        base.remove(&key);
                    } else {
                        merge(base.entry(key).or_insert(serde_json::Value::Null), value);
                    }
                }
            }
            (base, patch) => *base = patch,
        }
    }

    fn field_of(spec: &str, tool: MigrationTool) -> String {
        Migration::parse(&input(spec), tool).unwrap_err().field
    }

    #[test]
    fn a_minimal_spec_gets_the_defaults() {
        let migration = Migration::parse(&input(GOOD), MigrationTool::Flyway).unwrap();
        assert_eq!(migration.timeout_seconds, 900);
        assert_eq!(migration.source(), Source::ConfigMap("sql"));
        assert_eq!(migration.spec.source.path, "/migrations");
    }

    #[test]
    fn every_refusal_names_its_field() {
        let flyway = MigrationTool::Flyway;
        let cases = [
            (
                r#"{"tool": "liquibase", "liquibase": {"changelogFile": "c.yaml"}}"#,
                "spec.tool",
            ),
            (r#"{"tool": "mongo"}"#, "spec.tool"),
            (
                r#"{"liquibase": {"changelogFile": "c.yaml"}}"#,
                "spec.liquibase",
            ),
            (
                r#"{"database": {"url": "postgres://db"}}"#,
                "spec.database.url",
            ),
            (
                r#"{"database": {"url": "jdbc:postgresql://db/shop?password=hunter2"}}"#,
                "spec.database.url",
            ),
            (
                r#"{"database": {"url": "jdbc:mysql://root:hunter2@db/shop"}}"#,
                "spec.database.url",
            ),
            (
                r#"{"database": {"url": "jdbc:sqlserver://db;user=sa;Password=x"}}"#,
                "spec.database.url",
            ),
            (
                r#"{"database": {"url": "jdbc:oracle:thin:scott/tiger@//db:1521/x"}}"#,
                "spec.database.url",
            ),
            (
                r#"{"database": {"url": "jdbc:postgresql://db/shop\nx"}}"#,
                "spec.database.url",
            ),
            (
                r#"{"database": {"credentialsSecretRef": {"name": "Bad_Name"}}}"#,
                "spec.database.credentialsSecretRef.name",
            ),
            (
                r#"{"database": {"credentialsSecretRef": {"passwordKey": "a/b"}}}"#,
                "spec.database.credentialsSecretRef.passwordKey",
            ),
            (
                r#"{"database": {"credentialsSecretRef": {"usernameKey": ""}}}"#,
                "spec.database.credentialsSecretRef.usernameKey",
            ),
            (
                r#"{"database": {"credentialsSecretRef": null}}"#,
                "spec.database",
            ),
            (r#"{"source": {"image": "repo/sql:1"}}"#, "spec.source"),
            (r#"{"source": {"configMapRef": null}}"#, "spec.source"),
            (
                r#"{"source": {"configMapRef": {"name": "a b"}}}"#,
                "spec.source.configMapRef.name",
            ),
            (
                r#"{"source": {"configMapRef": null, "image": "bad image"}}"#,
                "spec.source.image",
            ),
            (r#"{"source": {"path": "migrations"}}"#, "spec.source.path"),
            (r#"{"source": {"path": "/etc/sql"}}"#, "spec.source.path"),
            (r#"{"source": {"path": "/a/../etc"}}"#, "spec.source.path"),
            (r#"{"source": {"path": "/flyway"}}"#, "spec.source.path"),
            (r#"{"timeout": "forever"}"#, "spec.timeout"),
            (r#"{"timeout": "0s"}"#, "spec.timeout"),
            (r#"{"timeout": 90}"#, "spec.timeout"),
            (r#"{"image": ""}"#, "spec.image"),
            (r#"{"backoffLimit": "3"}"#, "spec.backoffLimit"),
            (
                r#"{"strategy": {"plugin": "flyway", "settings": {"allowRepair": true}}}"#,
                "spec.strategy.settings.allowRepair",
            ),
            (r#"{"phase": "sideways"}"#, "spec.phase"),
        ];
        for (patch, field) in cases {
            let spec = with(patch);
            assert_eq!(field_of(&spec, flyway), field, "{patch}");
        }
        assert_eq!(field_of("[]", flyway), "spec");
        assert_eq!(field_of("{", flyway), "spec");
        assert_eq!(field_of("", flyway), "spec");
    }

    #[test]
    fn bad_object_names_are_refused() {
        let mut bad = input(GOOD);
        bad.name = "Shop";
        assert_eq!(
            Migration::parse(&bad, MigrationTool::Flyway)
                .unwrap_err()
                .field,
            "metadata.name"
        );
    }

    #[test]
    fn source_paths() {
        for good in [
            "/migrations",
            "/flyway/sql",
            "/liquibase/changelog",
            "/opt/app-sql",
            "/data/v1.2",
        ] {
            assert_eq!(check_source_path(good), Ok(()), "{good}");
        }
        for bad in [
            "/",
            "",
            "/tmp",
            "/tmp/x",
            "/usr/share/sql",
            "/a//b",
            "/a/",
            "/a b",
            "/a,b",
            "/x:y",
            "/opt/java/x",
            "/portfolio",
        ] {
            assert!(check_source_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_paths() {
        assert!(check_relative_path("db/changelog.yaml").is_ok());
        for bad in ["", "/abs", "../up", "a/../b", "a//b", "a/", "a b", "a,b"] {
            assert!(check_relative_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_names_in_urls_are_fine_but_passwords_are_not() {
        assert!(check_jdbc_url("jdbc:postgresql://db:5432/shop?user=app&sslmode=require").is_ok());
        assert!(check_jdbc_url("jdbc:oracle:thin:@//db:1521/svc").is_ok());
        assert!(check_jdbc_url("jdbc:sqlserver://db:1433;databaseName=shop;encrypt=true").is_ok());
        assert!(check_jdbc_url("jdbc:postgresql://db/shop?ApplicationPassword=x").is_ok());
        assert!(check_jdbc_url("jdbc:postgresql://db/shop?PASSWORD=x").is_err());
    }
}
