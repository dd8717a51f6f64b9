//! The container programs of the Liquibase steps: the shared wrapper, and
//! the awk program that turns Liquibase's console output into facts.
//!
//! Liquibase's machine-readable output (`--log-format=JSON`, structured
//! logging) is a Liquibase Pro feature, and the open-source `history` has
//! only text formats. So the summary is built from the console output,
//! which is stable and documented: the `UPDATE SUMMARY` block of
//! `--show-summary`, `Running Changeset: <path>::<id>::<author>` lines,
//! `status --verbose`'s count and list, `release-locks`' confirmation, and
//! the errors Liquibase prints to stderr (`Unexpected error running
//! Liquibase: …`, with `- Caused by:` lines). `update-sql` writes its SQL
//! to a file; the summary counts its statements and quotes the first lines.

use alloc::string::String;

use strategy_kit::script::wrapper;

/// `plan`: render the SQL `update` would run, then list what is pending.
const PLAN_BODY: &str = "run liquibase --output-file=\"$w/sql\" update-sql \"$@\" && run liquibase status --verbose \"$@\"";

/// `update`: apply the changelog, with the summary block Liquibase prints.
const UPDATE_BODY: &str = "run liquibase update --show-summary=summary \"$@\"";

/// `release-locks`: clear `DATABASECHANGELOGLOCK`.
const RELEASE_BODY: &str = "run liquibase release-locks";

/// The awk program (after [`strategy_kit::script::AWK_LIBRARY`]).
const AWK: &str = r#"
FILENAME == ARGV[1] || FILENAME == ARGV[2] {
  line = $0
  sub(/\r$/, "", line)
  if (line ~ /^Running Changeset: /) { ran++; last = substr(line, 20); next }
  if (line ~ /^Run: +[0-9]+/) { n = split(line, f, / +/); run = f[n]; next }
  if (line ~ /^Previously run: +[0-9]+/) { n = split(line, f, / +/); previously = f[n]; next }
  if (line ~ /^Filtered out: +[0-9]+/) { n = split(line, f, / +/); filtered = f[n]; next }
  if (line ~ /^Total change sets: +[0-9]+/) { n = split(line, f, / +/); total = f[n]; next }
  if (line ~ /^[0-9]+ changesets? (has|have) not been applied to /) { n = split(line, f, / +/); pending = f[1]; next }
  if (line ~ / is up to date$/) { pending = 0; next }
  if (FILENAME == ARGV[1] && line ~ /^     [^ ].*::.*::/) { sub(/^ +/, "", line); if (npend < 10) pend[++npend] = line; next }
  if (line ~ /Successfully released all database change ?log locks/) { released = 1; next }
  if (line ~ /Waiting for changelog lock/) { waited = 1; next }
  if (line ~ /^[ \t]*$/ || line ~ /^[ \t]+at / || line ~ /^[ \t]*\.\.\. [0-9]+ more/ || line ~ /^For more information/ || line ~ /^WARNING: / || line ~ /^Picked up JAVA_TOOL_OPTIONS/) next
  if (FILENAME == ARGV[2] || line ~ /ERROR|Exception|Could not acquire|Validation Failed|check ?sum|[Ff]ailed/) {
    if (nerr < 40) errs[++nerr] = line
  }
  next
}
FILENAME == ARGV[3] {
  if ($0 ~ /^[ \t]*(--.*)?$/ || $0 ~ /DATABASECHANGELOG/) next
  if ($0 ~ /;[ \t\r]*$/) statements++
  if (nsql < 40) sql[++nsql] = $0
  next
}
END {
  if (ran > 0) raw("ran", ran)
  if (last != "") fact("lastChangeset", last, 300)
  if (run != "") raw("run", run)
  if (previously != "") raw("previouslyRun", previously)
  if (filtered != "") raw("filteredOut", filtered)
  if (total != "") raw("totalChangesets", total)
  if (pending != "") raw("pendingCount", pending)
  if (released) raw("locksReleased", "true")
  if (waited) raw("waitedForLock", "true")
  if (nsql > 0) raw("sqlStatements", statements + 0)
  for (i = 1; i <= nerr; i++) fact("error", errs[i], 1000)
  for (i = 1; i <= npend; i++) fact("pendingChangeset", pend[i], 300)
  for (i = 1; i <= nsql; i++) fact("sql", sql[i], 300)
  flush()
}
"#;

/// The program of step `key` (one of the plugin's keys).
pub fn program(key: &str) -> String {
    let body = match key {
        crate::UPDATE_KEY => UPDATE_BODY,
        crate::RELEASE_LOCKS_KEY => RELEASE_BODY,
        _ => PLAN_BODY,
    };
    wrapper(crate::NAME, body, AWK)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use strategy_kit::summary::{Summary, Value};
    use strategy_kit::testing::run;

    #[test]
    fn the_program_has_no_single_quote() {
        assert!(!AWK.contains('\''));
    }

    /// A fake `liquibase`: for each command it is run with, the stdout,
    /// stderr and exit code of `outputs`; `update-sql` also writes SQL to
    /// its `--output-file`.
    fn fake(outputs: &[(&str, &str, &str, i32)]) -> String {
        let mut script = String::from(
            "cmd=\nfor a in \"$@\"; do case \"$a\" in update-sql|status|update|release-locks) cmd=$a ;; --output-file=*) sql=${a#--output-file=} ;; esac; done\n\
             if [ \"$cmd\" = update-sql ]; then cat >\"$sql\" <<'SQL'\n-- Changeset db/changelog.yaml::2::alice\nCREATE TABLE orders (id BIGINT NOT NULL);\n\nINSERT INTO DATABASECHANGELOG (ID) VALUES ('2');\nSQL\nfi\ncase \"$cmd\" in\n",
        );
        for (command, stdout, stderr, code) in outputs {
            script.push_str(&format!(
                "{command})\ncat <<'OUT'\n{stdout}\nOUT\ncat >&2 <<'ERR'\n{stderr}\nERR\nexit {code} ;;\n"
            ));
        }
        script.push_str("esac\n");
        script
    }

    #[test]
    fn an_update_summary_becomes_facts() {
        let stdout = include_str!("../tests/fixtures/update-success.out");
        let out = run(
            &program("update"),
            "update",
            &[],
            "liquibase",
            &fake(&[("update", stdout, "", 0)]),
        );
        assert_eq!(out.status, 0);
        let summary = Summary::parse(&out.termination_message).unwrap();
        assert_eq!(summary.first("ran"), Some(&Value::Int(2)));
        assert_eq!(
            summary.first_str("lastChangeset"),
            Some("db/changelog.yaml::3::alice")
        );
        assert_eq!(summary.first("run"), Some(&Value::Int(2)));
        assert_eq!(summary.first("previouslyRun"), Some(&Value::Int(1)));
        assert_eq!(summary.first("totalChangesets"), Some(&Value::Int(3)));
        assert!(summary.first("error").is_none());
    }

    #[test]
    fn the_plan_runs_update_sql_then_status() {
        let out = run(
            &program("plan"),
            "plan",
            &["-Dschema=app".into()],
            "liquibase",
            &fake(&[
                (
                    "update-sql",
                    include_str!("../tests/fixtures/plan-update-sql.out"),
                    "",
                    0,
                ),
                (
                    "status",
                    include_str!("../tests/fixtures/plan-status.out"),
                    "",
                    0,
                ),
            ]),
        );
        assert_eq!(out.status, 0);
        let summary = Summary::parse(&out.termination_message).unwrap();
        assert_eq!(summary.first("pendingCount"), Some(&Value::Int(2)));
        assert_eq!(
            summary.strings("pendingChangeset").collect::<Vec<_>>(),
            ["db/changelog.yaml::2::alice", "db/changelog.yaml::3::alice"]
        );
        assert_eq!(summary.first("sqlStatements"), Some(&Value::Int(1)));
        assert_eq!(
            summary.strings("sql").collect::<Vec<_>>(),
            ["CREATE TABLE orders (id BIGINT NOT NULL);"]
        );
    }

    #[test]
    fn errors_keep_their_lines_and_the_exit_code() {
        let stderr = format!(
            "Picked up JAVA_TOOL_OPTIONS: -XX:MaxRAMPercentage=70\n{}",
            include_str!("../tests/fixtures/update-lock-held.err")
        );
        let stderr = stderr.as_str();
        let out = run(
            &program("update"),
            "update",
            &[],
            "liquibase",
            &fake(&[("update", "", stderr, 1)]),
        );
        assert_eq!(out.status, 1);
        let summary = Summary::parse(&out.termination_message).unwrap();
        assert_eq!(summary.exit_code, 1);
        assert!(
            summary
                .strings("error")
                .any(|line| line.contains("Could not acquire change log lock")),
            "{}",
            out.termination_message
        );
        assert!(!out.termination_message.contains("JAVA_TOOL_OPTIONS"));
    }

    #[test]
    fn a_long_error_output_is_cut_to_fit() {
        let stderr = format!(
            "Unexpected error running Liquibase: {}\n",
            "x\"\\é".repeat(5000)
        )
        .repeat(30);
        let out = run(
            &program("update"),
            "update",
            &[],
            "liquibase",
            &fake(&[("update", "", &stderr, 1)]),
        );
        assert!(out.termination_message.len() <= 4000);
        let summary = Summary::parse(&out.termination_message).unwrap();
        assert!(!summary.truncated, "{}", out.termination_message);
        assert!(summary.first_str("error").unwrap().ends_with("..."));
    }
}
