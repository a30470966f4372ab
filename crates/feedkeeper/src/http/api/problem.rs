//! The API's one error shape, `application/problem+json` (RFC 9457), and the extractors that
//! turn every malformed request (JSON, query, path, method) into one.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::db::DbError;

/// A problem document: what went wrong, for people (`title`, `detail`) and programs (`status`,
/// `type`, and per field in `errors`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// One entry per field that was refused (requests with a body).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
}

/// What is wrong with one field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// A failed API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, another owner's, or deleted: always the same answer.
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    /// The body is JSON but not what this route takes, or a value is out of range.
    #[error("{detail}")]
    Invalid {
        detail: String,
        errors: Vec<FieldProblem>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("too many requests")]
    TooManyRequests {
        retry_after_secs: u64,
        detail: String,
    },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A refusal of one field.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::Invalid {
            detail: message.clone(),
            errors: vec![FieldProblem {
                field: field.to_owned(),
                message,
            }],
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::NotFound => ApiError::NotFound,
            other => ApiError::Internal(other.into()),
        }
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, title, detail, errors) = match self {
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing with this id among your things.".to_owned(),
                vec![],
            ),
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "Bad request", d, vec![]),
            ApiError::Invalid { detail, errors } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid request",
                detail,
                errors,
            ),
            ApiError::Unauthorized(d) => (StatusCode::UNAUTHORIZED, "Unauthorized", d, vec![]),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, "Conflict", d, vec![]),
            ApiError::UnsupportedMediaType(d) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                d,
                vec![],
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "This address does not take this method; see /api/v1/openapi.json.".to_owned(),
                vec![],
            ),
            ApiError::TooManyRequests {
                retry_after_secs,
                detail,
            } => {
                let mut r = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many requests",
                    detail,
                    vec![],
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
                return r;
            }
            ApiError::Unavailable(m) => {
                tracing::warn!(error = %m, "dependency unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    "Temporarily unavailable; retry shortly.".to_owned(),
                    vec![],
                )
            }
            ApiError::Internal(e) => {
                // Full detail in the log; none of it (SQL, tokens) in the answer.
                tracing::error!(error = ?e, "API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error",
                    "Something went wrong on our side; the request id is in X-Request-Id."
                        .to_owned(),
                    vec![],
                )
            }
        };
        let unauthorized = status == StatusCode::UNAUTHORIZED;
        let mut r = problem(status, title, detail, errors);
        if unauthorized {
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

fn problem(status: StatusCode, title: &str, detail: String, errors: Vec<FieldProblem>) -> Response {
    let body = Problem {
        kind: "about:blank".to_owned(),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
        errors,
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        json,
    )
        .into_response()
}

/// Every answer under `/api/v1/` leaves as the API promises, whatever layer made it: never
/// cached (some carry a new link's address or an endpoint's secret), and every refusal a problem
/// document, also those made by the edge before the API saw the request (a body too large or
/// too slow, the request timeout, a panic, a full node). The outermost layer of the edge.
pub async fn api_answers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let api = path == "/api/v1" || path.starts_with("/api/v1/");
    let mut response = next.run(request).await;
    if !api {
        return response;
    }
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    let status = response.status();
    let is_problem = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if status.as_u16() < 400 || is_problem {
        return response;
    }
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large.",
        StatusCode::REQUEST_TIMEOUT => "The request took too long: send it again.",
        StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable; retry shortly.",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests; retry later.",
        s if s.is_server_error() => {
            "Something went wrong on our side; the request id is in X-Request-Id."
        }
        _ => "The request was refused.",
    };
    let (mut parts, _) = response.into_parts();
    let mut rewritten = problem(
        status,
        status.canonical_reason().unwrap_or("Error"),
        detail.to_owned(),
        vec![],
    );
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    *rewritten.headers_mut() = parts.headers;
    rewritten
}

/// A JSON body, with every refusal a problem document: no or another content type (415),
/// malformed JSON (400), unknown fields, missing fields and wrong types (422, naming the field).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "Send the body as JSON, with Content-Type: application/json.".to_owned(),
        ),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::BadRequest(format!("The body is not valid JSON: {}", source_text(&e)))
        }
        JsonRejection::JsonDataError(e) => {
            let detail = source_text(&e);
            // serde names the field as "field_name: message" or inside the message.
            let field = detail
                .split_once(": ")
                .map(|(path, _)| path.to_owned())
                .filter(|p| !p.contains(' '))
                .unwrap_or_else(|| "body".to_owned());
            ApiError::Invalid {
                detail: format!("The body does not fit this request: {detail}"),
                errors: vec![FieldProblem {
                    field,
                    message: detail,
                }],
            }
        }
        other => ApiError::BadRequest(format!("The body could not be read: {}", other.body_text())),
    }
}

/// The innermost message of an error (serde's, without axum's wrapping).
fn source_text(e: &dyn std::error::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// A query string, refused with a problem document (400) when it does not fit.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::BadRequest(
                format!("The query string does not fit: {}", source_text(&e)),
            )),
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// A numeric id from the path (`{id}`): anything else is a 404, like an id nobody owns.
pub struct ApiId<T>(pub T);

impl<T: std::str::FromStr + Send, S: Send + Sync> FromRequestParts<S> for ApiId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        raw.parse().map(ApiId).map_err(|_| ApiError::NotFound)
    }
}

/// Unknown addresses under `/api/`.
pub async fn no_such_route() -> ApiError {
    ApiError::NotFound
}

/// A known address with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
