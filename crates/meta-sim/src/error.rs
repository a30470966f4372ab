//! Errors of the Rust and control APIs (not of the simulated Meta hosts, whose error bodies
//! are part of the simulation and live in `graph::error` and the OAuth handlers).

/// Why a control action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No account has this username.
    #[error("unknown account `{0}`")]
    UnknownAccount(String),
    /// An account with this username already exists.
    #[error("account `{0}` already exists")]
    AccountExists(String),
    /// No media (or carousel child) has this id, or it was deleted.
    #[error("unknown media `{0}`")]
    UnknownMedia(String),
    /// The input is malformed or out of range.
    #[error("{0}")]
    Invalid(String),
}

impl SimError {
    /// The HTTP status the control API answers with.
    pub fn status(&self) -> u16 {
        match self {
            SimError::UnknownAccount(_) | SimError::UnknownMedia(_) => 404,
            SimError::AccountExists(_) => 409,
            SimError::Invalid(_) => 400,
        }
    }
}
