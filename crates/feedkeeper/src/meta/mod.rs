//! The Meta client: typed calls to Instagram Login, Facebook Login and the Graph hosts.
//!
//! Every call has a timeout, records the rate-limit usage headers, and turns any failure into a
//! [`MetaError`] whose [`Action`] says what to do. No token ever reaches a log line: URLs are
//! redacted with [`redact_url`] and tokens are [`AccessToken`]s, which do not print.

pub mod cdn;
pub mod errors;
pub mod fields;
pub mod graph;
pub mod oauth;
pub mod signed_request;
pub mod types;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

pub use errors::{Action, Failure, MetaError, OperatorProblem, ReconnectReason};
pub use types::*;
pub use usage::{Usage, UsageLog};

use crate::clock::Clock;
use crate::config::{MetaConfig, Secret};

/// Largest body we read from Meta; a media page of 100 posts is well under 1 MiB.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Query parameters whose values are secrets.
const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "client_secret",
    "input_token",
    "fb_exchange_token",
    "code",
    "signed_request",
];

/// Where Meta lives (configurable so the simulator can stand in).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub instagram_oauth: Url,
    pub instagram_api: Url,
    pub instagram_graph: Url,
    pub facebook_www: Url,
    pub facebook_graph: Url,
    pub graph_version: String,
}

/// The app's ids and secrets.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub instagram_app_id: String,
    pub instagram_app_secret: Secret,
    pub facebook_app_id: String,
    pub facebook_app_secret: Secret,
}

/// The client. Cheap to clone (the HTTP pool and usage log are shared).
#[derive(Debug, Clone)]
pub struct MetaClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    app: AppCredentials,
    clock: Clock,
    usage: UsageLog,
    /// Optional fields a host refused: later calls ask without them (`fields`).
    refused_fields: fields::RefusedFields,
    /// Where calls are counted (`/metrics`).
    metrics: Arc<crate::metrics::Metrics>,
}

impl MetaClient {
    pub fn new(config: &MetaConfig, clock: Clock) -> anyhow::Result<MetaClient> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.request_timeout_secs))
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            // A redirect would carry our query string (and its token) to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("feedkeeper/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(MetaClient {
            http,
            endpoints: Endpoints {
                instagram_oauth: config.instagram_oauth_url.clone(),
                instagram_api: config.instagram_api_url.clone(),
                instagram_graph: config.instagram_graph_url.clone(),
                facebook_www: config.facebook_www_url.clone(),
                facebook_graph: config.facebook_graph_url.clone(),
                graph_version: config.graph_api_version.clone(),
            },
            app: AppCredentials {
                instagram_app_id: config.instagram_app_id.clone(),
                instagram_app_secret: config.instagram_app_secret.clone(),
                facebook_app_id: config.facebook_app_id.clone(),
                facebook_app_secret: config.facebook_app_secret.clone(),
            },
            clock,
            usage: UsageLog::default(),
            refused_fields: fields::RefusedFields::default(),
            metrics: Arc::default(),
        })
    }

    /// The same client, counting its calls into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> MetaClient {
        let e = &self.endpoints;
        for url in [
            &e.instagram_oauth,
            &e.instagram_api,
            &e.instagram_graph,
            &e.facebook_www,
            &e.facebook_graph,
        ] {
            metrics.meta_host(url.host_str().unwrap_or(""));
        }
        self.metrics = metrics;
        self
    }

    /// The latest rate-limit usage seen per scope.
    pub fn usage(&self) -> &UsageLog {
        &self.usage
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Sends `request` and parses a JSON reply of type `T`, classifying every failure.
    async fn send_json<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, MetaError> {
        let (status, usage, body, host) = self.send(endpoint, request).await?;
        let now = self.clock.now();
        let fail = |failure: Failure| {
            let action = errors::classify(&failure, &usage, now);
            self.metrics.meta_call(&host, outcome_label(&action));
            tracing::info!(endpoint, error = %failure_summary(&failure), ?action, "meta call failed");
            MetaError {
                endpoint,
                failure,
                action,
            }
        };
        // Meta sometimes puts an error object in a 200 reply; an error object always wins.
        if let Some(failure) = errors::parse_error_body(status, &body)
            && (!(200..300).contains(&status) || looks_like_error_object(&body))
        {
            return Err(fail(failure));
        }
        if !(200..300).contains(&status) {
            return Err(fail(Failure::Http {
                http_status: status,
                body_start: body_start(&body),
            }));
        }
        let parsed = serde_json::from_slice(&body).map_err(|e| {
            fail(Failure::Malformed {
                http_status: status,
                detail: errors::scrub(&e.to_string()),
            })
        })?;
        self.metrics.meta_call(&host, "ok");
        Ok(parsed)
    }

    /// Sends a request and reads the status, usage headers and (bounded) body.
    async fn send(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Usage, Vec<u8>, String), MetaError> {
        let mut host = String::new();
        let transport_error = |host: &str, e: reqwest::Error| {
            let failure = if e.is_timeout() {
                Failure::Timeout
            } else {
                // reqwest's message can include the URL; strip it, it may carry a token.
                Failure::Network {
                    detail: errors::scrub(&e.without_url().to_string()),
                }
            };
            tracing::info!(endpoint, error = %failure_summary(&failure), "meta call failed");
            self.metrics.meta_call(host, outcome_label(&Action::Retry));
            MetaError {
                endpoint,
                failure,
                action: Action::Retry,
            }
        };
        let request = request.build().map_err(|e| transport_error(&host, e))?;
        host = request.url().host_str().unwrap_or("").to_owned();
        tracing::debug!(endpoint, method = %request.method(), url = %redact_url(request.url()), "meta call");
        let mut response = self
            .http
            .execute(request)
            .await
            .map_err(|e| transport_error(&host, e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let usage = Usage::from_headers(
            header("x-app-usage").as_deref(),
            header("x-business-use-case-usage").as_deref(),
        );
        self.usage.record(&usage, self.clock.now());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(&host, e))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                self.metrics.meta_call(&host, outcome_label(&Action::Retry));
                return Err(MetaError {
                    endpoint,
                    failure: Failure::Malformed {
                        http_status: status,
                        detail: format!("reply larger than {MAX_BODY_BYTES} bytes"),
                    },
                    action: Action::Retry,
                });
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(endpoint, status, bytes = body.len(), "meta reply");
        Ok((status, usage, body, host))
    }
}

/// The `outcome` label of a failed call: what the failure calls for.
fn outcome_label(action: &Action) -> &'static str {
    match action {
        Action::Reconnect { .. } => "reconnect",
        Action::BackOff { .. } => "back_off",
        Action::Retry => "retry",
        Action::Gone => "gone",
        Action::Bug => "bug",
        Action::Operator { .. } => "operator",
    }
}

fn looks_like_error_object(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v.get("error").is_some_and(|e| e.is_object()) || v.get("error_message").is_some())
        .unwrap_or(false)
}

fn body_start(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        "(empty body)".to_owned()
    } else {
        errors::scrub(&flat)
    }
}

fn failure_summary(failure: &Failure) -> String {
    match failure {
        Failure::Meta {
            code,
            subcode,
            message,
            ..
        } => format!("code {code:?}/{subcode:?}: {message}"),
        other => format!("{other:?}"),
    }
}

/// A URL with every secret query value replaced by `[redacted]`, for logs (including Meta's
/// `paging.next`, which embeds the access token).
pub fn redact_url(url: &Url) -> String {
    let mut redacted = url.clone();
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let value = if SECRET_PARAMS.contains(&k.as_ref()) {
                    "[redacted]".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), value)
            })
            .collect();
        redacted.query_pairs_mut().clear().extend_pairs(pairs);
    }
    redacted.set_fragment(None);
    redacted.to_string()
}

/// `base` with `segments` appended as path segments (bases may carry a path, e.g. the simulator's
/// `/graph.instagram.com` prefix).
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_every_secret_parameter() {
        let url = Url::parse("https://graph.instagram.com/v21.0/1/media?access_token=IGAAsecret&limit=25&after=QVF&client_secret=abc#frag").unwrap();
        let shown = redact_url(&url);
        assert!(
            !shown.contains("IGAAsecret") && !shown.contains("abc"),
            "{shown}"
        );
        assert!(shown.contains("limit=25") && shown.contains("after=QVF"));
    }

    #[test]
    fn join_keeps_a_base_path() {
        let base = Url::parse("http://127.0.0.1:9/graph.instagram.com").unwrap();
        assert_eq!(
            join(&base, &["v23.0", "me"]).as_str(),
            "http://127.0.0.1:9/graph.instagram.com/v23.0/me"
        );
        let base = Url::parse("https://graph.instagram.com/").unwrap();
        assert_eq!(
            join(&base, &["me"]).as_str(),
            "https://graph.instagram.com/me"
        );
    }
}
