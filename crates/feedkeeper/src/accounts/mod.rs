//! Dashboard accounts: users, passwords, login sessions, CSRF tokens and the login rate limit.
//!
//! Owns who is logged in and whether a form really came from our own page. It must not know about
//! connections, widgets or Meta, and it never stores a plain password or a raw session token.
//!
//! # Using it from a dashboard handler
//!
//! ```text
//! use crate::accounts::{CurrentUser, Page};
//! use crate::error::render;
//!
//! #[derive(askama::Template)]
//! #[template(path = "connections.html")]   // {% extends "layout.html" %}
//! struct ConnectionsPage { page: Page, /* your fields */ }
//!
//! // GET: a missing or ended session redirects to /login?next=<this path>.
//! async fn list(user: CurrentUser) -> Result<Response, AppError> {
//!     render(&ConnectionsPage { page: Page::for_user(&user, "Connections") })
//! }
//!
//! // POST: a missing or ended session is a 401; a bad CSRF token a 403.
//! async fn remove(State(state): State<AppState>, user: CurrentUser, Form(form): Form<RemoveForm>)
//!     -> Result<Redirect, AppError> {
//!     user.verify_csrf(&form.csrf)?;
//!     // ... do it ...
//!     user.flash(&state, "Connection removed.").await?;
//!     Ok(Redirect::to("/connections"))
//! }
//! ```
//!
//! Templates extend `layout.html` and get everything it needs from a field named `page` of type
//! [`Page`]: the title, the user's email (the nav and the logout button show only when it is set),
//! the CSRF token and a one-time flash message. Put the token in every form as
//! `<input type="hidden" name="csrf" value="{{ page.csrf }}">` (it is also `user.csrf`). The
//! layout's blocks: `content` (the page body) and `head` (extra `<head>` tags, optional).
//! `Option<CurrentUser>` works as an extractor too, for pages that anyone may see.
//!
//! # Lifetimes and limits
//!
//! - A session ends after [`session::IDLE_LIFETIME_SECS`] (30 days) without a request, or
//!   [`session::ABSOLUTE_LIFETIME_SECS`] (90 days) after log-in, whichever comes first; on
//!   log-out; and, for every other session of the user, on a password change.
//! - Log-in is refused for [`rate_limit::WINDOW_SECS`] (15 minutes) after
//!   [`rate_limit::MAX_FAILURES_PER_EMAIL`] (10) failures for one email or
//!   [`rate_limit::MAX_FAILURES_PER_ADDRESS`] (30) from one client address (IPv6: its /64).
//! - Sign-up and log-in forms are protected by a pre-login token
//!   ([`csrf::prelogin_token`]): a random browser id in a `fk_prelogin` cookie, and in the form
//!   that id sealed with the token key together with its issue time (valid 2 hours).

pub mod api_keys;
pub mod csrf;
pub mod email;
pub mod organisation;
pub mod page;
pub mod password;
pub mod rate_limit;
pub mod recovery;
pub mod redirect;
pub mod session;

pub use email::Email;
pub use page::Page;
pub use session::CurrentUser;
