//! The shell wrapper every step's container runs (`/bin/sh -c`).
//!
//! It runs the tool with its output kept in files, forwards SIGTERM to it
//! (as PID 1 the shell would otherwise ignore the signal and the tool would
//! only die by SIGKILL at the end of the grace period), copies the output
//! to the container's log, and leaves a summary (see [`crate::summary`]) in
//! the termination message, built by an awk program from the tool's output.
//!
//! The tool's output reaches the container's log when the tool exits, not
//! as it runs: streaming it through `tee` would hide the tool's exit status
//! and process from the wrapper in a POSIX shell. (Flyway's JSON mode prints
//! nothing before the end anyway.)
//!
//! Requirements on the tool's image: `/bin/sh`, `awk`, `cat`, `head`,
//! `mkdir` and `kill` (POSIX; the official Flyway and Liquibase images are
//! Ubuntu-based and have them). User input never appears in the program
//! text: it reaches the tool as arguments (`"$@"`) and environment only.
//!
//! `PORTFOLIO_WORK` and `PORTFOLIO_TERMINATION_LOG` move the scratch
//! directory and the termination message, for tests; the Jobs never set them.

use alloc::format;
use alloc::string::String;

use crate::summary::{FORMAT, MAX_BYTES};

/// awk functions both tools' summary programs use.
///
/// `fact(key, text)` records a string fact (escaped here; awk's `gsub`
/// treats backslashes in replacements differently from one awk to the
/// next, so escaping walks the characters), `raw(key, json)` a fact whose
/// value is already JSON, within a byte budget that keeps the message
/// under Kubernetes' 4096 bytes.
pub const AWK_LIBRARY: &str = r#"
function esc(s,    out, i, c) {
  out = ""
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    if (c == "\\") out = out "\\\\"
    else if (c == "\"") out = out "\\\""
    else if (c == "\t") out = out "\\t"
    else if (c == "\r" || c == "\033" || c == "\b" || c == "\f") continue
    else out = out c
  }
  return out
}
function cut(s, n) {
  if (length(s) <= n) return s
  return substr(s, 1, n) "..."
}
function raw(key, json,    line) {
  line = "{\"" key "\":" json "}"
  if (length(line) + 1 > budget) return 0
  budget -= length(line) + 1
  facts[++nfacts] = line
  return 1
}
function fact(key, text, n) {
  return raw(key, "\"" esc(cut(text, n)) "\"")
}
function flush(    i) {
  for (i = 1; i <= nfacts; i++) print facts[i]
}
"#;

/// The wrapper for `tool`: `body` runs the tool with `run …` (the program's
/// arguments are `"$@"`), then `awk` turns the files `out` (stdout), `err`
/// (stderr) and `sql` (whatever the tool was asked to write there) into
/// facts, and a fact `{"failed":true}` turns a zero exit status into 1.
/// The program sees the tool's exit status as `rc`, so that it can keep
/// output it does not recognise only when the tool failed.
pub fn wrapper(tool: &str, body: &str, awk: &str) -> String {
    let budget = MAX_BYTES - 200;
    format!(
        r#"set -u
w=${{PORTFOLIO_WORK:-/tmp/portfolio}}
log=${{PORTFOLIO_TERMINATION_LOG:-/dev/termination-log}}
mkdir -p "$w" && : >"$w/out" && : >"$w/err" && : >"$w/sql" || exit 70
p=
trap 'if [ -n "$p" ]; then kill -TERM "$p" 2>/dev/null; fi' TERM INT
run() {{
  "$@" >>"$w/out" 2>>"$w/err" &
  p=$!
  wait "$p"
  rc=$?
  while kill -0 "$p" 2>/dev/null; do wait "$p"; rc=$?; done
  p=
  return "$rc"
}}
rc=0
{body}
cat "$w/out"
cat "$w/err" >&2
facts=$(awk -v rc="$rc" 'BEGIN {{ budget = {budget} }}
{AWK_LIBRARY}
{awk}' "$w/out" "$w/err" "$w/sql" 2>/dev/null)
case "$facts" in *'{{"failed":true}}'*) if [ "$rc" -eq 0 ]; then rc=1; fi ;; esac
{{
  printf '{{"format":"{FORMAT}","tool":"{tool}","step":"%s","exitCode":%d}}\n' "$0" "$rc"
  printf '%s\n' "$facts"
}} | head -c {MAX_BYTES} >"$log"
exit "$rc"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_awk_programs_fit_in_single_quotes() {
        assert!(!AWK_LIBRARY.contains('\''));
    }

    #[test]
    fn the_wrapper_names_the_tool_and_embeds_body_and_program() {
        let script = wrapper("flyway", "run \"$@\"", "END { flush() }");
        assert!(script.contains("run \"$@\"\n"));
        assert!(script.contains("END { flush() }'"));
        assert!(script.contains(r#""tool":"flyway""#));
        assert!(script.contains(FORMAT));
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn the_program_sees_the_tools_exit_status() {
        let dir = std::env::temp_dir().join(format!("strategy-kit-rc-{}", std::process::id()));
        for (body, expected) in [("run true", "{\"rc\":0}"), ("run false", "{\"rc\":1}")] {
            let script = wrapper("tool", body, "END { raw(\"rc\", rc); flush() }");
            let status = std::process::Command::new("/bin/sh")
                .args(["-c", &script, "step"])
                .env("PORTFOLIO_WORK", dir.join("work"))
                .env("PORTFOLIO_TERMINATION_LOG", dir.join("log"))
                .output()
                .expect("/bin/sh runs");
            let log = std::fs::read_to_string(dir.join("log")).expect("a termination message");
            assert!(log.lines().any(|line| line == expected), "{body}: {log}");
            assert_eq!(status.status.success(), body == "run true");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
