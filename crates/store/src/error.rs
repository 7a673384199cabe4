//! The store's error type.

/// What went wrong in the store. `Database` and `Corrupt` are the store's own failures;
/// the others describe the request and are safe to show to the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The caller may see the thing but not do this to it (a rule, not a missing right).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Invalid(#[from] domain::Error),
    #[error(transparent)]
    Rollback(#[from] domain::RollbackRefused),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl Error {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Error {
        Error::Corrupt(what.to_string())
    }
}

/// Turns a unique-constraint violation into `Conflict(message)`; other errors pass through.
pub(crate) fn conflict_on_unique(err: sqlx::Error, message: impl FnOnce() -> String) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict(message()),
        _ => Error::Database(err),
    }
}
