//! The error of a parameter a client sent (a query parameter, a vocabulary), in its own file so
//! that the protocol's parts can name it without importing each other.

/// A parameter that cannot be used; the message names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);
