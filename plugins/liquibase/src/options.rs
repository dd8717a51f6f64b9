//! `spec.liquibase` checked and turned into Liquibase's environment and arguments.
//!
//! Liquibase reads every command argument from `LIQUIBASE_COMMAND_<ARG>`
//! environment variables, which apply to whichever command accepts them; so
//! the changelog, filters and connection travel in the environment (the
//! credentials from the Secret), and only changelog parameters, which have no
//! environment form, travel as `-D<name>=<value>` arguments.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use portfolio_api::LiquibaseOptions;
use strategy_kit::Invalid;
use strategy_kit::spec::{Migration, check_parameter_name, check_relative_path, check_text};

/// At most this many contexts or parameters.
const MAX_ITEMS: usize = 64;

/// What every Liquibase step takes from the spec, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options<'a> {
    /// `--changelog-file`, relative to the search path (the source path).
    pub changelog_file: &'a str,
    /// `--context-filter`, when contexts are set.
    pub context_filter: Option<String>,
    /// `--label-filter`, when labels are set.
    pub label_filter: Option<&'a str>,
    /// `-D<name>=<value>` for each changelog parameter.
    pub parameter_args: Vec<String>,
}

/// Check `spec.liquibase` (required for this tool).
pub fn options(migration: &Migration) -> Result<Options<'_>, Invalid> {
    let Some(options) = migration.spec.liquibase.as_ref() else {
        return Err(Invalid::new(
            "spec.liquibase",
            "is required with tool liquibase: set spec.liquibase.changelogFile",
        ));
    };
    let LiquibaseOptions {
        changelog_file,
        contexts,
        labels,
        parameters,
    } = options;
    check_relative_path(changelog_file)
        .map_err(|message| Invalid::new("spec.liquibase.changelogFile", message))?;
    if contexts.len() > MAX_ITEMS {
        return Err(Invalid::new(
            "spec.liquibase.contexts",
            format!("at most {MAX_ITEMS} contexts"),
        ));
    }
    for (index, context) in contexts.iter().enumerate() {
        // Each entry may be an expression ("prod and !eu"); entries are ORed with commas.
        if !is_expression(context, 256, false) {
            return Err(Invalid::new(
                format!("spec.liquibase.contexts[{index}]"),
                format!(
                    "{context:?} is not a context expression (letters, digits, _ . - ! ( ) and spaces; no commas)"
                ),
            ));
        }
    }
    if let Some(labels) = labels
        && !is_expression(labels, 1024, true)
    {
        return Err(Invalid::new(
            "spec.liquibase.labels",
            format!(
                "{labels:?} is not a label expression (letters, digits, _ . - ! ( ) , and spaces)"
            ),
        ));
    }
    if parameters.len() > MAX_ITEMS {
        return Err(Invalid::new(
            "spec.liquibase.parameters",
            format!("at most {MAX_ITEMS} parameters"),
        ));
    }
    let mut parameter_args = Vec::with_capacity(parameters.len());
    for (name, value) in parameters {
        let field = format!("spec.liquibase.parameters.{name}");
        check_parameter_name(&field, name)?;
        check_text(&field, value, 4096)?;
        parameter_args.push(format!("-D{name}={value}"));
    }
    Ok(Options {
        changelog_file,
        context_filter: (!contexts.is_empty()).then(|| contexts.join(",")),
        label_filter: labels.as_deref(),
        parameter_args,
    })
}

fn is_expression(text: &str, max: usize, commas: bool) -> bool {
    !text.trim().is_empty()
        && text.len() <= max
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'.' | b'-' | b'!' | b'(' | b')' | b' ')
                || (commas && b == b',')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strategy_kit::Input;

    /// Run `check` on the options of a spec with `liquibase` spliced in.
    fn with_options(liquibase: &str, check: impl FnOnce(Result<Options<'_>, Invalid>)) {
        let spec = format!(
            r#"{{"tool": "liquibase", "database": {{"url": "jdbc:postgresql://db/shop", "credentialsSecretRef": {{"name": "db"}}}}, "source": {{"configMapRef": {{"name": "sql"}}}}{liquibase}}}"#
        );
        let input = Input {
            name: "shop",
            uid: "",
            annotations: &[],
            spec: &spec,
            settings: "",
        };
        match Migration::parse(&input, portfolio_api::MigrationTool::Liquibase) {
            Ok(migration) => check(options(&migration)),
            Err(invalid) => check(Err(invalid)),
        }
    }

    #[test]
    fn options_become_filters_and_parameters() {
        with_options(
            r#", "liquibase": {"changelogFile": "db/changelog.yaml", "contexts": ["prod", "eu and !test"], "labels": "v2, (core or api)", "parameters": {"schema": "app", "x.y": "a=b c"}}"#,
            |options| {
                let options = options.unwrap();
                assert_eq!(options.changelog_file, "db/changelog.yaml");
                assert_eq!(options.context_filter.as_deref(), Some("prod,eu and !test"));
                assert_eq!(options.label_filter, Some("v2, (core or api)"));
                assert_eq!(options.parameter_args, ["-Dschema=app", "-Dx.y=a=b c"]);
            },
        );
    }

    #[test]
    fn bad_options_name_their_field() {
        let cases = [
            ("", "spec.liquibase"),
            (r#", "liquibase": {}"#, "spec.liquibase"),
            (
                r#", "liquibase": {"changelogFile": "../etc/passwd"}"#,
                "spec.liquibase.changelogFile",
            ),
            (
                r#", "liquibase": {"changelogFile": "/abs.yaml"}"#,
                "spec.liquibase.changelogFile",
            ),
            (
                r#", "liquibase": {"changelogFile": "c.yaml", "contexts": ["a", "b,c"]}"#,
                "spec.liquibase.contexts[1]",
            ),
            (
                r#", "liquibase": {"changelogFile": "c.yaml", "contexts": [" "]}"#,
                "spec.liquibase.contexts[0]",
            ),
            (
                r#", "liquibase": {"changelogFile": "c.yaml", "labels": "a; rm -rf /"}"#,
                "spec.liquibase.labels",
            ),
            (
                r#", "liquibase": {"changelogFile": "c.yaml", "parameters": {"a=b": "x"}}"#,
                "spec.liquibase.parameters.a=b",
            ),
            (
                r#", "liquibase": {"changelogFile": "c.yaml", "parameters": {"a": "\u0000"}}"#,
                "spec.liquibase.parameters.a",
            ),
            (
                r#", "liquibase": {"changelogFile": "c.yaml", "contexts": "prod"}"#,
                "spec.liquibase.contexts",
            ),
            (
                r#", "flyway": {}, "liquibase": {"changelogFile": "c.yaml"}"#,
                "spec.flyway",
            ),
        ];
        for (liquibase, field) in cases {
            with_options(liquibase, |options| {
                assert_eq!(options.unwrap_err().field, field, "{liquibase}");
            });
        }
    }
}
