//! CRD validation rules (`x-kubernetes-validations`) with the semantics of Kubernetes' CEL
//! environment: compiled when a CRD is written (a rule that does not compile makes the CRD
//! invalid), evaluated on every write of its objects as the API server's CEL validator does
//! (`self` at the rule's node, `oldSelf` for transition rules, messages, reasons, field
//! paths, ratcheting, a cost bound).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::Cause;
use crate::schema::Schema;

mod env;
mod library;
mod value;

use env::{Compiled, Outcome, PER_CALL_LIMIT, RUNTIME_BUDGET};

/// Kubernetes' limit on the length of an evaluated `messageExpression`.
const MAX_MESSAGE_EXPRESSION_BYTES: usize = 5 * 1024;

const REASONS: [&str; 4] = [
    "FieldValueInvalid",
    "FieldValueForbidden",
    "FieldValueRequired",
    "FieldValueDuplicate",
];

/// One compiled `x-kubernetes-validations` entry.
#[derive(Debug)]
pub(crate) struct Rule {
    rule: String,
    message: Option<String>,
    message_expression: Option<Compiled>,
    reason: Option<String>,
    /// `fieldPath` as a field path relative to the rule's node (`a.b`, `m[key]`).
    field_path: Option<String>,
    optional_old_self: bool,
    program: Compiled,
}

impl Rule {
    /// What errors name the rule by: its message, else its source.
    fn name(&self) -> &str {
        self.message.as_deref().unwrap_or(self.rule.trim())
    }
}

/// Compiles the rules of every node of `schema` (a CRD version's schema at `path`) into
/// the nodes, reporting what does not compile as Kubernetes does.
pub(crate) fn compile_schema(schema: &mut Schema, path: &str, errs: &mut Vec<Cause>) {
    compile_node(schema, path, false, errs);
}

fn compile_node(s: &mut Schema, path: &str, uncorrelatable: bool, errs: &mut Vec<Cause>) {
    if let Some(Value::Array(rules)) = s.raw.get("x-kubernetes-validations").cloned() {
        let mut compiled = Vec::new();
        for (i, raw) in rules.iter().enumerate() {
            let at = format!("{path}.x-kubernetes-validations[{i}]");
            if let Some(rule) = compile_rule(raw, s, &at, uncorrelatable, errs) {
                compiled.push(Arc::new(rule));
            }
        }
        s.rules = compiled;
    }
    for (k, p) in s.properties.iter_mut() {
        compile_node(p, &format!("{path}.properties[{k}]"), uncorrelatable, errs);
    }
    // Items of lists other than map lists have no old value to compare with.
    let items_uncorrelatable = uncorrelatable || s.list_type.as_deref() != Some("map");
    if let Some(items) = s.items.as_deref_mut() {
        compile_node(items, &format!("{path}.items"), items_uncorrelatable, errs);
    }
    if let Some(ap) = s.additional.as_deref_mut() {
        compile_node(
            ap,
            &format!("{path}.additionalProperties"),
            uncorrelatable,
            errs,
        );
    }
    for (i, a) in s.all_of.iter_mut().enumerate() {
        compile_node(a, &format!("{path}.allOf[{i}]"), uncorrelatable, errs);
    }
}

/// The rule as Go prints Kubernetes' `ValidationRule` in its errors (`%#v`).
fn go_repr(raw: &Value) -> String {
    let s = |k: &str| format!("{:?}", raw.get(k).and_then(Value::as_str).unwrap_or(""));
    let reason = match raw.get("reason") {
        Some(Value::String(_)) => "(*apiextensions.FieldValueErrorReason)(0xc000000000)",
        _ => "(*apiextensions.FieldValueErrorReason)(nil)",
    };
    let optional = match raw.get("optionalOldSelf") {
        Some(Value::Bool(_)) => "(*bool)(0xc000000000)",
        _ => "(*bool)(nil)",
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional}}}",
        s("rule"),
        s("message"),
        s("messageExpression"),
        s("fieldPath"),
    )
}

fn compile_rule(
    raw: &Value,
    node: &Schema,
    at: &str,
    uncorrelatable: bool,
    errs: &mut Vec<Cause>,
) -> Option<Rule> {
    let text = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
    let invalid = |field: String, detail: String| {
        Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {}: {detail}", go_repr(raw)),
        )
    };
    let before = errs.len();
    let source = text("rule").unwrap_or_default();
    if source.trim().is_empty() {
        errs.push(Cause::required(
            format!("{at}.rule"),
            "rule is not specified",
        ));
        return None;
    }
    let program = match env::compile(&source) {
        Ok(p) => Some(p),
        Err(e) => {
            errs.push(invalid(format!("{at}.rule"), e));
            None
        }
    };
    let message = text("message").map(|m| m.trim().to_string());
    if let Some(m) = &message
        && m.contains('\n')
    {
        errs.push(Cause::invalid(
            format!("{at}.message"),
            &json!(m),
            "message must not contain line breaks",
        ));
    }
    let message_expression = match text("messageExpression").filter(|m| !m.trim().is_empty()) {
        Some(m) => match env::compile(&m) {
            Ok(c) => Some(c),
            Err(e) => {
                errs.push(invalid(
                    format!("{at}.messageExpression"),
                    format!("messageExpression {e}"),
                ));
                None
            }
        },
        None => None,
    };
    let reason = text("reason");
    if let Some(r) = &reason
        && !REASONS.contains(&r.as_str())
    {
        errs.push(Cause::not_supported(
            format!("{at}.reason"),
            &json!(r),
            &REASONS.map(|r| json!(r)),
        ));
    }
    let field_path = match text("fieldPath").filter(|f| !f.is_empty()) {
        Some(fp) => match valid_field_path(&fp, node) {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(Cause::invalid(
                    format!("{at}.fieldPath"),
                    &json!(fp),
                    &format!("fieldPath must be a valid path: {e}"),
                ));
                None
            }
        },
        None => None,
    };
    let optional_old_self = raw.get("optionalOldSelf") == Some(&Value::Bool(true));
    if let Some(p) = &program {
        if optional_old_self && !p.uses_old_self {
            errs.push(Cause::invalid(
                format!("{at}.optionalOldSelf"),
                &json!(true),
                "may not be set if oldSelf is not used in rule",
            ));
        }
        if p.uses_old_self && uncorrelatable {
            errs.push(invalid(
                format!("{at}.rule"),
                "oldSelf cannot be used on the uncorrelatable portion of the schema".into(),
            ));
        }
    }
    if errs.len() > before {
        return None;
    }
    Some(Rule {
        rule: source,
        message: message.filter(|m| !m.is_empty()),
        message_expression,
        reason,
        field_path,
        optional_old_self,
        program: program?,
    })
}

/// A rule's `fieldPath` (`.a.b`, `.m['key']`) checked against the node's schema, as a field
/// path (`a.b`, `m[key]`), as Kubernetes' `ValidFieldPath` does.
fn valid_field_path(fp: &str, node: &Schema) -> Result<String, String> {
    let mut out = String::new();
    let mut schema = node;
    let mut rest = fp;
    while !rest.is_empty() {
        let name = if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() {
                return Err("unexpected end of JSON path".into());
            }
            rest = &r[end..];
            name.to_string()
        } else if let Some(r) = rest.strip_prefix("['") {
            let Some(end) = r.find("']") else {
                return Err("unexpected end of JSON path".into());
            };
            let name = r[..end].replace("\\'", "'").replace("\\\\", "\\");
            rest = &r[end + 2..];
            name
        } else {
            return Err(format!("expected [ or . but got: {rest}"));
        };
        if !schema.properties.is_empty() {
            let Some(p) = schema.properties.get(&name) else {
                return Err("does not refer to a valid field".into());
            };
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&name);
            schema = p;
        } else if let Some(ap) = schema.additional.as_deref() {
            out.push_str(&format!("[{name}]"));
            schema = ap;
        } else {
            return Err("does not refer to a valid field".into());
        }
    }
    Ok(out)
}

/// Whether a schema error stops the rules from being evaluated (Kubernetes' "blocking"
/// errors: the value is not of the shape the rules were compiled for).
fn is_blocking(c: &Cause) -> bool {
    matches!(
        c.reason.as_str(),
        "FieldValueNotSupported"
            | "FieldValueRequired"
            | "FieldValueTooLong"
            | "FieldValueTooMany"
            | "FieldValueTypeInvalid"
    )
}

fn has_rules(s: &Schema) -> bool {
    !s.rules.is_empty()
        || s.properties.values().any(has_rules)
        || s.items.as_deref().is_some_and(has_rules)
        || s.additional.as_deref().is_some_and(has_rules)
        || s.all_of.iter().any(has_rules)
}

/// Evaluates the rules of a custom resource's schema over `new` (an update also gives
/// `old`), after the schema's own validation found `errs`: appends the rules' errors, and a
/// warning for each error that ratcheting forgave.
pub(crate) fn validate(
    schema: &Schema,
    new: &Value,
    old: Option<&Value>,
    errs: &mut Vec<Cause>,
    warnings: &mut Vec<String>,
) {
    if !has_rules(schema) {
        return;
    }
    if errs.iter().any(is_blocking) {
        errs.push(Cause::invalid(
            "<nil>",
            &json!("null"),
            "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ));
        return;
    }
    let mut run = Run {
        budget: RUNTIME_BUDGET,
        stopped: false,
        errs,
        warnings,
    };
    let ratchet = Ratchet {
        correlated: old,
        ancestor_equal: false,
    };
    run.node(schema, None, true, new, old, ratchet);
}

/// Where a value is, as Kubernetes' `field.Path` prints it (`None`: the root, `<nil>`).
type Path = Option<String>;

fn child(p: &Path, name: &str) -> Path {
    Some(match p {
        None => name.to_string(),
        Some(p) => format!("{p}.{name}"),
    })
}

fn subscript(p: &Path, key: &str) -> Path {
    Some(format!("{}[{key}]", p.as_deref().unwrap_or_default()))
}

fn shown(p: &Path) -> String {
    p.clone().unwrap_or_else(|| "<nil>".into())
}

/// What ratcheting knows at a node: the old value correlated with it, if any, and whether
/// the nearest correlated ancestor is unchanged.
#[derive(Clone, Copy)]
struct Ratchet<'a> {
    correlated: Option<&'a Value>,
    ancestor_equal: bool,
}

impl<'a> Ratchet<'a> {
    fn forgives(&self, new: &Value) -> bool {
        match self.correlated {
            Some(old) => old == new,
            None => self.ancestor_equal,
        }
    }

    fn child(&self, new: &Value, correlated: Option<&'a Value>) -> Ratchet<'a> {
        Ratchet {
            correlated,
            ancestor_equal: self.forgives(new),
        }
    }
}

struct Run<'e> {
    budget: u64,
    stopped: bool,
    errs: &'e mut Vec<Cause>,
    warnings: &'e mut Vec<String>,
}

impl Run<'_> {
    fn node<'a>(
        &mut self,
        s: &Schema,
        path: Path,
        root: bool,
        new: &'a Value,
        old: Option<&'a Value>,
        ratchet: Ratchet<'a>,
    ) {
        if self.stopped || new.is_null() {
            return;
        }
        self.rules(s, &s.rules, &path, root, new, old, ratchet);
        for a in &s.all_of {
            let outer = Ratchet {
                correlated: None,
                ancestor_equal: ratchet.ancestor_equal,
            };
            self.rules(s, &a.rules, &path, root, new, old, outer);
        }
        match new {
            Value::Array(items) => {
                let Some(item_schema) = s.items.as_deref() else {
                    return;
                };
                let old_items = old.and_then(Value::as_array);
                let rc_items = ratchet.correlated.and_then(Value::as_array);
                for (i, item) in items.iter().enumerate() {
                    let keyed = |list: Option<&'a Vec<Value>>| map_list_item(s, list, item);
                    let correlated = match s.list_type.as_deref() {
                        Some("map") => keyed(rc_items),
                        Some(_) => None,
                        None => rc_items.and_then(|l| l.get(i)),
                    };
                    self.node(
                        item_schema,
                        subscript(&path, &i.to_string()),
                        false,
                        item,
                        keyed(old_items),
                        ratchet.child(new, correlated),
                    );
                }
            }
            Value::Object(m) => {
                for (k, v) in m {
                    if root && matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                        continue;
                    }
                    let (sub, p) = match (s.properties.get(k), s.additional.as_deref()) {
                        (Some(sub), _) => (sub, child(&path, k)),
                        (None, Some(ap)) => (ap, subscript(&path, k)),
                        (None, None) => continue,
                    };
                    let correlated = ratchet.correlated.and_then(|o| o.get(k));
                    self.node(
                        sub,
                        p,
                        false,
                        v,
                        old.and_then(|o| o.get(k)),
                        ratchet.child(new, correlated),
                    );
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rules(
        &mut self,
        s: &Schema,
        rules: &[Arc<Rule>],
        path: &Path,
        root: bool,
        new: &Value,
        old: Option<&Value>,
        ratchet: Ratchet<'_>,
    ) {
        if rules.is_empty() || self.stopped {
            return;
        }
        let type_ = if root {
            "object"
        } else {
            s.type_.as_deref().unwrap_or_default()
        };
        let invalid = |p: &Path, detail: &str| {
            Cause::new(
                "FieldValueInvalid",
                shown(p),
                format!("Invalid value: {type_:?}: {detail}"),
            )
        };
        if self.budget == 0 {
            self.errs.push(invalid(
                path,
                "validation failed due to running out of cost budget, no further validation rules will be run",
            ));
            self.stopped = true;
            return;
        }
        let convert = |v: &Value| {
            if root {
                value::root_to_cel(v, s)
            } else {
                value::to_cel(v, Some(s))
            }
        };
        let this = convert(new);
        let before = old.map(convert);
        for rule in rules {
            if rule.program.uses_old_self && before.is_none() && !rule.optional_old_self {
                continue;
            }
            let mut vars = vec![("self", this.clone())];
            if rule.program.uses_old_self {
                vars.push(("oldSelf", old_self(before.clone(), rule.optional_old_self)));
            }
            let Some(outcome) = self.eval(&rule.program, &vars) else {
                let detail = format!(
                    "'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: {}",
                    rule.name()
                );
                self.errs.push(invalid(path, &detail));
                self.stopped = true;
                return;
            };
            if self.stopped {
                self.errs.push(invalid(
                    path,
                    "validation failed due to running out of cost budget, no further validation rules will be run",
                ));
                return;
            }
            let passed = match outcome {
                Outcome::Value(cel::Value::Bool(b)) => b,
                Outcome::Value(_) => false,
                Outcome::Error(e) if e.starts_with("no such overload") => {
                    self.errs.push(invalid(path, &format!(
                        "'{e}': call arguments did not match a supported operator, function or macro signature for rule: {}",
                        rule.name()
                    )));
                    continue;
                }
                Outcome::Error(e) => {
                    self.errs.push(invalid(
                        path,
                        &format!("{e} evaluating rule: {}", rule.name()),
                    ));
                    continue;
                }
                // `eval` answers `None` for a rule over the per-call limit and sets
                // `stopped` when the budget runs out: both returned above.
                Outcome::OverLimit => return,
            };
            if passed {
                continue;
            }
            let field = match &rule.field_path {
                Some(fp) => child(path, fp),
                None => path.clone(),
            };
            let detail = self
                .message_expression(rule, &vars)
                .or_else(|| rule.message.clone())
                .unwrap_or_else(|| format!("failed rule: {}", rule.name()));
            if self.stopped {
                self.errs.push(invalid(
                    &field,
                    "messageExpression evaluation failed due to running out of cost budget, no further validation rules will be run",
                ));
                return;
            }
            let cause = match rule.reason.as_deref() {
                Some("FieldValueForbidden") => Cause::forbidden(shown(&field), &detail),
                Some("FieldValueRequired") => Cause::required(shown(&field), &detail),
                Some("FieldValueDuplicate") => Cause::new(
                    "FieldValueDuplicate",
                    shown(&field),
                    format!("Duplicate value: {type_:?}"),
                ),
                _ => invalid(&field, &detail),
            };
            // Ratcheting: an unchanged value keeps passing, except for transition rules.
            if !rule.program.uses_old_self && ratchet.forgives(new) {
                self.warnings
                    .push(format!("{}: {}", cause.field, cause.message));
            } else {
                self.errs.push(cause);
            }
        }
    }

    /// Evaluates within the per-call limit and what is left of the budget; `None` when
    /// the per-call limit was exceeded (the budget running out sets `stopped`).
    fn eval(&mut self, c: &Compiled, vars: &[(&str, cel::Value)]) -> Option<Outcome> {
        let limit = PER_CALL_LIMIT.min(self.budget);
        let (outcome, taken) = c.eval(vars, limit);
        self.budget = self.budget.saturating_sub(taken);
        if let Outcome::OverLimit = outcome {
            if limit == PER_CALL_LIMIT {
                return None;
            }
            self.stopped = true;
        }
        Some(outcome)
    }

    /// The evaluated `messageExpression`, if it gives a usable message.
    fn message_expression(&mut self, rule: &Rule, vars: &[(&str, cel::Value)]) -> Option<String> {
        let c = rule.message_expression.as_ref()?;
        let vars: Vec<_> = vars
            .iter()
            .filter(|(n, _)| *n == "self" || c.uses_old_self)
            .cloned()
            .collect();
        match self.eval(c, &vars) {
            Some(Outcome::Value(cel::Value::String(m))) => {
                let m = m.trim();
                (!m.is_empty() && !m.contains('\n') && m.len() <= MAX_MESSAGE_EXPRESSION_BYTES)
                    .then(|| m.to_string())
            }
            None => {
                self.stopped = true;
                None
            }
            Some(_) => None,
        }
    }
}

/// The item of a map list (`x-kubernetes-list-type: map`) with the keys of `item`.
fn map_list_item<'a>(s: &Schema, list: Option<&'a Vec<Value>>, item: &Value) -> Option<&'a Value> {
    if s.list_type.as_deref() != Some("map") {
        return None;
    }
    list?
        .iter()
        .find(|o| s.list_map_keys.iter().all(|k| o.get(k) == item.get(k)))
}

/// `oldSelf`: the old value, or for `optionalOldSelf` rules an optional of it.
fn old_self(before: Option<cel::Value>, optional: bool) -> cel::Value {
    use cel::objects::OptionalValue;
    if !optional {
        return before.unwrap_or(cel::Value::Null);
    }
    cel::Value::Opaque(Arc::new(match before {
        Some(v) => OptionalValue::of(v),
        None => OptionalValue::none(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(raw: Value) -> Schema {
        let mut s = Schema::parse(&raw, "s").unwrap();
        let mut errs = Vec::new();
        compile_schema(&mut s, "s", &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        s
    }

    fn run(s: &Schema, new: Value, old: Option<Value>) -> (Vec<String>, Vec<String>) {
        let (mut errs, mut warnings) = (Vec::new(), Vec::new());
        validate(s, &new, old.as_ref(), &mut errs, &mut warnings);
        let errs = errs
            .into_iter()
            .map(|c| format!("{} {}: {}", c.reason, c.field, c.message))
            .collect();
        (errs, warnings)
    }

    fn spec(props: Value, rules: Value) -> Schema {
        schema(json!({"type": "object", "properties": {"spec": {
            "type": "object", "properties": props, "x-kubernetes-validations": rules}}}))
    }

    #[test]
    fn rules_report_as_kubernetes_does() {
        let s = spec(
            json!({"a": {"type": "integer"}, "b": {"type": "integer"},
                   "m": {"type": "object", "additionalProperties": {"type": "string"}}}),
            json!([
                {"rule": "self.a <= self.b", "message": "a must not exceed b"},
                {"rule": "self.a != 7"},
                {"rule": "self.a != 8", "messageExpression": "'a is ' + string(self.a)",
                 "fieldPath": ".a", "reason": "FieldValueForbidden"},
                {"rule": "!has(self.m) || size(self.m) < 2", "fieldPath": ".m['x']",
                 "reason": "FieldValueDuplicate"},
            ]),
        );
        assert_eq!(
            run(&s, json!({"spec": {"a": 1, "b": 2}}), None).0,
            Vec::<String>::new()
        );
        assert_eq!(
            run(&s, json!({"spec": {"a": 3, "b": 2}}), None).0,
            vec!["FieldValueInvalid spec: Invalid value: \"object\": a must not exceed b"]
        );
        assert_eq!(
            run(&s, json!({"spec": {"a": 7, "b": 9}}), None).0,
            vec!["FieldValueInvalid spec: Invalid value: \"object\": failed rule: self.a != 7"]
        );
        assert_eq!(
            run(
                &s,
                json!({"spec": {"a": 8, "b": 9, "m": {"x": "1", "y": "2"}}}),
                None
            )
            .0,
            vec![
                "FieldValueForbidden spec.a: Forbidden: a is 8",
                "FieldValueDuplicate spec.m[x]: Duplicate value: \"object\"",
            ]
        );
        // A missing key is a runtime error, named by the rule's message.
        assert_eq!(
            run(&s, json!({"spec": {"b": 1}}), None).0,
            vec![
                "FieldValueInvalid spec: Invalid value: \"object\": no such key: a evaluating rule: a must not exceed b",
                "FieldValueInvalid spec: Invalid value: \"object\": no such key: a evaluating rule: self.a != 7",
                "FieldValueInvalid spec: Invalid value: \"object\": no such key: a evaluating rule: self.a != 8",
            ]
        );
    }

    #[test]
    fn rules_run_per_item_and_value_and_see_the_root() {
        let s = schema(json!({"type": "object",
            "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('ok') && !has(self.metadata.labels)"}],
            "properties": {"spec": {"type": "object", "properties": {
                "l": {"type": "array", "items": {"type": "string",
                      "x-kubernetes-validations": [{"rule": "self.size() < 3"}]}},
                "m": {"type": "object", "additionalProperties": {"type": "integer",
                      "x-kubernetes-validations": [{"rule": "self > 0"}]}}}}}}));
        let obj = json!({"apiVersion": "g/v1", "kind": "K",
            "metadata": {"name": "okay", "labels": {"a": "b"}},
            "spec": {"l": ["a", "abcd"], "m": {"x": 1, "y": 0}}});
        assert_eq!(
            run(&s, obj, None).0,
            vec![
                "FieldValueInvalid spec.l[1]: Invalid value: \"string\": failed rule: self.size() < 3",
                "FieldValueInvalid spec.m[y]: Invalid value: \"integer\": failed rule: self > 0",
            ]
        );
        let bad = json!({"metadata": {"name": "bad"}});
        assert_eq!(
            run(&s, bad, None).0,
            vec![
                "FieldValueInvalid <nil>: Invalid value: \"object\": failed rule: self.metadata.name.startsWith('ok') && !has(self.metadata.labels)"
            ]
        );
    }

    #[test]
    fn transition_rules_and_ratcheting() {
        let s = spec(
            json!({"a": {"type": "integer"}, "b": {"type": "string"}}),
            json!([
                {"rule": "self.a >= oldSelf.a", "message": "a may only grow"},
                {"rule": "oldSelf.hasValue() || self.a == 0", "optionalOldSelf": true,
                 "message": "start at 0"},
                {"rule": "self.b != 'x'"},
            ]),
        );
        assert_eq!(
            run(&s, json!({"spec": {"a": 0, "b": "y"}}), None).0,
            Vec::<String>::new()
        );
        assert_eq!(
            run(&s, json!({"spec": {"a": 1, "b": "y"}}), None).0,
            vec!["FieldValueInvalid spec: Invalid value: \"object\": start at 0"]
        );
        let old = json!({"spec": {"a": 5, "b": "x"}});
        assert_eq!(
            run(&s, json!({"spec": {"a": 4, "b": "x"}}), Some(old.clone())).0,
            vec![
                "FieldValueInvalid spec: Invalid value: \"object\": a may only grow",
                "FieldValueInvalid spec: Invalid value: \"object\": failed rule: self.b != 'x'",
            ]
        );
        // Unchanged: the failing rule is forgiven (with a warning).
        let (errs, warnings) = run(&s, old.clone(), Some(old));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn blocking_schema_errors_skip_the_rules() {
        let s = spec(
            json!({"a": {"type": "integer"}}),
            json!([{"rule": "self.a > 0"}]),
        );
        let (mut errs, mut warnings) = (vec![Cause::required("spec.a", "")], Vec::new());
        validate(&s, &json!({"spec": {}}), None, &mut errs, &mut warnings);
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[1].field, "<nil>");
        assert!(
            errs[1]
                .message
                .starts_with("Invalid value: \"null\": some validation rules were not checked")
        );
    }

    #[test]
    fn the_budget_bounds_an_object() {
        let items: Vec<Value> = (0..300)
            .map(|_| json!({"l": (0..100).collect::<Vec<_>>()}))
            .collect();
        let s = schema(
            json!({"type": "object", "properties": {"items": {"type": "array", "items": {
            "type": "object", "properties": {"l": {"type": "array", "items": {"type": "integer"}}},
            "x-kubernetes-validations": [{"rule": "self.l.all(a, self.l.all(b, a <= b || a > b))"}]}}}}),
        );
        let errs = run(&s, json!({"items": items}), None).0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("validation failed due to running out of cost budget"),
            "{errs:?}"
        );
    }

    #[test]
    fn crds_with_bad_rules_are_refused() {
        let bad = |rules: Value| {
            let mut s = Schema::parse(
                &json!({"type": "object", "properties": {"a": {"type": "integer"}},
                        "x-kubernetes-validations": rules}),
                "s",
            )
            .unwrap();
            let mut errs = Vec::new();
            compile_schema(&mut s, "s", &mut errs);
            errs.into_iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect::<Vec<_>>()
        };
        let e = bad(json!([{"rule": "self.a.frobnicate()"}]));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("s.x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.a.frobnicate()\""), "{e:?}");
        assert!(
            e[0].contains("undeclared reference to 'frobnicate'"),
            "{e:?}"
        );
        let e = bad(json!([{"rule": "self.a > 0", "fieldPath": ".b"}]));
        assert!(
            e[0].contains("fieldPath must be a valid path: does not refer to a valid field"),
            "{e:?}"
        );
        let e = bad(json!([{"rule": "self.a > 0", "reason": "Nope"}]));
        assert!(e[0].contains("Unsupported value: \"Nope\""), "{e:?}");
        let e = bad(json!([{"rule": ""}]));
        assert_eq!(
            e,
            vec!["s.x-kubernetes-validations[0].rule: Required value: rule is not specified"]
        );
        assert!(bad(json!([{"rule": "self.a > 0", "fieldPath": ".a"}])).is_empty());
    }
}
