//! The Kubernetes CEL library functions cel's crate lacks, with Kubernetes' semantics:
//! lists (`isSorted`, `sum`, `min`, `max`, `indexOf`, `lastIndexOf`), regex (`find`,
//! `findAll`) and sets (`sets.contains`, `sets.equivalent`, `sets.intersects`).

use std::cmp::Ordering;
use std::sync::Arc;

use cel::common::types::{INT_TYPE, LIST_TYPE, STRING_TYPE, Type};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError, Value};
use regex::Regex;

/// Registers every function of this module on `env`.
pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload("isSorted", "list_is_sorted", LIST_TYPE, vec![], is_sorted)?;
    env.add_member_overload("sum", "list_sum", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list_min", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list_max", LIST_TYPE, vec![], max)?;
    // Any element type: `indexOf` on strings is the strings extension's.
    let positions = |env: &mut Env, t: Type| -> Result<(), DeclarationError> {
        let name = t.name().to_owned();
        env.add_member_overload(
            "lastIndexOf",
            &format!("list_last_index_of_{name}"),
            LIST_TYPE,
            vec![t],
            last_index_of,
        )?;
        let t = t_of(&name);
        env.add_member_overload(
            "indexOf",
            &format!("list_index_of_{name}"),
            LIST_TYPE,
            vec![t],
            index_of,
        )
    };
    for t in ELEMENT_TYPES {
        positions(env, t_of(t))?;
    }
    env.add_member_overload("find", "string_find", STRING_TYPE, vec![STRING_TYPE], find)?;
    env.add_member_overload(
        "findAll",
        "string_find_all",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_n",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all_n,
    )?;
    for (name, f) in [
        (
            "sets.contains",
            sets_contains as cel::common::functions::Function,
        ),
        ("sets.equivalent", sets_equivalent),
        ("sets.intersects", sets_intersects),
    ] {
        env.add_overload(name, name, vec![LIST_TYPE, LIST_TYPE], f)?;
    }
    Ok(())
}

/// The element types `indexOf` and `lastIndexOf` take (one overload each: an overload
/// matches by argument type).
const ELEMENT_TYPES: [&str; 9] = [
    "dyn", "int", "uint", "double", "bool", "string", "bytes", "list", "map",
];

fn t_of(name: &str) -> Type {
    use cel::common::types as t;
    match name {
        "int" => INT_TYPE,
        "uint" => t::UINT_TYPE,
        "double" => t::DOUBLE_TYPE,
        "bool" => t::BOOL_TYPE,
        "string" => STRING_TYPE,
        "bytes" => t::BYTES_TYPE,
        "list" => LIST_TYPE,
        "map" => t::MAP_TYPE,
        _ => t::DYN_TYPE,
    }
}

type Res<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

/// The arguments as plain values (the receiver first).
fn values(function: &str, args: &[CowVal<'_, '_>], n: usize) -> Result<Vec<Value>, ExecutionError> {
    if args.len() != n {
        return Err(ExecutionError::invalid_argument_count(n, args.len()));
    }
    args.iter()
        .map(|a| Value::try_from(a.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ExecutionError::function_error(function, e))
}

fn owned<'b, 'v>(v: Value) -> Res<'b, 'v> {
    let boxed: Box<dyn Val> = v.try_into()?;
    Ok(CowVal::Owned(boxed))
}

fn list(function: &str, v: &Value) -> Result<Arc<Vec<Value>>, ExecutionError> {
    match v {
        Value::List(l) => Ok(l.clone()),
        _ => Err(no_overload(function)),
    }
}

fn string(function: &str, v: &Value) -> Result<Arc<String>, ExecutionError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(no_overload(function)),
    }
}

fn no_overload(function: &str) -> ExecutionError {
    ExecutionError::no_such_overload(function, Vec::new())
}

/// CEL ordering of two values of one comparable type.
fn compare(function: &str, a: &Value, b: &Value) -> Result<Ordering, ExecutionError> {
    let comparable = matches!(
        (a, b),
        (
            Value::Int(_) | Value::UInt(_) | Value::Float(_),
            Value::Int(_) | Value::UInt(_) | Value::Float(_)
        ) | (Value::String(_), Value::String(_))
            | (Value::Bool(_), Value::Bool(_))
            | (Value::Bytes(_), Value::Bytes(_))
    );
    match a.partial_cmp(b) {
        Some(o) if comparable => Ok(o),
        _ => Err(no_overload(function)),
    }
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let [l] = <[Value; 1]>::try_from(values("isSorted", &args, 1)?)
        .map_err(|_| no_overload("isSorted"))?;
    let l = list("isSorted", &l)?;
    for pair in l.windows(2) {
        if compare("isSorted", &pair[0], &pair[1])? == Ordering::Greater {
            return owned(Value::Bool(false));
        }
    }
    owned(Value::Bool(true))
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let v = values("sum", &args, 1)?;
    let l = list("sum", &v[0])?;
    let overflow = || ExecutionError::function_error("sum", "integer overflow");
    let total = match l.first() {
        None | Some(Value::Int(_)) => {
            let mut t: i64 = 0;
            for x in l.iter() {
                let Value::Int(i) = x else {
                    return Err(no_overload("sum"));
                };
                t = t.checked_add(*i).ok_or_else(overflow)?;
            }
            Value::Int(t)
        }
        Some(Value::UInt(_)) => {
            let mut t: u64 = 0;
            for x in l.iter() {
                let Value::UInt(u) = x else {
                    return Err(no_overload("sum"));
                };
                t = t.checked_add(*u).ok_or_else(overflow)?;
            }
            Value::UInt(t)
        }
        Some(Value::Float(_)) => {
            let mut t = 0.0;
            for x in l.iter() {
                let Value::Float(f) = x else {
                    return Err(no_overload("sum"));
                };
                t += f;
            }
            Value::Float(t)
        }
        Some(_) => return Err(no_overload("sum")),
    };
    owned(total)
}

fn extreme<'b, 'v>(function: &str, args: Vec<CowVal<'b, 'v>>, keep: Ordering) -> Res<'b, 'v> {
    let v = values(function, &args, 1)?;
    let l = list(function, &v[0])?;
    let Some(mut best) = l.first().cloned() else {
        return Err(ExecutionError::function_error(
            function,
            format!("{function} called on empty list"),
        ));
    };
    for x in l.iter().skip(1) {
        if compare(function, x, &best)? == keep {
            best = x.clone();
        }
    }
    owned(best)
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    extreme("min", args, Ordering::Less)
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    extreme("max", args, Ordering::Greater)
}

fn position<'b, 'v>(function: &str, args: Vec<CowVal<'b, 'v>>, last: bool) -> Res<'b, 'v> {
    let v = values(function, &args, 2)?;
    let l = list(function, &v[0])?;
    let found = if last {
        l.iter().rposition(|x| *x == v[1])
    } else {
        l.iter().position(|x| *x == v[1])
    };
    owned(Value::Int(found.map_or(-1, |i| i as i64)))
}

fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    position("indexOf", args, false)
}

fn last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    position("lastIndexOf", args, true)
}

fn regex(function: &str, pattern: &str) -> Result<Regex, ExecutionError> {
    Regex::new(pattern).map_err(|e| ExecutionError::function_error(function, e))
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let v = values("find", &args, 2)?;
    let (s, p) = (string("find", &v[0])?, string("find", &v[1])?);
    let found = regex("find", &p)?
        .find(&s)
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    owned(Value::String(Arc::new(found)))
}

fn find_all_up_to<'b, 'v>(v: &[Value], n: i64) -> Res<'b, 'v> {
    let (s, p) = (string("findAll", &v[0])?, string("findAll", &v[1])?);
    let re = regex("findAll", &p)?;
    let limit = usize::try_from(n).unwrap_or(usize::MAX);
    let all = re
        .find_iter(&s)
        .take(limit)
        .map(|m| Value::String(Arc::new(m.as_str().to_owned())))
        .collect();
    owned(Value::List(Arc::new(all)))
}

fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let v = values("findAll", &args, 2)?;
    find_all_up_to(&v, -1)
}

fn find_all_n<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let v = values("findAll", &args, 3)?;
    let Value::Int(n) = v[2] else {
        return Err(no_overload("findAll"));
    };
    find_all_up_to(&v[..2], n)
}

/// Two lists: the arguments of the sets functions.
type Lists = (Arc<Vec<Value>>, Arc<Vec<Value>>);

fn two_lists(function: &str, args: &[CowVal<'_, '_>]) -> Result<Lists, ExecutionError> {
    let v = values(function, args, 2)?;
    Ok((list(function, &v[0])?, list(function, &v[1])?))
}

fn sets_contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let (a, b) = two_lists("sets.contains", &args)?;
    owned(Value::Bool(b.iter().all(|x| a.contains(x))))
}

fn sets_equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let (a, b) = two_lists("sets.equivalent", &args)?;
    owned(Value::Bool(
        b.iter().all(|x| a.contains(x)) && a.iter().all(|x| b.contains(x)),
    ))
}

fn sets_intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let (a, b) = two_lists("sets.intersects", &args)?;
    owned(Value::Bool(b.iter().any(|x| a.contains(x))))
}

#[cfg(test)]
mod tests {
    use super::super::env::tests::eval;
    use cel::Value;

    fn ok(src: &str) -> Value {
        eval(src).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    #[test]
    fn lists() {
        assert_eq!(ok("[1, 2, 2, 3].isSorted()"), Value::Bool(true));
        assert_eq!(ok("['b', 'a'].isSorted()"), Value::Bool(false));
        assert_eq!(ok("[].isSorted()"), Value::Bool(true));
        assert!(eval("[1, 'a'].isSorted()").is_err());
        assert_eq!(ok("[1, 2, 3].sum()"), Value::Int(6));
        assert_eq!(ok("[1.5, 2.0].sum()"), Value::Float(3.5));
        assert_eq!(ok("[].sum()"), Value::Int(0));
        assert!(eval("[9223372036854775807, 1].sum()").is_err());
        assert_eq!(ok("[3, 1, 2].min()"), Value::Int(1));
        assert_eq!(ok("[3, 1, 2].max()"), Value::Int(3));
        assert_eq!(
            ok("['b', 'c', 'a'].max()"),
            Value::String("c".to_string().into())
        );
        let empty = eval("[].min()").unwrap_err();
        assert_eq!(empty, "min called on empty list");
        assert_eq!(ok("[1, 2, 1].indexOf(1)"), Value::Int(0));
        assert_eq!(ok("[1, 2, 1].lastIndexOf(1)"), Value::Int(2));
        assert_eq!(ok("['a'].indexOf('z')"), Value::Int(-1));
        assert_eq!(ok("[[1], [2]].indexOf([2])"), Value::Int(1));
        // The strings extension keeps its own.
        assert_eq!(ok("'banana'.indexOf('an')"), Value::Int(1));
        assert_eq!(ok("'banana'.lastIndexOf('an')"), Value::Int(3));
    }

    #[test]
    fn regex() {
        assert_eq!(
            ok("'abc 123 def 456'.find('[0-9]+')"),
            Value::String("123".to_string().into())
        );
        assert_eq!(
            ok("'abc'.find('[0-9]+')"),
            Value::String(String::new().into())
        );
        assert_eq!(
            ok("'a1 b2 c3'.findAll('[a-z][0-9]')"),
            ok("['a1', 'b2', 'c3']")
        );
        assert_eq!(
            ok("'a1 b2 c3'.findAll('[a-z][0-9]', 2)"),
            ok("['a1', 'b2']")
        );
        assert_eq!(ok("'a1'.findAll('[a-z][0-9]', 0)"), ok("[]"));
        assert!(eval("'a'.find('(')").is_err());
    }

    #[test]
    fn sets() {
        assert_eq!(ok("sets.contains([1, 2, 3], [3, 1])"), Value::Bool(true));
        assert_eq!(ok("sets.contains([1], [2])"), Value::Bool(false));
        assert_eq!(ok("sets.equivalent([1, 2, 2], [2, 1])"), Value::Bool(true));
        assert_eq!(ok("sets.equivalent([1], [1, 2])"), Value::Bool(false));
        assert_eq!(ok("sets.intersects([1, 2], [2, 5])"), Value::Bool(true));
        assert_eq!(ok("sets.intersects([1], [])"), Value::Bool(false));
    }
}
