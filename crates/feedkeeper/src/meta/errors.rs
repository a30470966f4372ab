//! Every failure of a Meta call, classified into what to do about it.
//!
//! Callers branch on [`Action`], never on Meta's numeric codes: that knowledge lives here only.
//! Messages are scrubbed of anything token-like before they are stored or shown.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::usage::Usage;
use crate::clock::UnixSeconds;

/// What the caller should do after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// The token is dead; only the account holder logging in again fixes it.
    Reconnect { reason: ReconnectReason },
    /// Meta is throttling us: make no call for this account (or app) before `until`.
    BackOff { until: UnixSeconds },
    /// A passing fault (5xx, timeout, garbled reply): try again later, with back-off.
    Retry,
    /// The object asked for by id no longer exists (a deleted post): stop asking for it. Only
    /// calls about one object by id give this (Meta's "does not exist" also answers a wrong
    /// edge name, which is our bug, not deleted content).
    Gone,
    /// Our request is wrong; retrying will not help. Worth an operator's look.
    Bug,
    /// The app's configuration is wrong (secret, id, app mode): only the operator can fix it, and
    /// it says nothing about the account holder's login.
    Operator { problem: OperatorProblem },
}

/// A configuration problem of the Meta app itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorProblem {
    /// Meta rejects the app id or app secret (`Error validating client secret`, `Invalid OAuth
    /// access token signature` on the app token, `Invalid platform app`).
    AppCredentials,
    /// The app is in Development mode (or not switched to Live), so only its testers may use it.
    AppNotLive,
    /// The app was deleted or disabled on Meta's side.
    AppDisabled,
}

impl OperatorProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorProblem::AppCredentials => "app_credentials",
            OperatorProblem::AppNotLive => "app_not_live",
            OperatorProblem::AppDisabled => "app_disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            OperatorProblem::AppCredentials,
            OperatorProblem::AppNotLive,
            OperatorProblem::AppDisabled,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    /// What the operator should do, in plain words.
    pub fn describe(self) -> &'static str {
        match self {
            OperatorProblem::AppCredentials => {
                "Meta rejects the app id or app secret in feedkeeper's configuration. Copy them \
                 again from the Meta App Dashboard (the Instagram ones under Instagram → API setup \
                 with Instagram login; the Facebook ones under App settings → Basic)."
            }
            OperatorProblem::AppNotLive => {
                "The Meta app is in Development mode, so only its testers can use it. Add the \
                 account as a tester, or switch the app to Live in the Meta App Dashboard."
            }
            OperatorProblem::AppDisabled => {
                "Meta reports the app as deleted or disabled. Check it in the Meta App Dashboard."
            }
        }
    }
}

/// A Meta message that is about our app's configuration, not the person's login.
fn operator_problem_in(lower_message: &str) -> Option<OperatorProblem> {
    const CREDENTIALS: [&str; 5] = [
        "error validating client secret",
        "invalid oauth access token signature",
        "error validating application",
        "invalid application id",
        "invalid platform app",
    ];
    const NOT_LIVE: [&str; 4] = [
        "insufficient developer role",
        "invalid scope: []",
        "app not active",
        "in development mode",
    ];
    const DISABLED: [&str; 2] = ["application has been deleted", "app has been disabled"];
    let any = |needles: &[&str]| needles.iter().any(|n| lower_message.contains(n));
    if any(&DISABLED) {
        Some(OperatorProblem::AppDisabled)
    } else if any(&CREDENTIALS) {
        Some(OperatorProblem::AppCredentials)
    } else if any(&NOT_LIVE) {
        Some(OperatorProblem::AppNotLive)
    } else {
        None
    }
}

/// Why a connection needs its owner to log in again, in terms a person understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconnectReason {
    PasswordChanged,
    Expired,
    AppRemoved,
    Checkpoint,
    PermissionMissing,
    /// The account was switched to a personal one, which Meta's API does not serve.
    NotProfessional,
    /// The Instagram account is no longer linked to the Facebook Page it was connected through.
    Unlinked,
    Unknown,
}

impl ReconnectReason {
    /// The stored form (`password_changed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ReconnectReason::PasswordChanged => "password_changed",
            ReconnectReason::Expired => "expired",
            ReconnectReason::AppRemoved => "app_removed",
            ReconnectReason::Checkpoint => "checkpoint",
            ReconnectReason::PermissionMissing => "permission_missing",
            ReconnectReason::NotProfessional => "not_professional",
            ReconnectReason::Unlinked => "unlinked",
            ReconnectReason::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ReconnectReason::PasswordChanged,
            ReconnectReason::Expired,
            ReconnectReason::AppRemoved,
            ReconnectReason::Checkpoint,
            ReconnectReason::PermissionMissing,
            ReconnectReason::NotProfessional,
            ReconnectReason::Unlinked,
            ReconnectReason::Unknown,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// Plain words for the account holder.
    pub fn describe(self) -> &'static str {
        match self {
            ReconnectReason::PasswordChanged => {
                "the password was changed on Instagram (or Meta ended the session for security reasons)"
            }
            ReconnectReason::Expired => "the login expired before it could be renewed",
            ReconnectReason::AppRemoved => {
                "feedkeeper was removed from the account's connected apps"
            }
            ReconnectReason::Checkpoint => {
                "Instagram wants the account holder to confirm a login or fix something on the account"
            }
            ReconnectReason::PermissionMissing => {
                "a permission feedkeeper needs was not granted or was taken back"
            }
            ReconnectReason::NotProfessional => {
                "the account was switched to a personal account, which Instagram does not let apps \
                 show: switch it back to Business or Creator in the Instagram app, then reconnect"
            }
            ReconnectReason::Unlinked => {
                "the Instagram account is no longer linked to its Facebook Page as a professional \
                 account (it was unlinked, switched to personal, or deleted): link it again in the \
                 Instagram app, then reconnect"
            }
            ReconnectReason::Unknown => "Meta no longer accepts the login",
        }
    }
}

impl fmt::Display for ReconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What exactly failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// Meta answered with an error object (Graph envelope, the flat OAuth shape, or the legacy
    /// `meta` shape).
    Meta {
        http_status: u16,
        code: Option<i64>,
        subcode: Option<i64>,
        error_type: Option<String>,
        message: String,
        is_transient: Option<bool>,
        fbtrace_id: Option<String>,
    },
    /// A status without any error object we could read (an HTML error page, an empty body).
    Http {
        http_status: u16,
        body_start: String,
    },
    /// A success status, but the body is not what the endpoint promises.
    Malformed { http_status: u16, detail: String },
    /// No answer in time.
    Timeout,
    /// Could not connect or the connection broke.
    Network { detail: String },
    /// The user declined at the login dialog, or the redirect carried an error.
    Denied { reason: String, description: String },
    /// Something we refused to do before calling Meta (a token for the other host, a `next` URL
    /// pointing somewhere else, a callback without a code).
    Refused { detail: String },
    /// Meta answered, but the account is no longer one we can show (switched to personal,
    /// unlinked from its Facebook Page).
    AccountChanged { detail: String },
}

/// A failed Meta call: where, what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaError {
    /// A short name of the endpoint, e.g. `graph.instagram.com /me`.
    pub endpoint: &'static str,
    pub failure: Failure,
    pub action: Action,
}

impl MetaError {
    /// For a call about one object by id: Meta's "does not exist" means it was deleted.
    pub(crate) fn for_single_object(mut self) -> Self {
        if matches!(
            (self.code(), self.subcode()),
            (Some(100), Some(33)) | (Some(803), _)
        ) {
            self.action = Action::Gone;
        }
        self
    }

    /// Whether Meta refused the call because it does not know the field `name`
    /// (`(#100) Tried accessing nonexisting field (name) on node type (…)`).
    pub(crate) fn is_unknown_field(&self, name: &str) -> bool {
        match &self.failure {
            Failure::Meta {
                code: Some(100),
                message,
                ..
            } => message.contains(&format!("nonexisting field ({name})")),
            _ => false,
        }
    }

    pub fn code(&self) -> Option<i64> {
        match &self.failure {
            Failure::Meta { code, .. } => *code,
            _ => None,
        }
    }
    pub fn subcode(&self) -> Option<i64> {
        match &self.failure {
            Failure::Meta { subcode, .. } => *subcode,
            _ => None,
        }
    }
    pub fn message(&self) -> String {
        match &self.failure {
            Failure::Meta { message, .. } => message.clone(),
            Failure::Http {
                http_status,
                body_start,
            } => format!("HTTP {http_status}: {body_start}"),
            Failure::Malformed { detail, .. } => format!("unreadable reply: {detail}"),
            Failure::Timeout => "no reply in time".to_owned(),
            Failure::Network { detail } => format!("network error: {detail}"),
            Failure::Denied {
                reason,
                description,
            } => format!("{reason}: {description}"),
            Failure::Refused { detail } => detail.clone(),
            Failure::AccountChanged { detail } => detail.clone(),
        }
    }
    pub fn reconnect_reason(&self) -> Option<ReconnectReason> {
        match self.action {
            Action::Reconnect { reason } => Some(reason),
            _ => None,
        }
    }
    /// An error Meta reported inside a successful reply (`debug_token`'s `data.error`),
    /// classified like any other.
    pub fn reported(
        endpoint: &'static str,
        code: i64,
        subcode: Option<i64>,
        message: &str,
        now: UnixSeconds,
    ) -> Self {
        let failure = Failure::Meta {
            http_status: 200,
            code: Some(code),
            subcode,
            error_type: None,
            message: scrub(message),
            is_transient: None,
            fbtrace_id: None,
        };
        let action = classify(&failure, &Usage::default(), now);
        MetaError {
            endpoint,
            failure,
            action,
        }
    }

    /// Meta answered, but the account is no longer one we can show (switched to personal,
    /// unlinked from its Page): a person must act, for `reason`.
    pub fn account_changed(
        endpoint: &'static str,
        reason: ReconnectReason,
        detail: impl Into<String>,
    ) -> Self {
        MetaError {
            endpoint,
            failure: Failure::AccountChanged {
                detail: detail.into(),
            },
            action: Action::Reconnect { reason },
        }
    }

    /// A request we refused to make (wrong token family, corrupted token, foreign `next` link).
    pub fn refused(endpoint: &'static str, detail: impl Into<String>) -> Self {
        MetaError {
            endpoint,
            failure: Failure::Refused {
                detail: detail.into(),
            },
            action: Action::Bug,
        }
    }
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.endpoint)?;
        if let (Some(code), sub) = (self.code(), self.subcode()) {
            match sub {
                Some(sub) => write!(f, "(#{code}/{sub}) ")?,
                None => write!(f, "(#{code}) ")?,
            }
        }
        write!(f, "{}", self.message())?;
        match self.action {
            Action::Reconnect { reason } => write!(f, " [reconnect needed: {reason}]"),
            Action::BackOff { until } => write!(f, " [back off until {until}]"),
            Action::Retry => write!(f, " [retry later]"),
            Action::Gone => write!(f, " [gone]"),
            Action::Bug => write!(f, " [request error]"),
            Action::Operator { problem } => write!(f, " [app configuration: {}]", problem.as_str()),
        }
    }
}

impl std::error::Error for MetaError {}

// ---- parsing Meta's error bodies -----------------------------------------------------------

#[derive(Deserialize)]
struct GraphEnvelope {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    error_type: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    error_subcode: Option<serde_json::Value>,
    #[serde(default)]
    is_transient: Option<bool>,
    #[serde(default)]
    fbtrace_id: Option<String>,
}

/// `api.instagram.com/oauth/access_token`: `{"error_type","code","error_message"}`; the legacy
/// Instagram v1 API nested the same under `meta`.
#[derive(Deserialize)]
struct FlatError {
    error_type: Option<String>,
    code: Option<serde_json::Value>,
    error_message: String,
}

#[derive(Deserialize)]
struct LegacyEnvelope {
    meta: FlatError,
}

fn as_i64(v: &Option<serde_json::Value>) -> Option<i64> {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads an error object out of a body, if it holds one in any of Meta's shapes.
pub(crate) fn parse_error_body(http_status: u16, body: &[u8]) -> Option<Failure> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if let Ok(GraphEnvelope { error }) = serde_json::from_value::<GraphEnvelope>(value.clone()) {
        // `{"error": "..."}` (a bare string) fails the struct and falls through.
        return Some(Failure::Meta {
            http_status,
            code: as_i64(&error.code),
            subcode: as_i64(&error.error_subcode),
            error_type: error.error_type,
            message: scrub(&error.message.unwrap_or_default()),
            is_transient: error.is_transient,
            fbtrace_id: error.fbtrace_id,
        });
    }
    let flat = serde_json::from_value::<FlatError>(value.clone())
        .or_else(|_| serde_json::from_value::<LegacyEnvelope>(value).map(|l| l.meta))
        .ok()?;
    Some(Failure::Meta {
        http_status,
        code: as_i64(&flat.code),
        subcode: None,
        error_type: flat.error_type,
        message: scrub(&flat.error_message),
        is_transient: None,
        fbtrace_id: None,
    })
}

/// Default pause after a throttling error that names no time of its own. Smash Balloon waits
/// minutes; an hour is what Meta's hourly windows need to roll over.
const DEFAULT_BACKOFF_SECS: i64 = 15 * 60;
/// Code 368 (policy block) is long.
const POLICY_BLOCK_BACKOFF_SECS: i64 = 6 * 3600;

/// The action for a Meta error object (or a status without one).
pub(crate) fn classify(failure: &Failure, usage: &Usage, now: UnixSeconds) -> Action {
    let backoff = |default_secs: i64| {
        let from_headers = usage.regain_access_at(now).unwrap_or(0);
        Action::BackOff {
            until: from_headers.max(now + default_secs),
        }
    };
    match failure {
        Failure::Meta {
            http_status,
            code,
            subcode,
            message,
            is_transient,
            ..
        } => {
            let lower = message.to_ascii_lowercase();
            if let Some(problem) = operator_problem_in(&lower) {
                return Action::Operator { problem };
            }
            match (*code, *subcode) {
                (Some(190), sub) => Action::Reconnect {
                    reason: reason_for_190(sub, &lower),
                },
                (Some(102), _) => Action::Reconnect {
                    reason: if lower.contains("expired") {
                        ReconnectReason::Expired
                    } else {
                        ReconnectReason::Unknown
                    },
                },
                (Some(10), _) | (Some(200..=299), _) => Action::Reconnect {
                    reason: ReconnectReason::PermissionMissing,
                },
                (Some(4 | 17 | 32 | 341 | 613), _) | (Some(80_000..=80_099), _) => {
                    backoff(DEFAULT_BACKOFF_SECS)
                }
                (Some(368), _) => backoff(POLICY_BLOCK_BACKOFF_SECS),
                // "Object does not exist, cannot be loaded due to missing permissions, or does
                // not support this operation": for a post asked for by id, it was deleted (the
                // client's single-object calls turn this into `Gone`); for anything else, our
                // request names something Meta does not have.
                (Some(100), Some(33)) | (Some(803), _) => Action::Bug,
                (Some(1 | 2), _) => Action::Retry,
                _ if *is_transient == Some(true) => Action::Retry,
                _ if lower.contains("user has not authorized application") => Action::Reconnect {
                    reason: ReconnectReason::AppRemoved,
                },
                _ if *http_status == 429 => backoff(DEFAULT_BACKOFF_SECS),
                _ if *http_status >= 500 => Action::Retry,
                _ => Action::Bug,
            }
        }
        Failure::Http { http_status, .. } => match *http_status {
            429 => backoff(DEFAULT_BACKOFF_SECS),
            408 | 500..=599 => Action::Retry,
            _ => Action::Bug,
        },
        Failure::Malformed { .. } | Failure::Timeout | Failure::Network { .. } => Action::Retry,
        // A declined login or a broken callback: the person has to try the login again.
        Failure::Denied { .. } => Action::Reconnect {
            reason: ReconnectReason::Unknown,
        },
        Failure::Refused { .. } => Action::Bug,
        Failure::AccountChanged { .. } => Action::Reconnect {
            reason: ReconnectReason::Unknown,
        },
    }
}

fn reason_for_190(subcode: Option<i64>, lower_message: &str) -> ReconnectReason {
    match subcode {
        Some(458) => ReconnectReason::AppRemoved,
        Some(459 | 464) => ReconnectReason::Checkpoint,
        Some(460) => ReconnectReason::PasswordChanged,
        Some(463) => ReconnectReason::Expired,
        // 492: a Page-role problem with a Page token — the token holder lost a permission.
        Some(492) => ReconnectReason::PermissionMissing,
        _ if lower_message.contains("has not authorized application") => {
            ReconnectReason::AppRemoved
        }
        _ if lower_message.contains("changed the password")
            || lower_message.contains("changed their password") =>
        {
            ReconnectReason::PasswordChanged
        }
        _ if lower_message.contains("session has expired") => ReconnectReason::Expired,
        _ => ReconnectReason::Unknown,
    }
}

/// Replaces anything that looks like an access token (`IG…`/`EA…` runs of 20+ token characters)
/// with `[redacted]`. Meta's messages rarely echo tokens, but a log line must never depend on it.
pub fn scrub(text: &str) -> String {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| is_token_char(c)) {
        out.push_str(&rest[..start]);
        let word_len = rest[start..]
            .find(|c: char| !is_token_char(c))
            .unwrap_or(rest.len() - start);
        let word = &rest[start..start + word_len];
        if word.len() >= 20 && (word.starts_with("IG") || word.starts_with("EA")) {
            out.push_str("[redacted]");
        } else {
            out.push_str(word);
        }
        rest = &rest[start + word_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(code: i64, subcode: Option<i64>, message: &str) -> Failure {
        Failure::Meta {
            http_status: 400,
            code: Some(code),
            subcode,
            error_type: Some("OAuthException".into()),
            message: message.into(),
            is_transient: None,
            fbtrace_id: None,
        }
    }

    fn action(f: Failure) -> Action {
        classify(&f, &Usage::default(), 1_000)
    }

    fn reconnect(reason: ReconnectReason) -> Action {
        Action::Reconnect { reason }
    }

    #[test]
    fn code_190_subcodes_become_reasons() {
        use ReconnectReason::*;
        assert_eq!(action(graph(190, Some(458), "")), reconnect(AppRemoved));
        assert_eq!(action(graph(190, Some(459), "")), reconnect(Checkpoint));
        assert_eq!(
            action(graph(190, Some(460), "")),
            reconnect(PasswordChanged)
        );
        assert_eq!(action(graph(190, Some(463), "")), reconnect(Expired));
        assert_eq!(action(graph(190, Some(467), "")), reconnect(Unknown));
        assert_eq!(
            action(graph(
                190,
                None,
                "Error validating access token: The user has not authorized application 123."
            )),
            reconnect(AppRemoved)
        );
        assert_eq!(
            action(graph(
                190,
                None,
                "Invalid OAuth access token - Cannot parse access token"
            )),
            reconnect(Unknown)
        );
    }

    #[test]
    fn permission_errors_need_a_reconnect() {
        assert_eq!(
            action(graph(10, None, "")),
            reconnect(ReconnectReason::PermissionMissing)
        );
        assert_eq!(
            action(graph(200, None, "")),
            reconnect(ReconnectReason::PermissionMissing)
        );
    }

    #[test]
    fn throttling_backs_off_at_least_the_default_and_honours_meta_estimates() {
        for code in [4, 17, 32, 613, 80002] {
            assert_eq!(
                action(graph(code, None, "")),
                Action::BackOff {
                    until: 1_000 + DEFAULT_BACKOFF_SECS
                },
                "code {code}"
            );
        }
        let usage = Usage::from_headers(
            None,
            Some(
                r#"{"1784":[{"type":"instagram","call_count":100,"total_time":5,"total_cputime":5,"estimated_time_to_regain_access":120}]}"#,
            ),
        );
        assert_eq!(
            classify(&graph(80002, Some(2446079), ""), &usage, 1_000),
            Action::BackOff {
                until: 1_000 + 120 * 60
            }
        );
    }

    #[test]
    fn transient_and_unknown_server_trouble_retries() {
        assert_eq!(action(graph(1, None, "")), Action::Retry);
        assert_eq!(action(graph(2, None, "")), Action::Retry);
        let mut f = graph(9999, None, "");
        if let Failure::Meta { is_transient, .. } = &mut f {
            *is_transient = Some(true);
        }
        assert_eq!(action(f), Action::Retry);
        assert_eq!(
            action(Failure::Http {
                http_status: 502,
                body_start: "<html>".into()
            }),
            Action::Retry
        );
        assert_eq!(action(Failure::Timeout), Action::Retry);
        assert_eq!(
            action(Failure::Malformed {
                http_status: 200,
                detail: "eof".into()
            }),
            Action::Retry
        );
    }

    #[test]
    fn missing_objects_are_bugs_unless_asked_for_by_id() {
        assert_eq!(action(graph(100, Some(33), "")), Action::Bug);
        assert_eq!(action(graph(803, None, "")), Action::Bug);
        assert_eq!(
            action(graph(100, None, "Tried accessing nonexisting field")),
            Action::Bug
        );
        assert_eq!(
            action(Failure::Http {
                http_status: 404,
                body_start: String::new()
            }),
            Action::Bug
        );
    }

    #[test]
    fn all_error_shapes_parse() {
        let graph_body = br#"{"error":{"message":"m","type":"OAuthException","code":190,"error_subcode":460,"fbtrace_id":"x"}}"#;
        let flat_body =
            br#"{"error_type":"OAuthException","code":400,"error_message":"Invalid platform app"}"#;
        let legacy_body = br#"{"meta":{"error_type":"OAuthAccessTokenException","code":400,"error_message":"bad"}}"#;
        assert!(matches!(
            parse_error_body(400, graph_body),
            Some(Failure::Meta {
                code: Some(190),
                subcode: Some(460),
                ..
            })
        ));
        assert!(matches!(
            parse_error_body(400, flat_body),
            Some(Failure::Meta {
                code: Some(400),
                ..
            })
        ));
        assert!(matches!(
            parse_error_body(400, legacy_body),
            Some(Failure::Meta {
                code: Some(400),
                ..
            })
        ));
        assert_eq!(parse_error_body(500, b"<html>oops</html>"), None);
        assert_eq!(parse_error_body(200, b""), None);
        assert_eq!(parse_error_body(400, br#"{"error":"just a string"}"#), None);
        assert!(matches!(
            parse_error_body(400, br#"{"error":{"code":"190"}}"#),
            Some(Failure::Meta {
                code: Some(190),
                ..
            })
        ));
    }

    #[test]
    fn scrub_removes_token_like_words_only() {
        let text = "token IGAAbcdefghijklmnopqrstuvwxyz and EAAB1234567890abcdefghij for user 17841405793187218";
        let clean = scrub(text);
        assert_eq!(
            clean,
            "token [redacted] and [redacted] for user 17841405793187218"
        );
        assert_eq!(scrub("(#10) short IGx"), "(#10) short IGx");
    }
}
