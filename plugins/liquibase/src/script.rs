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
///
/// Liquibase writes its progress and banners to stderr beside its errors
/// ("Starting Liquibase at …", "Liquibase command 'update' was executed
/// successfully."), and each error several times over (a `SEVERE` log line,
/// `ERROR: Exception …` details, the exception and every cause, then the
/// `Unexpected error running Liquibase:` block). Recording every stderr line
/// filled the 4 KB message with that noise and could push the real error out.
/// So: lines known to be informational are dropped; the `Unexpected error`
/// block (its first line and the indented lines under it: `Reason:`,
/// `Position:`, `- Caused by:`) comes first, since it is what a person acts
/// on; then the other error lines, each text once (a cause chain repeats one
/// message behind different exception class names); and only when the tool
/// failed (`rc`, set by the wrapper), lines nobody recognised, in case they
/// say why.
const AWK: &str = r#"
function errkey(s,    k) {
  k = s
  sub(/^[ \t]+/, "", k)
  sub(/^\[[^]]*\] [A-Z]+ \[[^]]*\] /, "", k)
  sub(/^Unexpected error running Liquibase: */, "", k)
  sub(/^ERROR: Exception Primary Reason: */, "", k)
  sub(/^Caused by: /, "", k)
  while (k ~ /^[A-Za-z0-9_$]+(\.[A-Za-z0-9_$]+)+: /) sub(/^[A-Za-z0-9_$]+(\.[A-Za-z0-9_$]+)+: /, "", k)
  gsub(/[ \t]+/, " ", k)
  return k
}
function keep(list, line) {
  if (list == "block") { if (nblock < 100) block[++nblock] = line }
  else if (list == "err") { if (nerr < 200) errs[++nerr] = line }
  else if (nother < 40) other[++nother] = line
}
function emit(line,    k) {
  k = errkey(line)
  if (k == "" || (k in seen)) return
  seen[k] = 1
  fact("error", line, 1000)
}
FILENAME == ARGV[1] || FILENAME == ARGV[2] {
  line = $0
  sub(/\r$/, "", line)
  if (FNR == 1) { inblock = 0; after = 0 }
  if (line ~ /^Unexpected error running Liquibase:/) { keep("block", line); inblock = 1; next }
  if (inblock && line ~ /^[ \t]+[^ \t]/ && line !~ /^[ \t]+at /) { keep("block", line); next }
  inblock = 0
  if (line ~ /^Running Changeset: /) { ran++; last = substr(line, 20); after = 0; next }
  if (line ~ /^Run: +[0-9]+/) { n = split(line, f, / +/); run = f[n]; next }
  if (line ~ /^Previously run: +[0-9]+/) { n = split(line, f, / +/); previously = f[n]; next }
  if (line ~ /^Filtered out: +[0-9]+/) { n = split(line, f, / +/); filtered = f[n]; next }
  if (line ~ /^Total change sets: +[0-9]+/) { n = split(line, f, / +/); total = f[n]; next }
  if (line ~ /^[0-9]+ changesets? (has|have) not been applied to /) { n = split(line, f, / +/); pending = f[1]; next }
  if (line ~ / is up to date$/) { pending = 0; next }
  if (FILENAME == ARGV[1] && line ~ /^     [^ ].*::.*::/) { sub(/^ +/, "", line); if (npend < 10) pend[++npend] = line; next }
  if (line ~ /Successfully released all database change ?log locks/) { released = 1; next }
  if (line ~ /Waiting for changelog lock/) { waited = 1; next }
  # Stack frames, and what Liquibase and the JVM print on every run.
  if (line ~ /^[ \t]*$/ || line ~ /^[ \t]+at / || line ~ /^[ \t]*\.\.\. [0-9]+ more/ || line ~ /^[ \t]*#/ || line ~ /^For more information/ || line ~ /^WARNING:/ || line ~ /^Picked up (JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|JDK_JAVA_OPTIONS)/ || line ~ /^Starting Liquibase at / || line ~ /^Liquibase (Version|Home|Library|Community|Open Source|Pro|Secure)/ || line ~ /^Liquibase command .* was executed successfully/ || line ~ /^Liquibase: Update has been successful/ || line ~ /^Database is up to date, no changesets to execute/ || line ~ /^Output saved to / || line ~ /^Liquibase detected the following invalid/ || line ~ /^- LIQUIBASE_[A-Z0-9_]+$/ || line ~ /^Find the list of valid environment variables/ || line ~ /^\[[^]]*\] (INFO|WARNING|CONFIG|FINE|FINER|FINEST) \[/ || line ~ /^(UPDATE SUMMARY|FILTERED CHANGE SETS SUMMARY)$/ || line ~ /^-+$/ || line ~ /^[A-Za-z ]+ mismatch: +[0-9]+$/) { after = 0; next }
  # An error line, or an indented line right under one (Position:, Reason:).
  if (line ~ /ERROR|Exception|SEVERE|Caused by|Could not acquire|Currently locked by|Validation Failed|check ?sum|[Ff]ailed|[Rr]efused|[Dd]enied/ || (after && line ~ /^[ \t]/)) {
    keep("err", line); after = 1; next
  }
  after = 0
  if (FILENAME == ARGV[2]) keep("other", line)
  next
}
FILENAME == ARGV[3] {
  # The bookkeeping of Liquibase (lock and changelog tables, search path) is not the change.
  if ($0 ~ /^[ \t]*(--.*)?$/ || tolower($0) ~ /databasechangelog/ || $0 ~ /^SET SEARCH_PATH /) next
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
  for (i = 1; i <= nblock; i++) emit(block[i])
  for (i = 1; i <= nerr; i++) emit(errs[i])
  if (rc != 0) for (i = 1; i <= nother; i++) emit(other[i])
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

    /// What Liquibase 4.28 writes to stderr on every run, error or not.
    const NOISE: &str = "Picked up JAVA_TOOL_OPTIONS: -XX:MaxRAMPercentage=70
Starting Liquibase at 23:36:01 (version 4.28.0 #2272 built at 2024-05-16 19:00+0000)
Liquibase Version: 4.28.0
Liquibase Open Source 4.28.0 by Liquibase
WARNING: 

Liquibase detected the following invalid LIQUIBASE_* environment variables:

- LIQUIBASE_ANALYTICS_ENABLED

Find the list of valid environment variables at https://docs.liquibase.com/environment-variables
";

    #[test]
    fn informational_lines_are_not_errors() {
        let stderr = format!(
            "{NOISE}Running Changeset: changelog.yaml::1::alice\n[2026-12-06 23:36:01] INFO [liquibase.changelog] Table created\nLiquibase: Update has been successful. Rows affected: 3\nDatabase is up to date, no changesets to execute\nOutput saved to /tmp/portfolio/sql\nLiquibase command 'update' was executed successfully.\n##  Get documentation at docs.liquibase.com  ##\nsomething new Liquibase says\n"
        );
        let out = run(
            &program("update"),
            "update",
            &[],
            "liquibase",
            &fake(&[("update", "", &stderr, 0)]),
        );
        assert_eq!(out.status, 0);
        let summary = Summary::parse(&out.termination_message).unwrap();
        assert_eq!(summary.first("ran"), Some(&Value::Int(1)));
        assert!(
            summary.first("error").is_none(),
            "{}",
            out.termination_message
        );
    }

    #[test]
    fn the_unexpected_error_block_comes_first_and_each_error_once() {
        let stderr = format!(
            "{NOISE}Running Changeset: changelog.yaml::6::carol
[2026-12-06 23:36:27] SEVERE [liquibase.changelog] ChangeSet changelog.yaml::6::carol encountered an exception.
liquibase.exception.DatabaseException: ERROR: syntax error at or near \"TABL\"
  Position: 8 [Failed SQL: (0) CREATE TABL shop.broken (id BIGINT)]
\tat liquibase.executor.jvm.JdbcExecutor.execute(JdbcExecutor.java:83)
Caused by: org.postgresql.util.PSQLException: ERROR: syntax error at or near \"TABL\"
  Position: 8
\t... 52 more

ERROR: Exception Details
ERROR: Exception Primary Reason:  ERROR: syntax error at or near \"TABL\"
  Position: 8
[2026-12-06 23:36:27] SEVERE [liquibase.integration] Migration failed for changeset changelog.yaml::6::carol:
     Reason: liquibase.exception.DatabaseException: ERROR: syntax error at or near \"TABL\"
  Position: 8 [Failed SQL: (0) CREATE TABL shop.broken (id BIGINT)]
liquibase.exception.CommandExecutionException: liquibase.exception.LiquibaseException: liquibase.exception.MigrationFailedException: Migration failed for changeset changelog.yaml::6::carol:
     Reason: liquibase.exception.DatabaseException: ERROR: syntax error at or near \"TABL\"
\tat liquibase.command.CommandScope.execute(CommandScope.java:257)


Unexpected error running Liquibase: Migration failed for changeset changelog.yaml::6::carol:
     Reason: liquibase.exception.DatabaseException: ERROR: syntax error at or near \"TABL\"
  Position: 8 [Failed SQL: (0) CREATE TABL shop.broken (id BIGINT)]

liquibase.exception.CommandExecutionException: liquibase.exception.LiquibaseException: liquibase.exception.MigrationFailedException: Migration failed for changeset changelog.yaml::6::carol:
"
        );
        let out = run(
            &program("update"),
            "update",
            &[],
            "liquibase",
            &fake(&[("update", "", &stderr, 1)]),
        );
        assert_eq!(out.status, 1);
        let summary = Summary::parse(&out.termination_message).unwrap();
        let errors: Vec<&str> = summary.strings("error").collect();
        assert_eq!(
            errors,
            [
                "Unexpected error running Liquibase: Migration failed for changeset changelog.yaml::6::carol:",
                "     Reason: liquibase.exception.DatabaseException: ERROR: syntax error at or near \"TABL\"",
                "  Position: 8 [Failed SQL: (0) CREATE TABL shop.broken (id BIGINT)]",
                "[2026-12-06 23:36:27] SEVERE [liquibase.changelog] ChangeSet changelog.yaml::6::carol encountered an exception.",
                "liquibase.exception.DatabaseException: ERROR: syntax error at or near \"TABL\"",
                "  Position: 8",
                "ERROR: Exception Details",
            ]
        );
    }

    #[test]
    fn unrecognised_lines_are_kept_only_when_the_tool_failed() {
        for (code, kept) in [(0, false), (1, true)] {
            let stderr = format!("{NOISE}the disk is full, says something\n");
            let out = run(
                &program("update"),
                "update",
                &[],
                "liquibase",
                &fake(&[("update", "", &stderr, code)]),
            );
            let summary = Summary::parse(&out.termination_message).unwrap();
            assert_eq!(
                summary.first_str("error") == Some("the disk is full, says something"),
                kept,
                "exit {code}: {}",
                out.termination_message
            );
            assert_eq!(summary.strings("error").count(), usize::from(kept));
        }
    }

    #[test]
    fn liquibase_bookkeeping_is_not_counted_as_sql() {
        let stdout = "";
        let sql = "SET SEARCH_PATH TO public, \"$user\",\"public\";\n-- Create Database Lock Table\nCREATE TABLE public.databasechangeloglock (ID INTEGER NOT NULL);\nINSERT INTO public.databasechangelog (ID) VALUES ('1');\n-- Changeset changelog.yaml::1::alice\nCREATE SCHEMA IF NOT EXISTS shop;\n";
        let fake = format!(
            "for a in \"$@\"; do case \"$a\" in --output-file=*) f=${{a#--output-file=}} ;; esac; done\nif [ -n \"${{f:-}}\" ]; then cat >\"$f\" <<'SQL'\n{sql}SQL\nfi\necho '{stdout}'\n"
        );
        let out = run(&program("plan"), "plan", &[], "liquibase", &fake);
        let summary = Summary::parse(&out.termination_message).unwrap();
        assert_eq!(summary.first("sqlStatements"), Some(&Value::Int(1)));
        assert_eq!(
            summary.strings("sql").collect::<Vec<_>>(),
            ["CREATE SCHEMA IF NOT EXISTS shop;"]
        );
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
