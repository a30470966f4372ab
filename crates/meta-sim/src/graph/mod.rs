//! What graph.instagram.com and graph.facebook.com share: the error envelope, the `fields`
//! syntax, token authentication, and rendering of user/media nodes with paging.

pub(crate) mod auth;
pub(crate) mod error;
pub(crate) mod fields;
pub(crate) mod render;
pub(crate) mod versions;

pub(crate) use error::GraphError;
