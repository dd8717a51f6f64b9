//! Label selectors (the full string syntax) and field selectors, parsed and matched.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<Req>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Checks a label key: optional DNS subdomain prefix, then a name of at most 63 characters.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !crate::validation::is_dns_subdomain(p))
    {
        return Err(format!(
            "invalid label key \"{key}\": prefix part must be a lowercase RFC 1123 subdomain"
        ));
    }
    if name.is_empty()
        || name.len() > 63
        || !name.chars().all(is_name_char)
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or at most 63 name characters starting and ending alphanumeric.
pub fn validate_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63
        || !v.chars().all(is_name_char)
        || !v.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !v.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "invalid label value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    Op(&'static str),
    Comma,
    Open,
    Close,
    Not,
    End,
}

impl Lexer<'_> {
    fn next(&mut self) -> Result<Tok, String> {
        let rest = &self.s[self.pos..];
        let trimmed = rest.trim_start();
        self.pos += rest.len() - trimmed.len();
        let mut chars = trimmed.chars();
        let Some(c) = chars.next() else {
            return Ok(Tok::End);
        };
        let two = trimmed.get(..2).unwrap_or("");
        let (tok, len) = match c {
            ',' => (Tok::Comma, 1),
            '(' => (Tok::Open, 1),
            ')' => (Tok::Close, 1),
            '!' if two == "!=" => (Tok::Op("!="), 2),
            '!' => (Tok::Not, 1),
            '=' if two == "==" => (Tok::Op("=="), 2),
            '=' => (Tok::Op("="), 1),
            '>' => (Tok::Op(">"), 1),
            '<' => (Tok::Op("<"), 1),
            _ => {
                let len = trimmed
                    .find(|c: char| c.is_whitespace() || "!=,()<>".contains(c))
                    .unwrap_or(trimmed.len());
                (Tok::Ident(trimmed[..len].to_string()), len)
            }
        };
        self.pos += len;
        Ok(tok)
    }

    fn peek(&mut self) -> Result<Tok, String> {
        let save = self.pos;
        let t = self.next();
        self.pos = save;
        t
    }
}

impl LabelSelector {
    /// Parses Kubernetes' label selector syntax (`a=b,c!=d,e in (f,g),!h,i,j>3`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut lx = Lexer { s, pos: 0 };
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector { reqs });
        }
        loop {
            let req = match lx.next()? {
                Tok::Not => {
                    let Tok::Ident(k) = lx.next()? else {
                        return Err(format!(
                            "unable to parse requirement: found '!', expected: identifier in {s:?}"
                        ));
                    };
                    validate_label_key(&k)?;
                    Req::NotExists(k)
                }
                Tok::Ident(k) => {
                    validate_label_key(&k)?;
                    match lx.peek()? {
                        Tok::Comma | Tok::End => Req::Exists(k),
                        Tok::Op(op) => {
                            lx.next()?;
                            let v = match lx.peek()? {
                                Tok::Ident(v) => {
                                    lx.next()?;
                                    v
                                }
                                // `a=` selects the empty value.
                                Tok::Comma | Tok::End if op != ">" && op != "<" => String::new(),
                                other => {
                                    return Err(format!(
                                        "found '{other:?}', expected: identifier after '{op}'"
                                    ));
                                }
                            };
                            match op {
                                "=" | "==" => {
                                    validate_label_value(&v)?;
                                    Req::Eq(k, v)
                                }
                                "!=" => {
                                    validate_label_value(&v)?;
                                    Req::NotEq(k, v)
                                }
                                _ => {
                                    let n: i64 = v.parse().map_err(|_| {
                                        format!("for 'Gt', 'Lt' operators, the value must be an integer: {v:?}")
                                    })?;
                                    if op == ">" {
                                        Req::Gt(k, n)
                                    } else {
                                        Req::Lt(k, n)
                                    }
                                }
                            }
                        }
                        Tok::Ident(word) if word == "in" || word == "notin" => {
                            lx.next()?;
                            if lx.next()? != Tok::Open {
                                return Err(format!("expected '(' after '{word}' in {s:?}"));
                            }
                            let mut values = Vec::new();
                            loop {
                                match lx.next()? {
                                    Tok::Ident(v) => {
                                        validate_label_value(&v)?;
                                        values.push(v);
                                        match lx.next()? {
                                            Tok::Comma => continue,
                                            Tok::Close => break,
                                            t => {
                                                return Err(format!(
                                                    "unexpected {t:?} in set in {s:?}"
                                                ));
                                            }
                                        }
                                    }
                                    Tok::Close if values.is_empty() => {
                                        return Err(format!(
                                            "for 'in', 'notin' operators, values set can't be empty: {s:?}"
                                        ));
                                    }
                                    t => return Err(format!("unexpected {t:?} in set in {s:?}")),
                                }
                            }
                            if word == "in" {
                                Req::In(k, values)
                            } else {
                                Req::NotIn(k, values)
                            }
                        }
                        t => {
                            return Err(format!(
                                "unable to parse requirement: unexpected {t:?} in {s:?}"
                            ));
                        }
                    }
                }
                t => {
                    return Err(format!(
                        "unable to parse requirement: unexpected {t:?} in {s:?}"
                    ));
                }
            };
            reqs.push(req);
            match lx.next()? {
                Tok::Comma => continue,
                Tok::End => break,
                t => return Err(format!("unexpected {t:?} in {s:?}: expected ','")),
            }
        }
        Ok(LabelSelector { reqs })
    }

    /// Builds a selector from a `metav1.LabelSelector` object (matchLabels, matchExpressions).
    pub fn from_object(v: &Value) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if let Some(Value::Object(m)) = v.get("matchLabels") {
            for (k, val) in m {
                reqs.push(Req::Eq(
                    k.clone(),
                    val.as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        if let Some(Value::Array(exprs)) = v.get("matchExpressions") {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                reqs.push(match e.get("operator").and_then(Value::as_str) {
                    Some("In") => Req::In(key, values),
                    Some("NotIn") => Req::NotIn(key, values),
                    Some("Exists") => Req::Exists(key),
                    Some("DoesNotExist") => Req::NotExists(key),
                    other => {
                        return Err(format!("{other:?} is not a valid label selector operator"));
                    }
                });
            }
        }
        Ok(LabelSelector { reqs })
    }

    /// Whether the selector selects nothing-in-particular (matches all).
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether an object's labels satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
            Req::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Req::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }

    /// The selector in Kubernetes' canonical string form (for Scale status.selector).
    pub fn to_string_form(&self) -> String {
        let mut parts: Vec<String> = self
            .reqs
            .iter()
            .map(|r| match r {
                Req::Eq(k, v) => format!("{k}={v}"),
                Req::NotEq(k, v) => format!("{k}!={v}"),
                Req::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Req::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Req::Exists(k) => k.clone(),
                Req::NotExists(k) => format!("!{k}"),
                Req::Gt(k, n) => format!("{k}>{n}"),
                Req::Lt(k, n) => format!("{k}<{n}"),
            })
            .collect();
        parts.sort();
        parts.join(",")
    }
}

/// A parsed field selector (`metadata.name=x,metadata.namespace!=y`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses a field selector; `supported` lists the field labels the resource allows.
    pub fn parse(s: &str, supported: &[&str]) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_unescaped(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_string(), eq, unescape(value.trim())));
        }
        Ok(FieldSelector { reqs })
    }

    /// Whether there are no requirements.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The value required for `metadata.name`, if the selector pins one.
    pub fn pinned_name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|(f, eq, _)| *eq && f == "metadata.name")
            .map(|(_, _, v)| v.as_str())
    }

    /// Whether the object satisfies every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(field, eq, want)| {
            let mut cur = Some(obj);
            for p in field.split('.') {
                cur = cur.and_then(|c| c.get(p));
            }
            let have = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (have == *want) == *eq
        })
    }
}

fn split_unescaped(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut esc = false;
    for c in s.chars() {
        if esc {
            if let Some(last) = out.last_mut() {
                last.push('\\');
                last.push(c);
            }
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == ',' {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        if esc {
            out.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// The field labels a resource supports in field selectors (beyond name and namespace).
pub fn supported_fields(group: &str, resource: &str) -> Vec<&'static str> {
    let mut f = vec!["metadata.name", "metadata.namespace"];
    match (group, resource) {
        ("", "pods") => f.extend([
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]),
        ("", "events") => f.extend([
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]),
        ("", "secrets") => f.push("type"),
        ("", "namespaces") => f.push("status.phase"),
        ("batch", "jobs") => f.push("status.successful"),
        ("apps", "replicasets") => f.push("status.replicas"),
        _ => {}
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn full_label_syntax() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("n>3,n<6", true),
            ("n>5", false),
            ("app=web,tier=back", false),
            ("app in (x),tier", false),
        ] {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&o), want, "{sel}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_errors() {
        for bad in [
            "app in web",
            "app in ()",
            "=x",
            "a b",
            "app=(",
            "Bad Key=1",
            "a>b",
            "!",
            "a in (x",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let s = FieldSelector::parse(
            "metadata.name=a,metadata.namespace!=x",
            &supported_fields("", "configmaps"),
        )
        .unwrap();
        assert!(s.matches(&o));
        assert_eq!(s.pinned_name(), Some("a"));
        assert!(FieldSelector::parse("spec.foo=1", &supported_fields("", "configmaps")).is_err());
        assert!(FieldSelector::parse("nonsense", &supported_fields("", "configmaps")).is_err());
    }

    #[test]
    fn selector_objects() {
        let s = LabelSelector::from_object(&json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}))
        .unwrap();
        assert!(s.matches(&obj(json!({"app": "web", "tier": "front"}))));
        assert_eq!(s.to_string_form(), "app=web,tier in (front)");
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,64}") {
            let _ = LabelSelector::parse(&s).map(|sel| sel.matches(&obj(json!({"a": "b"}))));
            let _ = FieldSelector::parse(&s, &supported_fields("", "pods")).map(|f| f.matches(&obj(json!({}))));
        }

        #[test]
        fn canonical_form_round_trips(keys in proptest::collection::vec("[a-z]{1,5}", 1..4), vals in proptest::collection::vec("[a-z0-9]{0,5}", 1..4)) {
            let text: Vec<String> = keys.iter().zip(vals.iter()).map(|(k, v)| format!("{k}={v}")).collect();
            let sel = LabelSelector::parse(&text.join(",")).unwrap();
            let again = LabelSelector::parse(&sel.to_string_form()).unwrap();
            proptest::prop_assert_eq!(sel.to_string_form(), again.to_string_form());
        }
    }
}
