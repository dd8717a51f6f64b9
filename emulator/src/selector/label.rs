//! Label selectors: Kubernetes' string syntax and `metav1.LabelSelector` objects, parsed and
//! matched against objects' labels.

use serde_json::Value;

use crate::validation::{validate_label_key, validate_label_value};

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
