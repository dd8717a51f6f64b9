//! Write to the operator's log (the one host function a plugin may call).
//!
//! Outside WebAssembly (native unit tests and benchmarks of plugin logic)
//! there is no host, so these do nothing.

use crate::LogLevel;

/// Write one line at `level`.
pub fn write(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::generator::portfolio::plugin::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, message);
}

/// Write a debug line.
pub fn debug(message: &str) {
    write(LogLevel::Debug, message);
}

/// Write an info line.
pub fn info(message: &str) {
    write(LogLevel::Info, message);
}

/// Write a warning.
pub fn warn(message: &str) {
    write(LogLevel::Warn, message);
}
