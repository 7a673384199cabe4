//! Shared helpers for the crate's data-driven tests.

/// Renders a parse result the way snapshots show it: the value's `Display`, or `error: ...`.
pub(crate) fn show<T: std::fmt::Display>(result: Result<T, crate::Error>) -> String {
    match result {
        Ok(value) => value.to_string(),
        Err(err) => format!("error: {err}"),
    }
}
