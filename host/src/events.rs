//! The one Event publisher: every controller and the plugin registry record
//! Events through it, with one rule for notes that are too long.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

/// Kubernetes refuses an Event whose note is longer than 1 kB.
pub const NOTE_MAX_BYTES: usize = 1024;

/// `text` cut to at most [`NOTE_MAX_BYTES`] bytes on a character boundary,
/// with `…` marking the cut.
pub fn note(text: &str) -> String {
    if text.len() <= NOTE_MAX_BYTES {
        return text.to_owned();
    }
    let mut end = NOTE_MAX_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Whether an Event is news or trouble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Something happened as it should.
    Normal,
    /// Something needs a person's attention.
    Warning,
}

/// Record an Event about `object`. An Event is a courtesy: failing to record
/// one is logged, never a failed reconcile.
pub async fn publish(
    recorder: &Recorder,
    object: &ObjectReference,
    severity: Severity,
    reason: &str,
    action: &str,
    message: &str,
) {
    let event = Event {
        type_: match severity {
            Severity::Normal => EventType::Normal,
            Severity::Warning => EventType::Warning,
        },
        reason: reason.to_owned(),
        note: Some(note(message)),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, object).await {
        tracing::warn!(
            object = %format!(
                "{} {}/{}",
                object.kind.as_deref().unwrap_or_default(),
                object.namespace.as_deref().unwrap_or_default(),
                object.name.as_deref().unwrap_or_default()
            ),
            reason,
            error = %crate::failure::describe_api_error(&error),
            "cannot record an event"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_fit_the_api_servers_limit() {
        assert_eq!(note("short"), "short");
        let exact = "a".repeat(NOTE_MAX_BYTES);
        assert_eq!(note(&exact), exact);
        let long = "é".repeat(NOTE_MAX_BYTES);
        let cut = note(&long);
        assert!(cut.len() <= NOTE_MAX_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.starts_with("éé"));
    }
}
