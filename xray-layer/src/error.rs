//! [`Error`]: why [`Builder::build`](crate::Builder::build) failed.

use crate::store::StoreError;
use std::fmt;

/// Why X-Ray could not start. Returned by [`Builder::build`](crate::Builder::build), never
/// raised later on a background thread.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The store could not be opened: an unwritable path, a file that is not an X-Ray database,
    /// or a database written by a newer X-Ray.
    Store(StoreError),
    /// An `XRAY_*` environment variable has a value X-Ray cannot use.
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it should look like.
        expected: &'static str,
    },
    /// The writer thread could not be started.
    Spawn(std::io::Error),
    /// The OTLP endpoint cannot be used (feature `otlp`): not an http(s) URL, or https without
    /// the `remote-tls` feature.
    Otlp(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Store(e) => write!(f, "X-Ray cannot open its store: {e}"),
            Error::Env {
                var,
                value,
                expected,
            } => write!(f, "{var}={value:?} is not valid: expected {expected}"),
            Error::Spawn(e) => write!(f, "X-Ray cannot start its writer thread: {e}"),
            Error::Otlp(why) => write!(f, "X-Ray cannot export to OTLP: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Store(e) => Some(e),
            Error::Spawn(e) => Some(e),
            Error::Env { .. } | Error::Otlp(_) => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}
