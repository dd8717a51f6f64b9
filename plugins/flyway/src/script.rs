//! The container program of a Flyway step: the shared wrapper, and the awk
//! program that boils Flyway's JSON output down to the summary's facts.
//!
//! Flyway prints its result (`-outputType=json`) as pretty-printed JSON, one
//! member per line (`"targetSchemaVersion" : "3",`), errors included. The
//! program keeps the members `interpret` needs, at any depth, so the same
//! program reads `migrate`, `repair`, `info`, `validate` and their
//! combination (`individualResults`). The bulky parts — the list of every
//! migration, stack traces (all but their first line, which names the
//! exception), the `exception` that repeats the error's
//! message — stay in the log. Pending migrations of `info`
//! are counted, and the first few versions listed.

use alloc::string::String;

use strategy_kit::script::wrapper;

/// The awk program (after [`strategy_kit::script::AWK_LIBRARY`]).
const AWK: &str = r#"
function jcut(v, n,    s, k) {
  if (length(v) <= n) return v
  s = substr(v, 1, n)
  sub(/\\u[0-9A-Fa-f]*$/, "", s)
  k = 0
  while (substr(s, length(s) - k, 1) == "\\") k++
  if (k % 2) s = substr(s, 1, length(s) - 1)
  return s "...\""
}
FILENAME == ARGV[1] {
  line = $0
  sub(/^[ \t]+/, "", line)
  sub(/,[ \t\r]*$/, "", line)
  if (line !~ /^"[A-Za-z]+" : /) next
  key = substr(line, 2, index(substr(line, 2), "\"") - 1)
  value = substr(line, length(key) + 6)
  if (key == "version") { version = value; next }
  if (key == "state") {
    if (value == "\"Pending\"") { pending++; if (pending <= 10) pendings[pending] = version }
    next
  }
  if ((key == "success" || key == "validationSuccessful") && value == "false") failed = 1
  if (key == "error" && value == "{") failed = 1
  if (key ~ /^(operation|schemaVersion|initialSchemaVersion|targetSchemaVersion|migrationsExecuted|success|validationSuccessful|validateCount|errorCode|sqlState|sqlErrorCode|lineNumber|path|repairActions)$/) {
    keys[++nkeys] = key; values[nkeys] = value
  } else if (key == "stackTrace" && value ~ /^"/) {
    # Only the first line: the exception class tells an unknown host from a refusal.
    sub(/\\n.*/, "", value)
    if (value !~ /"$/) value = value "\""
    mkeys[++nmsgs] = "cause"; mvalues[nmsgs] = value
  } else if (key ~ /^(message|errorMessage)$/ && value ~ /^"/) {
    gsub(/---+/, "-", value)
    mkeys[++nmsgs] = key; mvalues[nmsgs] = value
  }
  next
}
FILENAME == ARGV[2] {
  if ($0 ~ /^[ \t]*$/ || $0 ~ /^[ \t]+at / || $0 ~ /^[ \t]*\.\.\. [0-9]+ more/ || $0 ~ /^WARNING: / || $0 ~ /^Picked up JAVA_TOOL_OPTIONS/) next
  errs[++nerrs] = $0
  next
}
END {
  if (failed) raw("failed", "true")
  for (i = 1; i <= nkeys; i++) raw(keys[i], values[i])
  if (pending) raw("pendingCount", pending)
  for (i = 1; i <= nmsgs; i++) raw(mkeys[i], jcut(mvalues[i], 1200))
  for (i = 1; i <= pending && i <= 10; i++) raw("pendingVersion", pendings[i])
  for (i = (nerrs > 5 ? nerrs - 4 : 1); i <= nerrs; i++) fact("stderr", errs[i], 300)
  flush()
}
"#;

/// The program every Flyway step runs: Flyway with the step's arguments.
pub fn program() -> String {
    wrapper(crate::NAME, "run \"$@\"", AWK)
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

    fn flyway() -> Vec<String> {
        vec!["flyway".to_owned(), "migrate".to_owned()]
    }

    fn fake(json: &str, exit: i32) -> String {
        format!("cat <<'JSON'\n{json}\nJSON\nexit {exit}")
    }

    #[test]
    fn a_migrate_result_becomes_facts() {
        let json = include_str!("../tests/fixtures/migrate-success.json");
        let out = run(
            &program(),
            "migrate",
            &["flyway".into(), "migrate".into()],
            "flyway",
            &fake(json, 0),
        );
        assert_eq!(out.status, 0);
        assert!(
            out.stdout.contains("\"targetSchemaVersion\""),
            "the log keeps the output"
        );
        let summary = Summary::parse(&out.termination_message).unwrap();
        assert_eq!(summary.exit_code, 0);
        assert_eq!(summary.step, "migrate");
        assert_eq!(summary.first_str("targetSchemaVersion"), Some("3"));
        assert_eq!(summary.first("migrationsExecuted"), Some(&Value::Int(2)));
        assert_eq!(summary.first("success"), Some(&Value::Bool(true)));
        assert!(!summary.truncated);
    }

    #[test]
    fn a_failed_result_turns_exit_zero_into_one() {
        let json = include_str!("../tests/fixtures/migrate-sql-error.json");
        let out = run(&program(), "migrate", &flyway(), "flyway", &fake(json, 0));
        assert_eq!(out.status, 1);
        let summary = Summary::parse(&out.termination_message).unwrap();
        assert_eq!(summary.exit_code, 1);
        assert_eq!(summary.first("failed"), Some(&Value::Bool(true)));
        assert_eq!(summary.first_str("sqlState"), Some("42601"));
        assert!(
            summary
                .first_str("message")
                .unwrap()
                .contains("syntax error")
        );
    }

    #[test]
    fn info_lists_pending_versions() {
        let json = include_str!("../tests/fixtures/plan-success.json");
        let out = run(&program(), "plan", &flyway(), "flyway", &fake(json, 0));
        let summary = Summary::parse(&out.termination_message).unwrap();
        assert_eq!(summary.first("pendingCount"), Some(&Value::Int(2)));
        let pending: Vec<&str> = summary.strings("pendingVersion").collect();
        assert_eq!(pending, ["2", "3"]);
        assert_eq!(summary.first_str("schemaVersion"), Some("1"));
    }

    #[test]
    fn a_huge_output_still_fits_and_keeps_the_key_facts() {
        let mut json = String::from("{\n  \"migrations\" : [ ");
        for version in 0..5000 {
            json.push_str(&format!(
                "{{\n    \"category\" : \"Versioned\",\n    \"version\" : \"{version}\",\n    \"description\" : \"step {version}\",\n    \"state\" : \"Pending\"\n  }}, "
            ));
        }
        json.push_str("{} ],\n");
        json.push_str(&format!("  \"message\" : \"{}\",\n", "é\\\"x".repeat(2000)));
        json.push_str("  \"schemaVersion\" : \"4999\",\n  \"operation\" : \"info\"\n}");
        let out = run(&program(), "plan", &flyway(), "flyway", &fake(&json, 0));
        assert!(
            out.termination_message.len() <= 4000,
            "{}",
            out.termination_message.len()
        );
        let summary = Summary::parse(&out.termination_message).unwrap();
        assert_eq!(summary.first_str("schemaVersion"), Some("4999"));
        assert_eq!(summary.first("pendingCount"), Some(&Value::Int(5000)));
        let message = summary.first_str("message").unwrap();
        assert!(message.ends_with("..."), "{message}");
        assert!(!summary.truncated);
    }

    #[test]
    fn stderr_and_the_exit_code_survive_when_flyway_prints_nothing() {
        let out = run(
            &program(),
            "migrate",
            &flyway(),
            "flyway",
            "echo 'Error: Could not find or load main class org.flywaydb.commandline.Main' >&2\necho '\tat x.y(Z.java:1)' >&2\nexit 3",
        );
        assert_eq!(out.status, 3);
        let summary = Summary::parse(&out.termination_message).unwrap();
        assert_eq!(summary.exit_code, 3);
        let stderr: Vec<&str> = summary.strings("stderr").collect();
        assert_eq!(
            stderr,
            ["Error: Could not find or load main class org.flywaydb.commandline.Main"]
        );
    }

    #[test]
    fn a_missing_tool_is_exit_code_127() {
        let script = wrapper("flyway", "run no-such-tool-anywhere", AWK);
        let out = run(&script, "migrate", &[], "flyway", "exit 0");
        assert_eq!(out.status, 127);
        assert_eq!(
            Summary::parse(&out.termination_message).unwrap().exit_code,
            127
        );
    }

    #[test]
    fn sigterm_reaches_the_tool_and_the_summary_is_still_written() {
        use std::time::{Duration, Instant};
        // The fake tool sleeps; the wrapper is sent SIGTERM as the kubelet would.
        let dir = std::env::temp_dir().join(format!("flyway-term-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let tool = dir.join("bin/flyway");
        std::fs::write(
            &tool,
            "#!/bin/sh\nsleep 30 &\ntrap 'kill $!; echo stopping >&2; exit 143' TERM\nwait\n",
        )
        .unwrap();
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let log = dir.join("termination-log");
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(program())
            .arg("migrate")
            .arg("flyway")
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    dir.join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("PORTFOLIO_WORK", dir.join("work"))
            .env("PORTFOLIO_TERMINATION_LOG", &log)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let status = child.wait().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the wrapper waited for the sleep"
        );
        assert_eq!(status.code(), Some(143));
        let message = std::fs::read_to_string(&log).unwrap();
        let summary = Summary::parse(&message).unwrap();
        assert_eq!(summary.exit_code, 143);
        assert_eq!(summary.strings("stderr").collect::<Vec<_>>(), ["stopping"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
