//! Watch responses: the initial events, then the live feed as JSON lines (or one-row Tables
//! for `kubectl get -w`), bookmarks, the timeout, cut watches and pauses.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::ServerState;
use super::response::{Shape, partial};
use crate::api::{Api, Filter, ListOptions, WatchItem, watch_line};
use crate::control::PauseMode;
use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::store::Event;
use crate::table::table;

/// Where one watch stream is.
struct WatchState {
    initial: VecDeque<String>,
    rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
    filter: Filter,
    rt: Arc<ResourceType>,
    last_rv: u64,
    bookmarks: Option<tokio::time::Interval>,
    deadline: tokio::time::Instant,
    cut: tokio::sync::watch::Receiver<u64>,
    pause: tokio::sync::watch::Receiver<Option<PauseMode>>,
    shape: Shape,
}

/// One watch line; `kubectl get -w` watches Tables, so each event then carries a one-row Table;
/// a metadata watch gets each object (a bookmark's too) as `PartialObjectMetadata`.
fn event_line(rt: &ResourceType, item: &WatchItem, shape: Shape) -> String {
    if shape == Shape::Metadata
        && matches!(item.kind, "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK")
    {
        return watch_line(&WatchItem {
            kind: item.kind,
            object: partial(&item.object),
        });
    }
    if shape == Shape::Table && matches!(item.kind, "ADDED" | "MODIFIED" | "DELETED") {
        let rv = item
            .object
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(json!(""));
        let t = table(
            rt,
            std::slice::from_ref(&item.object),
            json!({"resourceVersion": rv}),
        );
        return watch_line(&WatchItem {
            kind: item.kind,
            object: t,
        });
    }
    watch_line(item)
}

/// A watch answered as Kubernetes' watch cache answers a compacted resourceVersion: one
/// `ERROR` event carrying a 410 `Expired` Status, then the end of the stream.
pub(super) fn expired_watch(api: &Api) -> Response {
    let rv = api.current_rv();
    let status =
        ApiError::expired(format!("too old resource version: {rv} ({})", rv + 1)).to_status();
    let line = watch_line(&WatchItem {
        kind: "ERROR",
        object: status,
    });
    let mut resp = Response::new(Body::from(line));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Starts a watch and streams it.
pub(super) fn watch_response(
    state: &Arc<ServerState>,
    rt: Arc<ResourceType>,
    ns: Option<&str>,
    lo: ListOptions,
    timeout: Duration,
    shape: Shape,
) -> Result<Response, ApiError> {
    let (w, filter) = state.api.watch(&rt, ns, &lo)?;
    let mut initial: VecDeque<String> = w
        .initial
        .iter()
        .map(|i| event_line(&rt, i, shape))
        .collect();
    if w.initial_end_bookmark {
        initial.push_back(event_line(&rt, &Api::bookmark(&rt, w.rv, true), shape));
    }
    let bookmarks = lo.allow_bookmarks.then(|| {
        let mut i = tokio::time::interval_at(
            tokio::time::Instant::now() + state.bookmark_interval,
            state.bookmark_interval,
        );
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let cut = state.control.watch_cuts();
    let pause = state.control.pause_watch();
    let st = WatchState {
        initial,
        rx: w.rx,
        filter,
        rt,
        last_rv: w.rv,
        bookmarks,
        deadline: tokio::time::Instant::now() + timeout,
        cut,
        pause,
        shape,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        let line = match st.initial.pop_front() {
            Some(line) => line,
            None => loop {
                tokio::select! {
                    r = st.rx.recv() => match r {
                        Ok(e) => {
                            st.last_rv = st.last_rv.max(e.rv);
                            if st.shape == Shape::Object {
                                if let Some(kind) = st.filter.event_type(&e) {
                                    break st.filter.line(&e, kind);
                                }
                            } else if let Some(item) = st.filter.apply(&e) {
                                break event_line(&st.rt, &item, st.shape);
                            }
                        }
                        // A watcher this far behind is closed; the client re-lists, as with Kubernetes.
                        Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
                    },
                    _ = async { match st.bookmarks.as_mut() { Some(i) => { i.tick().await; } None => std::future::pending::<()>().await } } => {
                        break event_line(&st.rt, &Api::bookmark(&st.rt, st.last_rv, false), st.shape);
                    }
                    _ = tokio::time::sleep_until(st.deadline) => return None,
                    _ = st.cut.changed() => return None,
                }
            },
        };
        // A paused server sends nothing, on open watches too: the event waits for the resume.
        while st.pause.borrow_and_update().is_some() {
            tokio::select! {
                r = st.pause.changed() => if r.is_err() { return None },
                _ = st.cut.changed() => return None,
            }
        }
        Some((Ok::<_, std::io::Error>(Bytes::from(line)), st))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
