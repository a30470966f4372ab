//! The dashboard: pages for logged-in users (and the sign-up and log-in pages before that).
//!
//! One module per area; each handler takes `accounts::CurrentUser` and renders templates that
//! extend `layout.html` (see `crate::accounts`). Routes are listed in `http/mod.rs`.

pub mod account;
pub mod api_keys;
pub mod assets;
pub mod auth;
pub mod connections;
pub mod links;
pub mod mail;
pub mod recovery;
pub mod system;
pub mod webhooks;
pub mod widgets;
