//! Shared helpers of the built-in migration strategies.
