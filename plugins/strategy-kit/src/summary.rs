//! The termination message the Job's wrapper writes: a summary in JSON Lines.
//!
//! ```text
//! {"format":"portfolio.dev/migration-summary/v1","tool":"flyway","step":"migrate","exitCode":0}
//! {"operation" : "migrate"}
//! {"targetSchemaVersion" : "3"}
//! {"success" : true}
//! ```
//!
//! The first line (the header) is the wrapper's; every other line is one
//! fact, an object with a single member, mostly copied from the tool's own
//! output. One fact per line keeps the summary useful when Kubernetes cuts
//! it at 4096 bytes: whole lines before the cut still parse, and a string
//! cut in half is read up to the cut. Lines that are not facts (log text
//! that replaced the summary, say) are ignored.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

/// `format` of the header line.
pub const FORMAT: &str = "portfolio.dev/migration-summary/v1";

/// How many bytes of summary the wrapper writes: Kubernetes keeps 4096.
pub const MAX_BYTES: usize = 4000;

/// A parsed summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary<'a> {
    /// The tool named in the header.
    pub tool: String,
    /// The step named in the header.
    pub step: String,
    /// The wrapper's exit status (the tool's, or 1 when the tool's output said it failed).
    pub exit_code: i32,
    /// The facts, in order.
    pub facts: Vec<Fact<'a>>,
    /// Whether some line could not be read whole (the message was cut).
    pub truncated: bool,
}

/// One fact: a member name and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Fact<'a> {
    /// The member's name.
    pub key: &'a str,
    /// What the summary says of the member.
    pub value: Value,
}

/// A fact's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string (possibly the readable part of a cut one).
    Str(String),
    /// An array of strings.
    List(Vec<String>),
    /// Anything else (objects, floats), left as text.
    Other(String),
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(value) => Some(*value),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(value) => Some(*value),
            _ => None,
        }
    }
}

impl<'a> Summary<'a> {
    /// Read the summary in a termination message; `None` when `message` has
    /// no header (it is log text, or garbage).
    pub fn parse(message: &'a str) -> Option<Summary<'a>> {
        let mut lines = message.lines();
        let (tool, step, exit_code) = lines.find_map(|line| header(line.trim()))?;
        let mut summary = Summary {
            tool: tool.to_owned(),
            step: step.to_owned(),
            exit_code,
            facts: Vec::new(),
            truncated: false,
        };
        for line in lines {
            match fact(line.trim()) {
                Some((fact, whole)) => {
                    summary.truncated |= !whole;
                    summary.facts.push(fact);
                }
                None if !line.trim().is_empty() => summary.truncated = true,
                None => {}
            }
        }
        Some(summary)
    }

    /// Every value of `key`, in order.
    pub fn all<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s Value> + 's {
        self.facts
            .iter()
            .filter(move |fact| fact.key == key)
            .map(|fact| &fact.value)
    }

    /// The first value of `key`.
    pub fn first(&self, key: &str) -> Option<&Value> {
        self.facts
            .iter()
            .find(|fact| fact.key == key)
            .map(|fact| &fact.value)
    }

    /// The last value of `key`.
    pub fn last(&self, key: &str) -> Option<&Value> {
        self.facts
            .iter()
            .rev()
            .find(|fact| fact.key == key)
            .map(|fact| &fact.value)
    }

    /// The first string value of `key`.
    pub fn first_str(&self, key: &str) -> Option<&str> {
        self.facts
            .iter()
            .filter(|fact| fact.key == key)
            .find_map(|fact| fact.value.as_str())
    }

    /// Every string value of `key`.
    pub fn strings<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.all(key).filter_map(Value::as_str)
    }
}

/// Tool, step and exit code of a header line, exactly as the wrapper writes it:
/// `{"format":"…","tool":"…","step":"…","exitCode":N}`.
fn header(line: &str) -> Option<(&str, &str, i32)> {
    let rest = line
        .strip_prefix("{\"format\":\"")?
        .strip_prefix(FORMAT)?
        .strip_prefix("\",\"tool\":\"")?;
    let (tool, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(",\"step\":\"")?;
    let (step, rest) = rest.split_once('"')?;
    let code = rest.strip_prefix(",\"exitCode\":")?.strip_suffix('}')?;
    Some((tool, step, code.parse().ok()?))
}

/// A fact from one line, and whether the line was whole.
fn fact(line: &str) -> Option<(Fact<'_>, bool)> {
    let inner = line.strip_prefix("{\"")?;
    let key_end = inner.find('"')?;
    let key = &inner[..key_end];
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let rest = inner[key_end + 1..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let (value_text, whole) = match rest.strip_suffix('}') {
        Some(value) => (value.trim_end(), true),
        None => (rest, false),
    };
    let value = if whole {
        value(value_text)?
    } else if value_text.starts_with('"') {
        Value::Str(lenient_string(value_text))
    } else {
        return None;
    };
    Some((Fact { key, value }, whole))
}

fn value(text: &str) -> Option<Value> {
    Some(match text.as_bytes().first()? {
        b'"' => Value::Str(lenient_string(text)),
        b'[' => Value::List(string_list(text)?),
        b'n' if text == "null" => Value::Null,
        b't' if text == "true" => Value::Bool(true),
        b'f' if text == "false" => Value::Bool(false),
        b'-' | b'0'..=b'9' => match text.parse() {
            Ok(number) => Value::Int(number),
            Err(_) => Value::Other(text.to_owned()),
        },
        _ => Value::Other(text.to_owned()),
    })
}

/// A JSON array of strings (`[ "a", "b" ]`); `None` when it is anything else.
fn string_list(text: &str) -> Option<Vec<String>> {
    let mut rest = text.strip_prefix('[')?.trim_start();
    let mut items = Vec::new();
    if let Some(after) = rest.strip_prefix(']') {
        return after.trim().is_empty().then_some(items);
    }
    loop {
        let (item, after) = read_string(rest.strip_prefix('"')?);
        items.push(item);
        rest = after?.trim_start();
        if let Some(after) = rest.strip_prefix(']') {
            return after.trim().is_empty().then_some(items);
        }
        rest = rest.strip_prefix(',')?.trim_start();
    }
}

/// The readable part of a JSON string literal that may be cut or malformed:
/// escapes are decoded where whole, and reading stops at the closing quote
/// or the end of the text.
fn lenient_string(text: &str) -> String {
    read_string(text.strip_prefix('"').unwrap_or(text)).0
}

/// The string whose contents start `text` (after its opening quote), and
/// what follows its closing quote (`None` when there is none).
pub(crate) fn read_string(text: &str) -> (String, Option<&str>) {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return (out, Some(&text[at + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 'u')) => {
                    let hex: String = chars.by_ref().take(4).map(|(_, c)| c).collect();
                    match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        Some(decoded) if hex.len() == 4 => out.push(decoded),
                        // Cut, or half a surrogate pair: keep what came before.
                        _ => break,
                    }
                }
                Some((_, other)) => out.push(other),
                None => break,
            },
            other => out.push(other),
        }
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"format":"portfolio.dev/migration-summary/v1","tool":"flyway","step":"migrate","exitCode":1}"#;

    #[test]
    fn reads_the_header_and_every_kind_of_fact() {
        let text = format!(
            "{HEADER}\n{{\"success\" : false}}\n{{\"migrationsExecuted\" : 2}}\n{{\"schemaVersion\" : null}}\n{{\"message\" : \"a \\\"b\\\"\\nc\"}}\n{{\"repairActions\" : [ \"x\", \"y\" ]}}\n{{\"odd\":1.5}}\n"
        );
        let summary = Summary::parse(&text).unwrap();
        assert_eq!(summary.tool, "flyway");
        assert_eq!(summary.step, "migrate");
        assert_eq!(summary.exit_code, 1);
        assert!(!summary.truncated);
        assert_eq!(summary.first("success"), Some(&Value::Bool(false)));
        assert_eq!(
            summary.first("migrationsExecuted").and_then(Value::as_int),
            Some(2)
        );
        assert_eq!(summary.first("schemaVersion"), Some(&Value::Null));
        assert_eq!(summary.first_str("message"), Some("a \"b\"\nc"));
        assert_eq!(
            summary.first("repairActions"),
            Some(&Value::List(vec!["x".into(), "y".into()]))
        );
        assert_eq!(summary.first("odd"), Some(&Value::Other("1.5".into())));
        assert_eq!(string_list("[ ]"), Some(vec![]));
        assert_eq!(
            string_list(r#"["a\"]", "b,"]"#),
            Some(vec!["a\"]".into(), "b,".into()])
        );
        assert_eq!(string_list(r#"["a", 1]"#), None);
        assert_eq!(string_list(r#"["a""#), None);
    }

    #[test]
    fn a_cut_string_is_read_up_to_the_cut() {
        for (cut, expected) in [
            (
                "{\"message\" : \"Migration V2__x.sql failed",
                "Migration V2__x.sql failed",
            ),
            ("{\"message\" : \"line\\", "line"),
            ("{\"message\" : \"caf\\u00e", "caf"),
            ("{\"message\" : \"caf\\u00e9 au lait", "café au lait"),
        ] {
            let text = format!("{HEADER}\n{{\"success\" : false}}\n{cut}");
            let summary = Summary::parse(&text).unwrap();
            assert!(summary.truncated);
            assert_eq!(summary.first_str("message"), Some(expected), "{cut}");
            assert_eq!(summary.first("success"), Some(&Value::Bool(false)));
        }
    }

    #[test]
    fn a_cut_non_string_is_dropped() {
        let text = format!("{HEADER}\n{{\"migrationsExecuted\" : 1");
        let summary = Summary::parse(&text).unwrap();
        assert!(summary.truncated);
        assert!(summary.facts.is_empty());
    }

    #[test]
    fn no_header_means_no_summary() {
        assert_eq!(Summary::parse(""), None);
        assert_eq!(Summary::parse("ERROR: Unable to obtain connection\n"), None);
        assert_eq!(Summary::parse("{\"success\" : true}"), None);
        assert_eq!(
            Summary::parse(r#"{"format":"other/v9","tool":"x","step":"y","exitCode":0}"#),
            None
        );
        assert_eq!(Summary::parse("\u{0}\u{7f}{{{{\"\"\"::"), None);
    }

    #[test]
    fn log_lines_between_facts_are_ignored_but_noted() {
        let text =
            format!("noise before\n{HEADER}\nnot a fact\n{{\"success\" : true}}\n{{\"\" : 1}}\n");
        let summary = Summary::parse(&text).unwrap();
        assert_eq!(summary.first("success"), Some(&Value::Bool(true)));
        assert_eq!(summary.facts.len(), 1);
        assert!(summary.truncated);
    }
}
