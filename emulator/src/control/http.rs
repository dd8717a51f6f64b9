//! The control API over HTTP: `/emulator/v1/...` requests mapped onto [`Control`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    ActiveFault, Control, FaultRule, KnobsPatch, MetricRule, OutcomeRule, PauseMode, WatchExpiry,
    lock,
};
use crate::error::ApiError;

/// The body of `POST /emulator/v1/pause`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PauseRequest {
    mode: PauseMode,
    #[serde(default)]
    duration_ms: Option<u64>,
}

fn parse<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid control request body: {e}")))
}

fn parse_required<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid control request body: {e}")))
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn cluster_view(c: &Control) -> Value {
    json!({
        "controllers": c.controllers.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "knobs": to_json(&c.knobs().to_patch()),
        "paused": c.paused(),
    })
}

/// Serves one control request (`path` without the [`PREFIX`]); answers a status code and a
/// JSON body.
pub fn handle(
    c: &Control,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let not_allowed = || Err(ApiError::method_not_allowed());
    match (segs.as_slice(), method) {
        ([], "GET") | (["cluster"], "GET") => Ok((200, cluster_view(c))),
        (["cluster"], "PATCH") => {
            let p: KnobsPatch = parse_required(body)?;
            c.update_knobs(|k| k.apply(&p));
            Ok((200, cluster_view(c)))
        }
        (["faults"], "GET") => Ok((200, json!({"items": to_json(&c.faults())}))),
        (["faults"], "POST") => {
            let rule: FaultRule = parse_required(body)?;
            let id = c.add_fault(rule.clone())?;
            Ok((201, to_json(&ActiveFault { id, rule, hits: 0 })))
        }
        (["faults"], "DELETE") => {
            c.clear_faults();
            Ok((200, json!({"items": []})))
        }
        (["faults", "log"], "GET") => Ok((200, json!({"items": to_json(&c.fault_log())}))),
        (["faults", id], "DELETE") => {
            let id: u64 = id
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid fault id {id:?}")))?;
            if c.remove_fault(id) {
                Ok((200, json!({"id": id})))
            } else {
                Err(ApiError::not_found("emulator", "faults", &id.to_string()))
            }
        }
        (["watches", "cut"], "POST") => {
            c.cut_watches();
            Ok((200, json!({})))
        }
        (["watches", "expire"], "POST") => {
            let rule: WatchExpiry = parse(body)?;
            c.expire_watches(rule.clone());
            Ok((200, to_json(&rule)))
        }
        (["pause"], "POST") => {
            let p: PauseRequest = parse_required(body)?;
            let resume = p.duration_ms.map(Duration::from_millis);
            match (p.mode, lock(&c.runtime).clone()) {
                // Closing the port also drops the connection this answer travels on: let the
                // answer go out first.
                (PauseMode::Refuse, Some(h)) => {
                    let c2 = c.self_handle();
                    h.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        if let Some(c) = c2.upgrade() {
                            c.pause(PauseMode::Refuse, resume);
                        }
                    });
                    let mut v = cluster_view(c);
                    v["paused"] = json!(PauseMode::Refuse);
                    Ok((200, v))
                }
                (mode, _) => {
                    c.pause(mode, resume);
                    Ok((200, cluster_view(c)))
                }
            }
        }
        (["resume"], "POST") => {
            c.resume();
            Ok((200, cluster_view(c)))
        }
        (["compact"], "POST") => {
            c.compact();
            Ok((200, json!({})))
        }
        (["outcomes"], "GET") => Ok((200, rules_json(&c.outcomes()))),
        (["outcomes"], "POST") => {
            let rule: OutcomeRule = parse_required(body)?;
            let id = c.add_outcome(rule.clone())?;
            Ok((201, with_id(id, &rule)))
        }
        (["outcomes"], "DELETE") => {
            c.clear_outcomes();
            Ok((200, json!({"items": []})))
        }
        (["metrics"], "GET") => Ok((200, rules_json(&lock(&c.metrics).items))),
        (["metrics"], "POST") => {
            let rule: MetricRule = parse_required(body)?;
            let id = c.add_metric(rule.clone());
            Ok((201, with_id(id, &rule)))
        }
        (["metrics"], "DELETE") => {
            c.clear_metrics();
            Ok((200, json!({"items": []})))
        }
        (
            []
            | ["cluster"]
            | ["faults"]
            | ["faults", ..]
            | ["watches", "cut" | "expire"]
            | ["pause"]
            | ["resume"]
            | ["compact"]
            | ["outcomes"]
            | ["metrics"],
            _,
        ) => not_allowed(),
        _ => Err(ApiError::no_route()),
    }
}

fn with_id<T: Serialize>(id: u64, rule: &T) -> Value {
    let mut v = to_json(rule);
    if let Value::Object(m) = &mut v {
        m.insert("id".into(), json!(id));
    }
    v
}

fn rules_json<T: Serialize>(items: &[(u64, T)]) -> Value {
    json!({"items": items.iter().map(|(id, r)| with_id(*id, r)).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Knobs;

    fn control() -> std::sync::Arc<Control> {
        Control::new(Knobs::default(), vec![], Box::new(|| {}))
    }

    #[test]
    fn http_control_requests() {
        let c = control();
        let (code, v) = handle(&c, "POST", "/faults", br#"{"status": 500, "times": 1}"#).unwrap();
        assert_eq!((code, v["id"].as_u64()), (201, Some(1)));
        assert_eq!(
            handle(&c, "GET", "/faults", b"").unwrap().1["items"][0]["status"],
            500
        );
        assert_eq!(handle(&c, "DELETE", "/faults/1", b"").unwrap().0, 200);
        assert_eq!(
            handle(&c, "DELETE", "/faults/1", b"").unwrap_err().code,
            404
        );
        assert_eq!(
            handle(&c, "POST", "/faults", br#"{"bogus": 1}"#)
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(handle(&c, "PUT", "/faults", b"").unwrap_err().code, 405);
        assert_eq!(handle(&c, "GET", "/nothing", b"").unwrap_err().code, 404);
        let (_, v) = handle(&c, "PATCH", "/cluster", br#"{"podStartDelayMs": 5}"#).unwrap();
        assert_eq!(v["knobs"]["podStartDelayMs"], 5);
        assert_eq!(c.knobs().pod_start_delay, Duration::from_millis(5));
    }
}
