//! Logging in: the Instagram Login and Facebook Login dialogs, their redirects, and the token
//! exchanges (code -> short-lived -> long-lived, and the 60-day refresh).

use serde::Deserialize;
use url::Url;

use super::errors::{Action, Failure, MetaError};
use super::types::{
    AccessToken, ExpiringToken, ShortLivedToken, TokenFamily, id_string, permission_list,
};
use super::{MetaClient, join};

/// The one scope a feed needs on Instagram Login.
pub const INSTAGRAM_SCOPES: &[&str] = &["instagram_business_basic"];
/// What a feed needs on Facebook Login: the IG account's media through the Page.
pub const FACEBOOK_SCOPES: &[&str] = &[
    "instagram_basic",
    "pages_show_list",
    "pages_read_engagement",
];

/// What the login dialog's redirect carried back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCallback {
    pub code: String,
    pub state: Option<String>,
}

#[derive(Deserialize)]
struct ShortLivedReply {
    access_token: AccessToken,
    #[serde(deserialize_with = "id_string")]
    user_id: String,
    #[serde(default, deserialize_with = "permission_list")]
    permissions: Vec<String>,
}

#[derive(Deserialize)]
struct WrappedShortLivedReply {
    data: Vec<ShortLivedReply>,
}

/// The code-exchange reply: Meta's docs wrap it in `data: [..]`, production replies are flat.
#[derive(Deserialize)]
#[serde(untagged)]
enum CodeExchangeReply {
    Wrapped(WrappedShortLivedReply),
    Flat(ShortLivedReply),
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: AccessToken,
    #[serde(default)]
    expires_in: Option<i64>,
}

impl MetaClient {
    /// The Instagram Login dialog URL. `force_login` makes Instagram ask for credentials even when
    /// someone is logged in on that browser (reconnecting a different account).
    pub fn instagram_authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        force_login: bool,
    ) -> Url {
        let mut url = self.endpoints.instagram_oauth.clone();
        url.query_pairs_mut()
            .append_pair("client_id", &self.app.instagram_app_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", &INSTAGRAM_SCOPES.join(","))
            .append_pair("state", state);
        if force_login {
            url.query_pairs_mut()
                .append_pair("force_authentication", "1");
        }
        url
    }

    /// The Facebook Login dialog URL (business connections through a Page).
    pub fn facebook_dialog_url(&self, redirect_uri: &str, state: &str) -> Url {
        let mut url = join(
            &self.endpoints.facebook_www,
            &[&self.endpoints.graph_version, "dialog", "oauth"],
        );
        url.query_pairs_mut()
            .append_pair("client_id", &self.app.facebook_app_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", &FACEBOOK_SCOPES.join(","))
            .append_pair("state", state);
        url
    }

    /// Instagram Login, step 2: the code for a short-lived (1 h) token.
    pub async fn exchange_instagram_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<ShortLivedToken, MetaError> {
        const ENDPOINT: &str = "api.instagram.com /oauth/access_token";
        let url = join(&self.endpoints.instagram_api, &["oauth", "access_token"]);
        let form = [
            ("client_id", self.app.instagram_app_id.as_str()),
            ("client_secret", self.app.instagram_app_secret.expose()),
            ("grant_type", "authorization_code"),
            ("redirect_uri", redirect_uri),
            ("code", strip_code_suffix(code)),
        ];
        let request = self.http.post(url).form(&form);
        let reply: CodeExchangeReply = self.send_json(ENDPOINT, request).await?;
        let reply = match reply {
            CodeExchangeReply::Flat(r) => r,
            CodeExchangeReply::Wrapped(w) => {
                w.data.into_iter().next().ok_or_else(|| MetaError {
                    endpoint: ENDPOINT,
                    failure: Failure::Malformed {
                        http_status: 200,
                        detail: "`data` holds no token".into(),
                    },
                    action: Action::Retry,
                })?
            }
        };
        Ok(ShortLivedToken {
            access_token: reply.access_token,
            user_id: reply.user_id,
            permissions: reply.permissions,
        })
    }

    /// Instagram Login, step 3: a short-lived token for a 60-day one (`ig_exchange_token`).
    pub async fn exchange_for_long_lived(
        &self,
        short: &AccessToken,
    ) -> Result<ExpiringToken, MetaError> {
        const ENDPOINT: &str = "graph.instagram.com /access_token";
        check_family(ENDPOINT, short, TokenFamily::Instagram)?;
        let url = join(&self.endpoints.instagram_graph, &["access_token"]);
        let request = self.http.get(url).query(&[
            ("grant_type", "ig_exchange_token"),
            ("client_secret", self.app.instagram_app_secret.expose()),
            ("access_token", short.expose()),
        ]);
        let reply: TokenReply = self.send_json(ENDPOINT, request).await?;
        Ok(self.expiring(reply))
    }

    /// Step 3 with a fallback for an open question: some clients report that `ig_exchange_token`
    /// refuses Business Login tokens ("Unsupported request - method type") because the code
    /// exchange already returns a long-lived token. Then the token is kept as it is, with an
    /// unknown expiry, and the first refresh (allowed after 24 h) establishes it.
    pub async fn obtain_long_lived(&self, short: &AccessToken) -> Result<ExpiringToken, MetaError> {
        match self.exchange_for_long_lived(short).await {
            Err(e) if e.action == Action::Bug && e.message().contains("Unsupported request") => {
                tracing::info!("ig_exchange_token unsupported; keeping the code-exchange token");
                Ok(ExpiringToken {
                    access_token: short.clone(),
                    expires_at: None,
                })
            }
            other => other,
        }
    }

    /// Renews a long-lived Instagram Login token for another 60 days. Meta allows this only when
    /// the token is at least 24 h old and unexpired; only GET works. Always store the returned
    /// token: whether the string changes is not documented.
    pub async fn refresh_long_lived(
        &self,
        token: &AccessToken,
    ) -> Result<ExpiringToken, MetaError> {
        const ENDPOINT: &str = "graph.instagram.com /refresh_access_token";
        check_family(ENDPOINT, token, TokenFamily::Instagram)?;
        let url = join(&self.endpoints.instagram_graph, &["refresh_access_token"]);
        let request = self.http.get(url).query(&[
            ("grant_type", "ig_refresh_token"),
            ("access_token", token.expose()),
        ]);
        let reply: TokenReply = self.send_json(ENDPOINT, request).await?;
        Ok(self.expiring(reply))
    }

    /// Facebook Login: the code for a user token (short-lived, about an hour or two).
    pub async fn exchange_facebook_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<ExpiringToken, MetaError> {
        const ENDPOINT: &str = "graph.facebook.com /oauth/access_token";
        let url = join(
            &self.endpoints.facebook_graph,
            &[&self.endpoints.graph_version, "oauth", "access_token"],
        );
        let request = self.http.get(url).query(&[
            ("client_id", self.app.facebook_app_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("client_secret", self.app.facebook_app_secret.expose()),
            ("code", strip_code_suffix(code)),
        ]);
        let reply: TokenReply = self.send_json(ENDPOINT, request).await?;
        Ok(self.expiring(reply))
    }

    /// Facebook Login: a short-lived user token for a long-lived (~60 day) one. Page tokens
    /// obtained with the long-lived user token never expire.
    pub async fn exchange_facebook_long_lived(
        &self,
        short: &AccessToken,
    ) -> Result<ExpiringToken, MetaError> {
        const ENDPOINT: &str = "graph.facebook.com /oauth/access_token (fb_exchange_token)";
        check_family(ENDPOINT, short, TokenFamily::Facebook)?;
        let url = join(
            &self.endpoints.facebook_graph,
            &[&self.endpoints.graph_version, "oauth", "access_token"],
        );
        let request = self.http.get(url).query(&[
            ("grant_type", "fb_exchange_token"),
            ("client_id", self.app.facebook_app_id.as_str()),
            ("client_secret", self.app.facebook_app_secret.expose()),
            ("fb_exchange_token", short.expose()),
        ]);
        let reply: TokenReply = self.send_json(ENDPOINT, request).await?;
        Ok(self.expiring(reply))
    }

    fn expiring(&self, reply: TokenReply) -> ExpiringToken {
        ExpiringToken {
            access_token: reply.access_token,
            expires_at: reply
                .expires_in
                .filter(|s| *s > 0)
                .map(|s| self.clock.now() + s),
        }
    }
}

/// Refuses to send a token to the host family that did not issue it (a corrupted or mixed-up
/// token would otherwise reach the wrong host, as Smash Balloon learned).
pub(crate) fn check_family(
    endpoint: &'static str,
    token: &AccessToken,
    expected: TokenFamily,
) -> Result<(), MetaError> {
    match token.family() {
        Some(family) if family == expected => Ok(()),
        Some(other) => Err(MetaError::refused(
            endpoint,
            format!("a {other:?} token cannot be used on a {expected:?} host"),
        )),
        None => Err(MetaError::refused(
            endpoint,
            "the stored token has neither an IG nor an EA prefix; it was corrupted",
        )),
    }
}

/// Meta appends `#_` (Instagram) or `#_=_` (Facebook) to the redirect; when the fragment ends up
/// in a copied code, it must go.
pub fn strip_code_suffix(code: &str) -> &str {
    let code = code.trim();
    code.strip_suffix("#_=_")
        .or_else(|| code.strip_suffix("#_"))
        .unwrap_or(code)
}

/// Reads the login dialog's redirect: a query string (`code=…&state=…`) or a whole URL, with or
/// without Meta's `#_` suffix (state is looked for in the fragment too). A declined login becomes a
/// `Denied` error.
pub fn parse_callback(redirect: &str) -> Result<AuthorizationCallback, MetaError> {
    const ENDPOINT: &str = "oauth redirect";
    let (query, fragment) = match redirect.split_once('#') {
        Some((q, f)) => (q, f),
        None => (redirect, ""),
    };
    let query = query.split_once('?').map_or(query, |(_, q)| q);
    let fragment = fragment
        .trim_start_matches(['_', '='])
        .trim_start_matches('&');
    let mut code = None;
    let mut state = None;
    let mut error = None;
    let mut error_reason = None;
    let mut error_description = None;
    for part in [query, fragment] {
        for (key, value) in url::form_urlencoded::parse(part.as_bytes()) {
            let value = value.into_owned();
            match key.as_ref() {
                "code" if code.is_none() => code = Some(value),
                "state" if state.is_none() => state = Some(value),
                "error" => error = Some(value),
                "error_reason" => error_reason = Some(value),
                "error_description" => error_description = Some(value),
                _ => {}
            }
        }
    }
    if let Some(error) = error {
        return Err(MetaError {
            endpoint: ENDPOINT,
            failure: Failure::Denied {
                reason: error_reason.unwrap_or(error),
                description: error_description.unwrap_or_default(),
            },
            action: Action::Reconnect {
                reason: super::ReconnectReason::Unknown,
            },
        });
    }
    match code.as_deref().map(strip_code_suffix) {
        Some(code) if !code.is_empty() => Ok(AuthorizationCallback {
            code: code.to_owned(),
            state,
        }),
        _ => Err(MetaError::refused(
            ENDPOINT,
            "the redirect carries no authorization code",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_strips_meta_suffixes_and_finds_state_anywhere() {
        let cb = parse_callback("code=AQBx#_").unwrap();
        assert_eq!(cb.code, "AQBx");
        let cb = parse_callback("https://x.test/cb?code=AQBx&state=s1#_").unwrap();
        assert_eq!(
            (cb.code.as_str(), cb.state.as_deref()),
            ("AQBx", Some("s1"))
        );
        let cb = parse_callback("https://x.test/cb?code=AQBx#_&state=s2").unwrap();
        assert_eq!(cb.state.as_deref(), Some("s2"));
        let cb = parse_callback("code=AQBx&state=s3#_=_").unwrap();
        assert_eq!(cb.state.as_deref(), Some("s3"));
        assert_eq!(parse_callback("code=AQBx%23_").unwrap().code, "AQBx");
    }

    #[test]
    fn declined_and_empty_callbacks_are_errors() {
        let err = parse_callback(
            "error=access_denied&error_reason=user_denied&error_description=The+user+denied+your+request.&state=s",
        )
        .unwrap_err();
        assert!(
            matches!(err.failure, Failure::Denied { ref reason, .. } if reason == "user_denied")
        );
        assert_eq!(parse_callback("state=s").unwrap_err().action, Action::Bug);
        assert_eq!(parse_callback("").unwrap_err().action, Action::Bug);
        assert!(parse_callback("code=&state=x").is_err());
    }

    #[test]
    fn code_exchange_reply_parses_both_shapes() {
        let flat: CodeExchangeReply = serde_json::from_str(
            r#"{"access_token":"IGAAx","user_id":17841405793187218,"permissions":"instagram_business_basic,instagram_business_manage_messages"}"#,
        )
        .unwrap();
        let wrapped: CodeExchangeReply = serde_json::from_str(
            r#"{"data":[{"access_token":"IGAAx","user_id":"17841405793187218","permissions":["instagram_business_basic"]}]}"#,
        )
        .unwrap();
        for reply in [flat, wrapped] {
            let r = match reply {
                CodeExchangeReply::Flat(r) => r,
                CodeExchangeReply::Wrapped(mut w) => w.data.remove(0),
            };
            assert_eq!(r.user_id, "17841405793187218");
            assert_eq!(r.permissions[0], "instagram_business_basic");
        }
    }
}
