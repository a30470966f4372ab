//! The Graph error envelope (`{"error":{message,type,code,error_subcode,…,fbtrace_id}}`) and
//! the exact wordings the simulator uses for each case.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::timestamp::pacific_wording;

/// An error as graph.instagram.com / graph.facebook.com return it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GraphError {
    pub(crate) status: u16,
    pub(crate) code: u32,
    pub(crate) subcode: Option<u32>,
    pub(crate) message: String,
    pub(crate) kind: &'static str,
    pub(crate) is_transient: Option<bool>,
    pub(crate) error_data: Option<Value>,
}

impl GraphError {
    /// HTTP 400 unless the code says otherwise (4 → 403, 2 → 500).
    pub(crate) fn new(code: u32, message: impl Into<String>) -> Self {
        let status = match code {
            4 => 403,
            1 | 2 => 500,
            _ => 400,
        };
        Self {
            status,
            code,
            subcode: None,
            message: message.into(),
            kind: "OAuthException",
            is_transient: None,
            error_data: None,
        }
    }

    pub(crate) fn with_subcode(mut self, subcode: u32) -> Self {
        self.subcode = Some(subcode);
        self
    }

    pub(crate) fn transient(mut self, transient: bool) -> Self {
        self.is_transient = Some(transient);
        self
    }

    pub(crate) fn with_data(mut self, data: Value) -> Self {
        self.error_data = Some(data);
        self
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub(crate) fn with_kind(mut self, kind: &'static str) -> Self {
        self.kind = kind;
        self
    }

    /// No token at all.
    pub(crate) fn missing_token() -> Self {
        Self::new(
            2500,
            "An active access token must be used to query information about the current user.",
        )
    }

    /// Unknown, garbled, or wrong-host token.
    pub(crate) fn cannot_parse() -> Self {
        Self::new(
            190,
            "Invalid OAuth access token - Cannot parse access token",
        )
    }

    /// 190/463 with Meta's Pacific-time wording.
    pub(crate) fn expired(expired_at: i64, now: i64) -> Self {
        Self::new(
            190,
            format!(
                "Error validating access token: Session has expired on {}. The current time is {}.",
                pacific_wording(expired_at),
                pacific_wording(now)
            ),
        )
        .with_subcode(463)
    }

    /// Code 10: the token lacks an Instagram permission (or the account is personal).
    pub(crate) fn no_permission() -> Self {
        Self::new(
            10,
            "(#10) Application does not have permission for this action",
        )
    }

    /// Code 200: the token lacks a Pages permission.
    pub(crate) fn permissions_error(scope: &str) -> Self {
        Self::new(
            200,
            format!("(#200) Permissions error: this call requires the {scope} permission"),
        )
    }

    pub(crate) fn nonexisting_field(field: &str, node: &str) -> Self {
        Self::new(
            100,
            format!("(#100) Tried accessing nonexisting field ({field}) on node type ({node})"),
        )
    }

    /// 100/33: unknown id, someone else's object, or deleted.
    pub(crate) fn no_object(id: &str, method: &str) -> Self {
        Self::new(
            100,
            format!(
                "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
            ),
        )
        .with_subcode(33)
        .with_kind("GraphMethodException")
    }

    /// Wrong HTTP method (e.g. POST on `refresh_access_token`).
    pub(crate) fn unsupported_method(method: &str) -> Self {
        Self::new(
            100,
            format!(
                "Unsupported request - method type: {}",
                method.to_ascii_lowercase()
            ),
        )
    }

    pub(crate) fn unknown_path(path: &str) -> Self {
        Self::new(2500, format!("Unknown path components: {path}"))
    }

    pub(crate) fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(100, format!("(#100) {}", message.into()))
    }

    pub(crate) fn bad_client_secret() -> Self {
        Self::new(1, "Error validating client secret.").with_status(400)
    }

    pub(crate) fn transient_outage() -> Self {
        Self::new(
            2,
            "An unexpected error has occurred. Please retry your request later.",
        )
        .transient(true)
    }

    /// The `error` object (without the envelope).
    pub(crate) fn object(&self, trace_id: &str) -> Value {
        let mut e = json!({
            "message": self.message,
            "type": self.kind,
            "code": self.code,
        });
        if let Some(s) = self.subcode {
            e["error_subcode"] = json!(s);
        }
        if let Some(t) = self.is_transient {
            e["is_transient"] = json!(t);
        }
        if let Some(d) = &self.error_data {
            e["error_data"] = d.clone();
        }
        e["fbtrace_id"] = json!(trace_id);
        e
    }

    /// The full HTTP response.
    pub(crate) fn response(
        &self,
        trace_id: &str,
        extra: Vec<(HeaderName, HeaderValue)>,
    ) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = json!({"error": self.object(trace_id)}).to_string();
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
            body,
        )
            .into_response();
        let headers = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(trace_id) {
            headers.insert("x-fb-trace-id", v);
        }
        if matches!(self.code, 190 | 2500) {
            headers.insert(
                "www-authenticate",
                HeaderValue::from_static("OAuth \"Facebook Platform\" \"invalid_token\""),
            );
        }
        for (k, v) in extra {
            headers.insert(k, v);
        }
        resp
    }
}
