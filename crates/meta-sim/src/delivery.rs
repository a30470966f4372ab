//! The simulator's own outgoing calls: `signed_request` POSTs to the app's deauthorize and
//! data-deletion callbacks, and the log of their results.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    /// The user removed the app (`deauthorize_callback_url`).
    Deauthorize,
    /// The user asked for their data to be deleted (`data_deletion_callback_url`).
    DataDeletion,
}

/// One callback POST and what came back. `GET /__sim/deliveries`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Increasing sequence number.
    pub seq: u64,
    /// Simulator time of the POST.
    pub time: i64,
    /// Which callback.
    pub kind: CallbackKind,
    /// The Instagram account the event was about.
    pub account: String,
    /// `instagram` (signed with the Instagram app secret) or `facebook` (Facebook app secret).
    pub platform: String,
    /// Where it was POSTed.
    pub url: String,
    /// `user_id` inside the payload.
    pub user_id: String,
    /// The form value sent as `signed_request`.
    pub signed_request: String,
    /// HTTP status of the answer, if one came.
    pub status: Option<u16>,
    /// Body of the answer (first 64 KiB).
    pub body: Option<String>,
    /// Transport error, if the POST failed.
    pub error: Option<String>,
}

/// A callback waiting to be POSTed (built under the lock, sent after it is released).
#[derive(Clone, Debug)]
pub(crate) struct PendingDelivery {
    pub(crate) kind: CallbackKind,
    pub(crate) account: String,
    pub(crate) platform: &'static str,
    pub(crate) url: String,
    pub(crate) user_id: String,
    pub(crate) signed_request: String,
}

/// What the POST produced.
pub(crate) struct DeliveryResult {
    pub(crate) status: Option<u16>,
    pub(crate) body: Option<String>,
    pub(crate) error: Option<String>,
}

const BODY_LIMIT: usize = 64 * 1024;

/// POSTs `signed_request=…` as a form.
pub(crate) async fn post(
    client: &reqwest::Client,
    pending: &PendingDelivery,
    timeout: Duration,
) -> DeliveryResult {
    // Built before the await: the serializer is not `Send`.
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("signed_request", &pending.signed_request)
        .finish();
    let sent = client
        .post(&pending.url)
        .timeout(timeout)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.text().await {
                Ok(mut text) => {
                    if text.len() > BODY_LIMIT {
                        let mut cut = BODY_LIMIT;
                        while !text.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        text.truncate(cut);
                    }
                    DeliveryResult {
                        status: Some(status),
                        body: Some(text),
                        error: None,
                    }
                }
                Err(e) => DeliveryResult {
                    status: Some(status),
                    body: None,
                    error: Some(e.to_string()),
                },
            }
        }
        Err(e) => DeliveryResult {
            status: None,
            body: None,
            error: Some(e.to_string()),
        },
    }
}
