//! The CEL environment of validation rules: cel's standard library and strings extension
//! plus `library`'s functions; which functions a rule may call (those Kubernetes declares,
//! and of them those implemented here); the cost bound; cel-go's wording of errors.

use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use cel::common::ast::{CallExpr, EntryExpr, Expr};
use cel::common::types::DYN_TYPE;
use cel::common::value::CowVal;
use cel::{Context, Env, ExecutionError, IdedExpr, Value};

/// The functions (and macros) of Kubernetes' CEL environment for CRD rules (cel-go's
/// standard library, `ext.Strings` v2, `ext.Sets`, two-variable comprehensions, optionals
/// and the `k8s.io/apiserver/pkg/cel/library` libraries) that this emulator evaluates.
const IMPLEMENTED: &[&str] = &[
    // cel-go's standard library (without time: see NOT_IMPLEMENTED).
    "size",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    // Optionals.
    "optional.of",
    "optional.ofNonZeroValue",
    "optional.none",
    "hasValue",
    "value",
    "or",
    "orValue",
    // ext.Strings (version 2).
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "strings.quote",
    "format",
    // Kubernetes' lists, regex and ext.Sets (library.rs).
    "isSorted",
    "sum",
    "min",
    "max",
    "find",
    "findAll",
    "sets.contains",
    "sets.equivalent",
    "sets.intersects",
];

/// Functions Kubernetes declares for CRD rules that this emulator does not evaluate: a rule
/// calling one makes its CRD invalid here (never silently accepted).
const NOT_IMPLEMENTED: &[&str] = &[
    // Time (cel's `chrono` feature is off).
    "duration",
    "timestamp",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
    // Kubernetes' URL, quantity, IP, CIDR, format, semver and image libraries.
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    "quantity",
    "isQuantity",
    "sign",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
    "add",
    "sub",
    "asInteger",
    "isInteger",
    "asApproximateFloat",
    "ip",
    "isIP",
    "ip.isCanonical",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "cidr",
    "isCIDR",
    "containsIP",
    "containsCIDR",
    "masked",
    "prefixLength",
    "format.named",
    "validate",
    "semver",
    "isSemver",
    "major",
    "minor",
    "patch",
    "image",
    "isImage",
    "containerImage",
    "registry",
    "repository",
    "identifier",
    "tag",
    "digest",
    // Two-variable comprehensions (cel 0.15 lacks their macros).
    "transformList",
    "transformMap",
    "transformMapEntry",
    "existsOne",
];

/// Namespaces of qualified function names (`sets.contains(a, b)`).
const NAMESPACES: &[&str] = &[
    "optional", "strings", "sets", "format", "ip", "math", "base64", "lists",
];

/// The function that counts evaluation steps; the rewritten rule calls it around every call
/// and every comprehension step.
const STEP: &str = "@emulator_step";

/// Kubernetes' per-expression cost limit (`PerCallLimit`).
pub(super) const PER_CALL_LIMIT: u64 = 1_000_000;
/// Kubernetes' cost budget for all the rules of one object (`RuntimeCELCostBudget`).
pub(super) const RUNTIME_BUDGET: u64 = 10_000_000;

thread_local! {
    /// Steps left for the expression being evaluated on this thread.
    static STEPS_LEFT: Cell<u64> = const { Cell::new(u64::MAX) };
    /// Steps taken by it.
    static STEPS_TAKEN: Cell<u64> = const { Cell::new(0) };
}

/// The shared environment, or why it could not be built (a bug, reported per rule as
/// Kubernetes reports a compiler initialization error).
pub(super) fn env() -> Result<&'static Arc<Env>, String> {
    static ENV: OnceLock<Result<Arc<Env>, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings)
            .and_then(|()| super::library::register(&mut env))
            .and_then(|()| env.add_overload(STEP, STEP, vec![DYN_TYPE], step))
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(env))
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn step<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    STEPS_TAKEN.set(STEPS_TAKEN.get().saturating_add(1));
    let left = STEPS_LEFT.get();
    if left == 0 {
        return Err(ExecutionError::function_error(
            STEP,
            "operation cancelled: actual cost limit exceeded",
        ));
    }
    STEPS_LEFT.set(left - 1);
    args.pop()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))
}

/// A rule (or message expression) ready to evaluate.
#[derive(Debug)]
pub(super) struct Compiled {
    expr: IdedExpr,
    /// Whether it reads `oldSelf`.
    pub(super) uses_old_self: bool,
}

/// What compiling a source found wrong, in Kubernetes' words where it has them.
pub(super) fn compile(source: &str) -> Result<Compiled, String> {
    let env = env().map_err(|e| format!("rule compiler initialization error: {e}"))?;
    let program = env
        .compile(source)
        .map_err(|e| format!("compilation failed: ERROR: <input>: {e}"))?;
    let mut expr = program.expression().clone();
    let mut calls = Vec::new();
    let mut uses_old_self = false;
    let mut next_id = max_id(&expr) + 1;
    instrument(&mut expr, &mut next_id, &mut calls, &mut uses_old_self);
    for name in calls {
        if IMPLEMENTED.contains(&name.as_str()) || is_operator(&name) {
            continue;
        }
        return Err(if NOT_IMPLEMENTED.contains(&name.as_str()) {
            format!(
                "compilation failed: the emulator does not implement the Kubernetes CEL function '{name}' (see emulator/README.md)"
            )
        } else {
            format!(
                "compilation failed: ERROR: <input>: undeclared reference to '{name}' (in container '')"
            )
        });
    }
    Ok(Compiled {
        expr,
        uses_old_self,
    })
}

fn is_operator(name: &str) -> bool {
    name.starts_with('_')
        || name.starts_with('@')
        || name.starts_with("!_")
        || name.starts_with("-_")
}

fn max_id(e: &IdedExpr) -> u64 {
    let mut m = e.id;
    children(e, &mut |c| m = m.max(max_id(c)));
    m
}

fn children(e: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    match &e.expr {
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                f(t);
            }
            c.args.iter().for_each(&mut *f);
        }
        Expr::Comprehension(c) => {
            for x in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                f(x);
            }
        }
        Expr::List(l) => l.elements.iter().for_each(f),
        Expr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    f(&me.key);
                    f(&me.value);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let EntryExpr::StructField(sf) = &entry.expr {
                    f(&sf.value);
                }
            }
        }
        Expr::Select(s) => f(&s.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Wraps every call and every comprehension step in a call of [`STEP`] (the cost bound),
/// and collects the names of the functions called and whether `oldSelf` is read.
fn instrument(
    e: &mut IdedExpr,
    next_id: &mut u64,
    calls: &mut Vec<String>,
    uses_old_self: &mut bool,
) {
    let mut wrap = false;
    match &mut e.expr {
        Expr::Call(c) => {
            let name = match c.target.as_deref() {
                Some(IdedExpr {
                    expr: Expr::Ident(ns),
                    ..
                }) if NAMESPACES.contains(&ns.as_str()) => format!("{ns}.{}", c.func_name),
                _ => c.func_name.clone(),
            };
            calls.push(name);
            if let Some(t) = c.target.as_deref_mut() {
                instrument(t, next_id, calls, uses_old_self);
            }
            for a in &mut c.args {
                instrument(a, next_id, calls, uses_old_self);
            }
            wrap = true;
        }
        Expr::Comprehension(c) => {
            for x in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.result,
            ] {
                instrument(x, next_id, calls, uses_old_self);
            }
            instrument(&mut c.loop_step, next_id, calls, uses_old_self);
            let step = std::mem::take(&mut c.loop_step);
            c.loop_step = step_call(step, next_id);
        }
        Expr::List(l) => l
            .elements
            .iter_mut()
            .for_each(|a| instrument(a, next_id, calls, uses_old_self)),
        Expr::Map(m) => {
            for entry in &mut m.entries {
                if let EntryExpr::MapEntry(me) = &mut entry.expr {
                    instrument(&mut me.key, next_id, calls, uses_old_self);
                    instrument(&mut me.value, next_id, calls, uses_old_self);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &mut s.entries {
                if let EntryExpr::StructField(sf) = &mut entry.expr {
                    instrument(&mut sf.value, next_id, calls, uses_old_self);
                }
            }
        }
        Expr::Select(s) => instrument(&mut s.operand, next_id, calls, uses_old_self),
        Expr::Ident(name) => {
            if name == "oldSelf" {
                *uses_old_self = true;
            }
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
    if wrap {
        let inner = std::mem::take(e);
        *e = step_call(inner, next_id);
    }
}

fn step_call(inner: IdedExpr, next_id: &mut u64) -> IdedExpr {
    *next_id += 1;
    IdedExpr {
        id: *next_id,
        expr: Expr::Call(CallExpr {
            func_name: STEP.to_string(),
            target: None,
            args: vec![inner],
        }),
    }
}

/// How an evaluation within a step limit ended.
pub(super) enum Outcome {
    /// A value (possibly after errors that boolean logic absorbed).
    Value(Value),
    /// A runtime error, in cel-go's words.
    Error(String),
    /// The step limit was reached.
    OverLimit,
}

impl Compiled {
    /// Evaluates with `self` (and `oldSelf`) bound, within `limit` steps; also answers the
    /// steps taken.
    pub(super) fn eval(&self, vars: &[(&str, Value)], limit: u64) -> (Outcome, u64) {
        let env = match env() {
            Ok(env) => env.clone(),
            Err(e) => return (Outcome::Error(e), 0),
        };
        let mut ctx = Context::with_env(env);
        for (name, value) in vars {
            ctx.add_variable_from_value(*name, value.clone());
        }
        STEPS_LEFT.set(limit);
        STEPS_TAKEN.set(0);
        let result = Value::resolve(&self.expr, &ctx);
        let taken = STEPS_TAKEN.get();
        STEPS_LEFT.set(u64::MAX);
        if taken > limit {
            return (Outcome::OverLimit, taken);
        }
        match result {
            Ok(v) => (Outcome::Value(v), taken),
            Err(e) => (Outcome::Error(message(&e)), taken),
        }
    }
}

/// An evaluation error as cel-go words it (what Kubernetes shows).
pub(super) fn message(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".into(),
        ExecutionError::Overflow(..) => "integer overflow".into(),
        ExecutionError::IndexOutOfBounds(i) => match i {
            Value::Int(i) => format!("index out of bounds: {i}"),
            other => format!("index out of bounds: {other:?}"),
        },
        ExecutionError::NoSuchOverload(_)
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::ValuesNotComparable(..)
        | ExecutionError::UnexpectedType { .. }
        | ExecutionError::UnsupportedTargetType { .. }
        | ExecutionError::NotSupportedAsMethod { .. }
        | ExecutionError::UnsupportedIndex(..) => "no such overload".into(),
        ExecutionError::UndeclaredReference(name) => {
            format!("undeclared reference to '{name}' (in container '')")
        }
        ExecutionError::FunctionError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `src` evaluated with no variables: its value, or its error as cel-go words it.
    pub(crate) fn eval(src: &str) -> Result<Value, String> {
        let c = compile(src)?;
        match c.eval(&[], PER_CALL_LIMIT).0 {
            Outcome::Value(v) => Ok(v),
            Outcome::Error(e) => Err(e),
            Outcome::OverLimit => Err("over the limit".into()),
        }
    }

    #[test]
    fn every_implemented_function_is_there() {
        // One call of each: an undeclared function fails with "undeclared reference".
        for src in [
            "size('ab') == 2",
            "'ab'.matches('^a')",
            "'ab'.contains('b')",
            "'ab'.startsWith('a')",
            "'ab'.endsWith('b')",
            "int('1') == 1",
            "uint(1) == 1u",
            "double(1) == 1.0",
            "string(1) == '1'",
            "bytes('a') == b'a'",
            "bool('true')",
            "type(1) == int",
            "dyn(1) == 1",
            "optional.of(1).hasValue()",
            "optional.ofNonZeroValue(0).orValue(2) == 2",
            "!optional.none().hasValue()",
            "optional.of(1).value() == 1",
            "optional.none().or(optional.of(1)).value() == 1",
            "'abc'.charAt(1) == 'b'",
            "'abc'.indexOf('c') == 2",
            "'aa'.lastIndexOf('a') == 1",
            "'A'.lowerAscii() == 'a'",
            "'a'.upperAscii() == 'A'",
            "'aa'.replace('a', 'b') == 'bb'",
            "'a,b'.split(',') == ['a', 'b']",
            "'abc'.substring(1) == 'bc'",
            "' a '.trim() == 'a'",
            "['a', 'b'].join('-') == 'a-b'",
            "strings.quote('a') == '\"a\"'",
            "'%d'.format([1]) == '1'",
            "[1].isSorted()",
            "[1].sum() == 1",
            "[1].min() == 1",
            "[1].max() == 1",
            "'a1'.find('[0-9]') == '1'",
            "'a1'.findAll('[0-9]') == ['1']",
            "sets.contains([1], [1])",
            "sets.equivalent([1], [1])",
            "sets.intersects([1], [1])",
            "[1, 2].all(x, x > 0)",
            "[1, 2].exists(x, x == 2)",
            "[1, 2].exists_one(x, x == 2)",
            "[1, 2].map(x, x * 2) == [2, 4]",
            "[1, 2].filter(x, x > 1) == [2]",
            "has({'a': 1}.a)",
            "1 in [1]",
            "{'a': 1}.?a.orValue(0) == 1",
        ] {
            assert_eq!(eval(src), Ok(Value::Bool(true)), "{src}");
        }
    }

    #[test]
    fn unknown_and_unimplemented_functions_do_not_compile() {
        let e = compile("self.foo()").unwrap_err();
        assert!(e.contains("undeclared reference to 'foo'"), "{e}");
        let e = compile("reverse('a') == 'a'").unwrap_err();
        assert!(e.contains("undeclared reference to 'reverse'"), "{e}");
        let e = compile("base64.encode(b'a') == 'YQ=='").unwrap_err();
        assert!(e.contains("undeclared reference to 'base64.encode'"), "{e}");
        let e = compile("isQuantity('1Gi')").unwrap_err();
        assert!(
            e.contains("does not implement the Kubernetes CEL function 'isQuantity'"),
            "{e}"
        );
        assert!(
            compile("self.a ==")
                .unwrap_err()
                .starts_with("compilation failed")
        );
    }

    #[test]
    fn errors_are_worded_as_cel_go_words_them() {
        assert_eq!(eval("1 / 0 == 1"), Err("division by zero".into()));
        assert_eq!(eval("[1][3] == 1"), Err("index out of bounds: 3".into()));
        assert_eq!(eval("{'a': 1}.b == 1"), Err("no such key: b".into()));
        assert_eq!(eval("'a' + 1 == 'a'"), Err("no such overload".into()));
        assert_eq!(
            eval("9223372036854775807 + 1 > 0"),
            Err("integer overflow".into())
        );
    }

    #[test]
    fn the_step_limit_bounds_every_rule() {
        let c = compile("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].all(a, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].all(b, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].all(c, a + b + c > 0)))").unwrap();
        let (outcome, taken) = c.eval(&[], 1000);
        assert!(matches!(outcome, Outcome::OverLimit));
        assert!(taken > 1000);
        // ... and an error absorbed by `||` does not hide it.
        let c = compile("true || [1, 2, 3].all(x, x > 0)").unwrap();
        assert!(matches!(
            c.eval(&[], 1000).0,
            Outcome::Value(Value::Bool(true))
        ));
        let c = compile("[1, 2, 3].all(x, x > 0) || true").unwrap();
        assert!(matches!(c.eval(&[], 3).0, Outcome::OverLimit));
        let (outcome, taken) = compile("[1, 2].all(x, x > 0)").unwrap().eval(&[], 1000);
        assert!(matches!(outcome, Outcome::Value(Value::Bool(true))));
        assert!(taken > 2 && taken < 20, "{taken}");
    }
}
