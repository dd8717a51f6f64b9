//! Bridges a plugin's `host.log` calls into `tracing`, rate-limited per call.

use std::sync::Arc;

use super::bindings::types::LogLevel;

/// Longest line a plugin may write; longer ones are cut.
const MAX_LINE_BYTES: usize = 2048;

/// The log of one plugin call.
pub(crate) struct LogBridge {
    plugin: Arc<str>,
    object: Arc<str>,
    max_lines: u32,
    written: u32,
    dropped: u32,
}

impl LogBridge {
    pub(crate) fn new(plugin: Arc<str>, object: Arc<str>, max_lines: u32) -> Self {
        LogBridge {
            plugin,
            object,
            max_lines,
            written: 0,
            dropped: 0,
        }
    }

    /// Lines the plugin wrote past its limit.
    pub(crate) fn dropped(&self) -> u32 {
        self.dropped
    }

    pub(crate) fn write(&mut self, level: LogLevel, message: &str) {
        if self.written >= self.max_lines {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.written += 1;
        let line = sanitize(message);
        let (plugin, object) = (&*self.plugin, &*self.object);
        match level {
            LogLevel::Trace => tracing::trace!(target: "plugin", plugin, object, "{line}"),
            LogLevel::Debug => tracing::debug!(target: "plugin", plugin, object, "{line}"),
            LogLevel::Info => tracing::info!(target: "plugin", plugin, object, "{line}"),
            LogLevel::Warn => tracing::warn!(target: "plugin", plugin, object, "{line}"),
            LogLevel::Error => tracing::error!(target: "plugin", plugin, object, "{line}"),
        }
    }
}

/// One line, at most [`MAX_LINE_BYTES`], with control characters escaped so
/// that a plugin cannot forge log lines of its own.
fn sanitize(message: &str) -> String {
    let mut line = String::with_capacity(message.len().min(MAX_LINE_BYTES));
    for c in message.chars() {
        if line.len() >= MAX_LINE_BYTES {
            line.push_str("… (cut)");
            break;
        }
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_limit_are_counted_not_written() {
        let mut bridge = LogBridge::new("p@1.0.0".into(), "ns/app".into(), 2);
        for _ in 0..5 {
            bridge.write(LogLevel::Info, "hello");
        }
        assert_eq!(bridge.written, 2);
        assert_eq!(bridge.dropped(), 3);
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        assert_eq!(sanitize("a\nlevel=ERROR b"), "a\\nlevel=ERROR b");
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let line = sanitize(&"é".repeat(5000));
        assert!(line.len() <= MAX_LINE_BYTES + "… (cut)".len() + 2);
        assert!(line.ends_with("… (cut)"));
    }
}
