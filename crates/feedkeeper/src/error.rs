//! The one place that knows HTTP status codes for failures, and the one place they are logged.

use askama::Template;
use axum::http::StatusCode;
use axum::http::header::{LOCATION, RETRY_AFTER};
use axum::response::{Html, IntoResponse, Response};

use crate::accounts::page::{Page, page_headers};
use crate::accounts::redirect::login_url;
use crate::db::DbError;

/// A failed request, as the handler sees it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    /// The request itself is wrong; the message is shown to the caller.
    #[error("{0}")]
    BadRequest(String),
    /// A dashboard page needs a logged-in user and there is none: a 303 to
    /// `/login?next=<next>` (`next` is the path and query asked for). The `CurrentUser`
    /// extractor returns this for GET and HEAD only.
    #[error("log-in required")]
    LoginRequired { next: String },
    /// A request that would change something came without a live session: 401, with a page
    /// linking to the log-in.
    #[error("not logged in")]
    Unauthorized,
    /// Refused, for a reason shown to the user (403), e.g. a form without a valid CSRF token.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Too many attempts (the log-in rate limit): 429 with `Retry-After`, and a page saying how
    /// long to wait.
    #[error("too many requests; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// A form sent back with what was wrong and the user's input kept (422). The handler renders
    /// the page (`accounts::page::render_html`); this only gives it its status and headers.
    #[error("the form was refused")]
    InvalidForm(Html<String>),
    /// A dependency (database, Meta) cannot answer right now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<DbError> for AppError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::NotFound => AppError::NotFound,
            other => AppError::Internal(other.into()),
        }
    }
}

/// The page for refusals a person reads: a sentence, and where to go from here.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: Page,
    message: String,
    link_href: String,
    link_label: &'static str,
}

fn error_page(
    status: StatusCode,
    title: &str,
    message: String,
    link_href: String,
    link_label: &'static str,
) -> Response {
    let page = ErrorPage {
        page: Page::public(title, ""),
        message,
        link_href,
        link_label,
    };
    match page.render() {
        Ok(html) => (status, page_headers(), Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the error page does not render");
            (status, page.message).into_response()
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            AppError::NotFound => {
                // The same page for a mistyped address, a deleted item and another person's id.
                return error_page(
                    StatusCode::NOT_FOUND,
                    "Page not found",
                    "There is nothing here. The address may be mistyped, or what it showed was \
                     deleted."
                        .into(),
                    "/".into(),
                    "Go to the start page",
                );
            }
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            AppError::LoginRequired { next } => {
                // 303, like every redirect of ours: the next request is a GET.
                return (
                    StatusCode::SEE_OTHER,
                    [(LOCATION, login_url(Some(&next)))],
                    page_headers(),
                )
                    .into_response();
            }
            AppError::Unauthorized => {
                return error_page(
                    StatusCode::UNAUTHORIZED,
                    "Logged out",
                    "You are not logged in, or your session has ended, so nothing was changed. \
                     Log in and try again."
                        .into(),
                    "/login".into(),
                    "Log in",
                );
            }
            AppError::Forbidden(message) => {
                return error_page(
                    StatusCode::FORBIDDEN,
                    "Not allowed",
                    message,
                    "/".into(),
                    "Home",
                );
            }
            AppError::TooManyRequests { retry_after_secs } => {
                let minutes = retry_after_secs.div_ceil(60).max(1);
                let wait = if minutes == 1 {
                    "1 minute".to_owned()
                } else {
                    format!("{minutes} minutes")
                };
                let mut response = error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts",
                    format!("Too many failed attempts. Please wait {wait} and try again."),
                    "/login".into(),
                    "Back to log in",
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, retry_after_secs.into());
                return response;
            }
            AppError::InvalidForm(page) => {
                return (StatusCode::UNPROCESSABLE_ENTITY, page_headers(), page).into_response();
            }
            AppError::Unavailable(m) => {
                tracing::warn!(error = %m, "dependency unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily unavailable".to_owned(),
                )
            }
            AppError::Internal(e) => {
                // Full detail in the log; none of it (paths, SQL, tokens) in the reply.
                tracing::error!(error = ?e, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        (status, message).into_response()
    }
}

/// Renders a page template to HTML (for [`AppError::InvalidForm`] and for responses that add
/// their own headers, e.g. a cookie).
pub fn render_html<T: Template>(template: &T) -> Result<Html<String>, AppError> {
    Ok(Html(template.render().map_err(anyhow::Error::from)?))
}

/// A form sent back with its error message and the user's input (a 422): the error a handler
/// returns for bad input. A failure to render becomes that error instead.
pub fn invalid_form<T: Template>(template: &T) -> AppError {
    match render_html(template) {
        Ok(html) => AppError::InvalidForm(html),
        Err(e) => e,
    }
}

/// Renders a page template into a 200 response with [`page_headers`].
pub fn render<T: Template>(template: &T) -> Result<Response, AppError> {
    Ok((page_headers(), render_html(template)?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_get_their_status_and_headers() {
        let r = AppError::LoginRequired {
            next: "/links?x=1".into(),
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[LOCATION], "/login?next=%2Flinks%3Fx%3D1");

        let r = AppError::TooManyRequests {
            retry_after_secs: 61,
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[RETRY_AFTER], "61");

        assert_eq!(
            AppError::Unauthorized.into_response().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            AppError::Forbidden("no".into()).into_response().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            AppError::InvalidForm(Html("<p>x</p>".into()))
                .into_response()
                .status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
