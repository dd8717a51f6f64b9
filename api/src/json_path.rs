//! Which field of a JSON document a parse error points at.
//!
//! serde_json reports a line and column; people need `spec.ports[1].name`.
//! Tracking the path while deserialising (serde_path_to_error) doubles the
//! deserialisation code of every type, which matters in a plugin that must
//! stay small; scanning the text up to the error's position finds the same
//! path after the fact, and only when there is an error.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// The path (`ports[1].name`, empty for the document itself) of the value
/// that the position `line`/`column` (1-based, as serde_json reports them)
/// of `text` falls in.
pub fn path_at(text: &str, line: usize, column: usize) -> String {
    let offset = offset_of(text, line, column);
    let mut stack: Vec<Segment> = Vec::new();
    let bytes = text.as_bytes();
    let mut index = 0;
    // Whether the next string in an object is a key (true) or a value.
    let mut expect_key = false;
    while index < offset.min(bytes.len()) {
        match bytes[index] {
            b'{' => {
                stack.push(Segment::Object(None));
                expect_key = true;
            }
            b'[' => {
                stack.push(Segment::Array(0));
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Segment::Array(count)) => *count += 1,
                Some(Segment::Object(key)) => {
                    *key = None;
                    expect_key = true;
                }
                None => {}
            },
            b':' => expect_key = false,
            b'"' => {
                let (string, end) = read_string(bytes, index);
                if expect_key && let Some(Segment::Object(key)) = stack.last_mut() {
                    *key = Some(string);
                }
                index = end;
                continue;
            }
            _ => {}
        }
        index += 1;
    }
    let mut path = String::new();
    for segment in &stack {
        match segment {
            Segment::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            // An error right after `{`: the object itself.
            Segment::Object(None) => {}
            Segment::Array(count) => {
                path.push('[');
                path.push_str(&count.to_string());
                path.push(']');
            }
        }
    }
    path
}

/// `root` joined with the path at the error's position: `spec.ports[1].name`.
pub fn field_of(root: &str, text: &str, error: &serde_json::Error) -> String {
    let path = path_at(text, error.line(), error.column());
    match (root.is_empty(), path.is_empty()) {
        (_, true) => root.to_owned(),
        (true, false) => path,
        (false, false) if path.starts_with('[') => format!("{root}{path}"),
        (false, false) => format!("{root}.{path}"),
    }
}

enum Segment {
    Object(Option<String>),
    Array(usize),
}

/// Byte offset of a 1-based line and column (columns count bytes, as serde_json's do).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (number, content) in text.split_inclusive('\n').enumerate() {
        if number + 1 == line {
            return offset + column.min(content.len());
        }
        offset += content.len();
    }
    text.len()
}

/// The unescaped contents of the string starting at `start` (a `"`), and
/// the index just past its closing quote.
fn read_string(bytes: &[u8], start: usize) -> (String, usize) {
    let mut out = Vec::new();
    let mut index = start + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => return (String::from_utf8_lossy(&out).into_owned(), index + 1),
            b'\\' if index + 1 < bytes.len() => {
                // Keys with escapes are rare; keep the escaped character.
                out.push(bytes[index + 1]);
                index += 2;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Spec {
        image: String,
        #[serde(default)]
        ports: Vec<Port>,
        #[serde(default)]
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Port {
        name: String,
        port: u16,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        deep: Vec<Vec<u8>>,
    }

    fn field(text: &str) -> String {
        let error = serde_json::from_str::<Spec>(text).unwrap_err();
        field_of("spec", text, &error)
    }

    #[test]
    fn names_the_field_of_type_errors() {
        assert_eq!(field(r#"{"image": 3}"#), "spec.image");
        assert_eq!(
            field(r#"{"image":"a","ports":[{"name":"a","port":1},{"name":"b","port":"x"}]}"#),
            "spec.ports[1].port"
        );
        assert_eq!(
            field(r#"{"image":"a","nested":{"deep":[[1,2],[3,300]]}}"#),
            "spec.nested.deep[1][1]"
        );
        assert_eq!(
            field("{\n  \"image\": \"a\",\n  \"ports\": [\n    {\"name\": 5}\n  ]\n}"),
            "spec.ports[0].name"
        );
    }

    #[test]
    fn missing_fields_name_their_object() {
        assert_eq!(
            field(r#"{"image":"a","ports":[{"name":"a"}]}"#),
            "spec.ports[0]"
        );
        assert_eq!(field(r#"{}"#), "spec");
    }

    #[test]
    fn strings_with_braces_and_escapes_do_not_confuse_it() {
        assert_eq!(
            field(r#"{"image":"a{[,\"]","ports":[{"name":"x,y","port":-1}]}"#),
            "spec.ports[0].port"
        );
    }

    #[test]
    fn syntax_errors_and_hostile_positions_never_panic() {
        assert_eq!(field("{"), "spec");
        assert_eq!(path_at("", 5, 9), "");
        assert_eq!(path_at("\"unterminated", 1, 100), "");
        assert_eq!(path_at("]]]}}}", 1, 6), "");
    }
}
