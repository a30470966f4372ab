//! One attempt at one delivery, and what follows from it.
//!
//! The endpoint's URL is checked again at every attempt (http or https; an address written as
//! a number must be public; a name is resolved and only its public addresses are connected
//! to, unless `webhooks.allow_private_addresses`). Redirects are never followed (a 3xx is a
//! failed attempt); the answer's body is not read beyond a few bytes; the whole attempt is
//! bounded by `webhooks.timeout_secs`. A 2xx answer delivers it; anything else is tried again
//! on the Standard Webhooks schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about a day),
//! then given up. An endpoint whose attempts have all failed for a day and whose delivery was
//! just given up is turned off, and its owner told by mail; its events are kept for three
//! days and sent when it is turned on again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::webhooks::{self as store, Attempt};
use crate::outbound::{GuardedResolver, allowed};
use crate::state::AppState;

/// Waits before the 2nd, 3rd, ... attempt (seconds): Standard Webhooks' suggested schedule.
pub const RETRY_SCHEDULE: [i64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
/// An endpoint failing for this long when a delivery is given up is turned off.
pub const DISABLE_AFTER_SECS: i64 = 86_400;
/// How long events are kept for an endpoint that is turned off.
pub const KEEP_WHILE_OFF_SECS: i64 = 3 * 86_400;
/// How much of an answer's body is read (it is not used; reading a little lets the
/// connection close cleanly).
const MAX_BODY_READ: usize = 1024;

/// Why a URL may not be called.
pub fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with https:// (or http://)".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    if raw.len() > 2000 {
        return Err("is longer than 2 000 characters".into());
    }
    let literal = match url.host() {
        None => return Err("has no host".into()),
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let name = d.trim_end_matches('.').to_ascii_lowercase();
            if !allow_private && (name == "localhost" || name.ends_with(".localhost")) {
                return Err("is this machine (localhost)".into());
            }
            None
        }
    };
    if let Some(ip) = literal
        && !allowed(ip, allow_private)
    {
        return Err(format!("{ip} is not a public address"));
    }
    Ok(url)
}

/// Makes delivery `id`'s next attempt. Returns when to try again (`None`: done).
pub async fn attempt(state: &AppState, id: i64) -> anyhow::Result<Option<i64>> {
    let delivery = match store::get_delivery(&state.db, id).await {
        Ok(d) => d,
        Err(crate::db::DbError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if delivery.status != "pending" {
        return Ok(None);
    }
    let endpoint = match store::get_endpoint(&state.db, delivery.endpoint_id).await {
        Ok(e) => e,
        Err(crate::db::DbError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let now = state.clock.now();
    if !endpoint.enabled && delivery.event_type != super::TEST {
        // Kept while the endpoint is off (turning it on sends them at once), for a while.
        if now - delivery.created_at < KEEP_WHILE_OFF_SECS {
            return Ok(Some(now + 3600));
        }
        store::record_attempt(
            &state.db,
            id,
            &Attempt {
                before: delivery.attempts,
                status: "failed",
                http_status: None,
                error: Some("the endpoint was turned off"),
                duration_ms: 0,
            },
            now,
        )
        .await?;
        return Ok(None);
    }
    let started = Instant::now();
    let outcome = call(state, &endpoint, &delivery, now).await;
    let duration_ms = started.elapsed().as_millis() as i64;
    let attempts = delivery.attempts + 1;
    let (status, http_status, error, next) = match outcome {
        Ok(code) => ("delivered", Some(code), None, None),
        Err((code, error)) => {
            let wait = RETRY_SCHEDULE.get(delivery.attempts as usize).copied();
            match wait {
                Some(wait) => ("pending", code, Some(error), Some(now + wait)),
                None => ("failed", code, Some(error), None),
            }
        }
    };
    store::record_attempt(
        &state.db,
        id,
        &Attempt {
            before: delivery.attempts,
            status,
            http_status: http_status.map(i64::from),
            error: error.as_deref(),
            duration_ms,
        },
        now,
    )
    .await?;
    store::record_endpoint_result(&state.db, endpoint.id, status == "delivered", now).await?;
    tracing::info!(
        delivery = id,
        endpoint = endpoint.id,
        attempts,
        status,
        http_status,
        "webhook attempt"
    );
    if status == "failed" && endpoint.enabled {
        turn_off_if_failing(state, &endpoint, now).await?;
    }
    Ok(next)
}

/// One HTTP call: the status of a 2xx answer, or what went wrong (with the status, if any).
async fn call(
    state: &AppState,
    endpoint: &store::Endpoint,
    delivery: &store::Delivery,
    now: i64,
) -> Result<u16, (Option<u16>, String)> {
    let config = &state.config.webhooks;
    let url = check_url(&endpoint.url, config.allow_private_addresses)
        .map_err(|e| (None, format!("the address {e}")))?;
    let timeout = Duration::from_secs(config.timeout_secs);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver::new(
            HashMap::new(),
            config.allow_private_addresses,
        )))
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .user_agent(concat!("feedkeeper-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| (None, format!("cannot make the HTTP client: {e}")))?;
    let secrets = super::secrets(state, endpoint, now);
    if secrets.is_empty() {
        return Err((
            None,
            "the signing secret cannot be opened (key removed?)".into(),
        ));
    }
    let signature = super::signing::header(&secrets, &delivery.event_id, now, &delivery.payload);
    let request = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.event_id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature)
        .body(delivery.payload.clone())
        .send();
    let result = tokio::time::timeout(timeout, async {
        let mut response = request.await.map_err(|e| (None, describe(&e)))?;
        let status = response.status().as_u16();
        // Read a little of the body, never more.
        let mut read = 0;
        while read < MAX_BODY_READ {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        match status {
            200..=299 => Ok(status),
            300..=399 => Err((
                Some(status),
                format!("HTTP {status}: a redirect, which is not followed"),
            )),
            _ => Err((Some(status), format!("HTTP {status}"))),
        }
    })
    .await;
    result.unwrap_or_else(|_| Err((None, format!("no answer within {} s", config.timeout_secs))))
}

/// The innermost cause of a failed request, in words (the resolver's refusal included).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "the request timed out".into();
    }
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    detail
}

/// Turns an endpoint that has failed for a day off and tells its owner, in one transaction
/// and once (several deliveries given up at the same moment race for it; only one wins).
async fn turn_off_if_failing(
    state: &AppState,
    endpoint: &store::Endpoint,
    now: i64,
) -> anyhow::Result<()> {
    let reason = format!(
        "turned off on {}: every delivery failed for more than a day",
        crate::clock::format_utc(now)
    );
    let owner = crate::db::mail::user_settings(&state.db, endpoint.user_id).await?;
    let paragraphs = vec![
        format!(
            "Your webhook endpoint {} has failed every delivery for more than a day, so \
             feedkeeper turned it off.",
            endpoint.url
        ),
        "Fix the receiver, then turn the endpoint on again: the events kept meanwhile (up to \
         three days old) are sent at once."
            .to_owned(),
    ];
    let body = crate::mail::templates::letter(&crate::mail::templates::Letter {
        subject: "A webhook endpoint was turned off",
        paragraphs: &paragraphs,
        link: Some(&format!(
            "{}/webhooks/{}",
            state.config.public_url(),
            endpoint.id
        )),
        link_label: "See the endpoint",
        after: &[],
        sender: "feedkeeper",
    })?;
    let mut tx = state.db.begin().await?;
    if !store::turn_off_failing(&mut tx, endpoint.id, now - DISABLE_AFTER_SECS, &reason, now)
        .await?
    {
        return Ok(());
    }
    crate::mail::enqueue(
        &mut tx,
        state,
        &crate::mail::Outgoing {
            user: endpoint.user_id,
            recipient: &owner.email,
            category: crate::mail::ACCOUNT,
            subject: "A webhook endpoint was turned off",
            body: &body,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(
        endpoint = endpoint.id,
        "webhook endpoint turned off after failing for a day"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_http_addresses_are_called_unless_allowed() {
        assert!(check_url("https://hooks.example.com/in", false).is_ok());
        assert!(check_url("ftp://hooks.example.com/in", false).is_err());
        assert!(check_url("https://user:pw@hooks.example.com/", false).is_err());
        assert!(check_url("http://127.0.0.1:8080/", false).is_err());
        assert!(check_url("http://[::1]/", false).is_err());
        assert!(check_url("http://169.254.169.254/latest/meta-data", false).is_err());
        assert!(check_url("http://10.1.2.3/", false).is_err());
        assert!(check_url("http://localhost:9000/", false).is_err());
        assert!(check_url("http://app.localhost/", false).is_err());
        assert!(check_url("http://localhost./", false).is_err());
        assert!(
            check_url("http://2130706433/", false).is_err(),
            "127.0.0.1 as one number"
        );
        assert!(check_url("http://0x7f.1/", false).is_err());
        assert!(check_url("http://[::ffff:127.0.0.1]/", false).is_err());
        assert!(
            check_url("http://169.254.169.254/", true).is_err(),
            "metadata, even allowed"
        );
        assert!(check_url("http://[fd00:ec2::254]/", true).is_err());
        assert!(check_url("http://127.0.0.1:8080/", true).is_ok());
        assert!(check_url("not a url", true).is_err());
    }

    #[test]
    fn retries_span_about_a_day() {
        let total: i64 = RETRY_SCHEDULE.iter().sum();
        assert!((86_400..2 * 86_400).contains(&total), "{total}");
    }
}
