//! Reading data: profiles, media pages, single posts, Facebook Pages and `debug_token`.
//!
//! Instagram Login tokens go to graph.instagram.com and Facebook tokens to graph.facebook.com;
//! the token's family picks the host. `paging.next` is followed only when it points back at the
//! configured host, since it embeds the token.

use serde::Deserialize;
use url::Url;

use super::errors::{Action, Failure, MetaError};
use super::fields::{Node, RefusedFields};
use super::oauth::check_family;
use super::types::{
    AccessToken, FacebookPage, Media, MediaPage, Profile, TokenFamily, TokenInfo, id_string,
};
use super::{MetaClient, join};

/// Meta's documented maximum page size for media.
pub const MAX_PAGE_SIZE: u32 = 100;

#[derive(Deserialize)]
struct Paged<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct RawPage {
    #[serde(deserialize_with = "id_string")]
    id: String,
    #[serde(default)]
    name: Option<String>,
    access_token: Option<AccessToken>,
}

#[derive(Deserialize)]
struct PageIgAccount {
    #[serde(default)]
    instagram_business_account: Option<IdOnly>,
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(deserialize_with = "id_string")]
    id: String,
}

#[derive(Deserialize)]
struct DebugTokenReply {
    data: DebugTokenData,
}

#[derive(Deserialize)]
struct DebugTokenData {
    #[serde(default)]
    is_valid: bool,
    #[serde(default, rename = "type")]
    token_type: Option<String>,
    #[serde(default, deserialize_with = "super::types::opt_id_string")]
    app_id: Option<String>,
    #[serde(default, deserialize_with = "super::types::opt_id_string")]
    user_id: Option<String>,
    #[serde(default)]
    expires_at: Option<i64>,
    #[serde(default)]
    data_access_expires_at: Option<i64>,
    #[serde(default)]
    issued_at: Option<i64>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    error: Option<DebugTokenError>,
}

#[derive(Deserialize)]
struct DebugTokenError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    subcode: Option<i64>,
    #[serde(default)]
    message: String,
}

impl MetaClient {
    fn graph_base(&self, family: TokenFamily) -> &Url {
        match family {
            TokenFamily::Instagram => &self.endpoints.instagram_graph,
            TokenFamily::Facebook => &self.endpoints.facebook_graph,
        }
    }

    fn graph_url(&self, family: TokenFamily, path: &[&str]) -> Url {
        let mut segments = vec![self.endpoints.graph_version.as_str()];
        segments.extend_from_slice(path);
        join(self.graph_base(family), &segments)
    }

    fn token_family(endpoint: &'static str, token: &AccessToken) -> Result<TokenFamily, MetaError> {
        token.family().ok_or_else(|| {
            MetaError::refused(
                endpoint,
                "the stored token has neither an IG nor an EA prefix; it was corrupted",
            )
        })
    }

    /// The profile of the account an Instagram Login token belongs to (`/me`).
    pub async fn instagram_profile(&self, token: &AccessToken) -> Result<Profile, MetaError> {
        const ENDPOINT: &str = "graph.instagram.com /me";
        check_family(ENDPOINT, token, TokenFamily::Instagram)?;
        let url = self.graph_url(TokenFamily::Instagram, &["me"]);
        self.with_fields(
            TokenFamily::Instagram,
            Node::InstagramProfile,
            &url,
            token,
            &[],
            |request| self.send_json(ENDPOINT, request),
        )
        .await
    }

    /// Whether an Instagram Login token still works, and the account is still professional: `/me`
    /// with the ids, the username and the account type only
    /// (cheaper than the profile, and told apart from a sync's calls in Meta's logs).
    pub async fn instagram_probe(&self, token: &AccessToken) -> Result<Profile, MetaError> {
        const ENDPOINT: &str = "graph.instagram.com /me";
        check_family(ENDPOINT, token, TokenFamily::Instagram)?;
        let url = self.graph_url(TokenFamily::Instagram, &["me"]);
        let request = self.http.get(url).query(&[
            ("fields", "id,user_id,username"),
            ("access_token", token.expose()),
        ]);
        self.send_json(ENDPOINT, request).await
    }

    /// The profile of an Instagram professional account reached through a Facebook Page token.
    pub async fn facebook_instagram_profile(
        &self,
        token: &AccessToken,
        ig_user_id: &str,
    ) -> Result<Profile, MetaError> {
        const ENDPOINT: &str = "graph.facebook.com /{ig-user-id}";
        check_family(ENDPOINT, token, TokenFamily::Facebook)?;
        let url = self.graph_url(TokenFamily::Facebook, &[ig_user_id]);
        self.with_fields(
            TokenFamily::Facebook,
            Node::FacebookProfile,
            &url,
            token,
            &[],
            |request| self.send_json(ENDPOINT, request),
        )
        .await
    }

    /// The first page (newest first) of an account's media, on the token's host.
    pub async fn media_page(
        &self,
        token: &AccessToken,
        ig_user_id: &str,
        limit: u32,
    ) -> Result<MediaPage, MetaError> {
        const ENDPOINT: &str = "graph /{ig-user-id}/media";
        let family = Self::token_family(ENDPOINT, token)?;
        let url = self.graph_url(family, &[ig_user_id, "media"]);
        let limit = limit.clamp(1, MAX_PAGE_SIZE).to_string();
        let limit = [("limit", limit.as_str())];
        self.with_fields(family, Node::Media, &url, token, &limit, |request| {
            self.read_media_page(ENDPOINT, family, request)
        })
        .await
    }

    /// GETs `url` (with `query` and the token) with `node`'s field list for this host, and again
    /// without an optional field each time Meta says it does not know one (see
    /// [`super::fields`]); the refusal is remembered, so a Meta without a field costs one extra call, not one per sync. Calls
    /// refused at the same time all ask again; each try sends a shorter list, or it is the last.
    async fn with_fields<T, F, Fut>(
        &self,
        family: TokenFamily,
        node: Node,
        url: &Url,
        token: &AccessToken,
        query: &[(&str, &str)],
        call: F,
    ) -> Result<T, MetaError>
    where
        F: Fn(reqwest::RequestBuilder) -> Fut,
        Fut: std::future::Future<Output = Result<T, MetaError>>,
    {
        let request = |fields: &str| {
            self.http
                .get(url.clone())
                .query(&[("fields", fields)])
                .query(query)
                .query(&[("access_token", token.expose())])
        };
        let mut sent = self.refused_fields.list(family, node);
        // A bound besides the shrinking list, in case refusals lapse while we retry.
        for _ in 0..16 {
            let result = call(request(&sent)).await;
            let Err(e) = &result else { return result };
            let Some(field) = RefusedFields::named_in(node, e) else {
                return result;
            };
            self.refused_fields.refuse(family, node, field);
            let next = self.refused_fields.list(family, node);
            if next == sent {
                return result;
            }
            tracing::warn!(
                host = ?family,
                ?node,
                field,
                "Meta does not know this field on this host and version; asking without it"
            );
            sent = next;
        }
        call(request(&sent)).await
    }

    /// A stored `paging.next` address (from [`MediaPage::without_token`]) made usable again:
    /// checked to point at our Meta host, with the token put back.
    pub fn resume_point(&self, token: &AccessToken, stored: &str) -> Result<Url, MetaError> {
        const ENDPOINT: &str = "graph /{ig-user-id}/media (resumed)";
        let family = Self::token_family(ENDPOINT, token)?;
        let mut url = self.checked_next(ENDPOINT, family, stored)?;
        url.query_pairs_mut()
            .append_pair("access_token", token.expose());
        Ok(url)
    }

    /// The page behind a previous page's `next` link.
    pub async fn next_media_page(
        &self,
        token: &AccessToken,
        next: &Url,
    ) -> Result<MediaPage, MetaError> {
        const ENDPOINT: &str = "graph /{ig-user-id}/media (next page)";
        let family = Self::token_family(ENDPOINT, token)?;
        let request = self.http.get(next.clone());
        self.read_media_page(ENDPOINT, family, request).await
    }

    /// Up to `max_items` of the newest posts, following `paging.next` until it is absent.
    pub async fn recent_media(
        &self,
        token: &AccessToken,
        ig_user_id: &str,
        max_items: usize,
    ) -> Result<Vec<Media>, MetaError> {
        let page_size = max_items.clamp(1, MAX_PAGE_SIZE as usize) as u32;
        let mut page = self.media_page(token, ig_user_id, page_size).await?;
        let mut items = std::mem::take(&mut page.items);
        while items.len() < max_items {
            let Some(next) = page.next.take() else { break };
            page = self.next_media_page(token, &next).await?;
            if page.items.is_empty() {
                break;
            }
            items.append(&mut page.items);
        }
        items.truncate(max_items);
        Ok(items)
    }

    async fn read_media_page(
        &self,
        endpoint: &'static str,
        family: TokenFamily,
        request: reqwest::RequestBuilder,
    ) -> Result<MediaPage, MetaError> {
        let page: Paged<Media> = self.send_json(endpoint, request).await?;
        let next = match page.paging.and_then(|p| p.next) {
            None => None,
            Some(next) => Some(self.checked_next(endpoint, family, &next)?),
        };
        Ok(MediaPage {
            items: page.data,
            next,
        })
    }

    /// Accepts a `paging.next` URL only if it points at the host we are configured for.
    fn checked_next(
        &self,
        endpoint: &'static str,
        family: TokenFamily,
        next: &str,
    ) -> Result<Url, MetaError> {
        let base = self.graph_base(family);
        let url = Url::parse(next).map_err(|_| MetaError {
            endpoint,
            failure: Failure::Malformed {
                http_status: 200,
                detail: "paging.next is not a URL".into(),
            },
            action: Action::Retry,
        })?;
        let same_origin = url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
            && url.path().starts_with(base.path().trim_end_matches('/'));
        if same_origin {
            Ok(url)
        } else {
            Err(MetaError::refused(
                endpoint,
                format!(
                    "paging.next points at {} instead of the configured host; not following it",
                    url.host_str().unwrap_or("?")
                ),
            ))
        }
    }

    /// One post, e.g. to get fresh URLs or to check whether it still exists (`Action::Gone`).
    pub async fn media(&self, token: &AccessToken, media_id: &str) -> Result<Media, MetaError> {
        const ENDPOINT: &str = "graph /{ig-media-id}";
        let family = Self::token_family(ENDPOINT, token)?;
        let url = self.graph_url(family, &[media_id]);
        self.with_fields(family, Node::Media, &url, token, &[], |request| {
            self.send_json(ENDPOINT, request)
        })
        .await
        .map_err(MetaError::for_single_object)
    }

    /// The Pages a Facebook user shared, each with its Page token and linked Instagram account.
    pub async fn facebook_pages(
        &self,
        user_token: &AccessToken,
    ) -> Result<Vec<FacebookPage>, MetaError> {
        const ENDPOINT: &str = "graph.facebook.com /me/accounts";
        check_family(ENDPOINT, user_token, TokenFamily::Facebook)?;
        let url = self.graph_url(TokenFamily::Facebook, &["me", "accounts"]);
        let mut request = self.http.get(url).query(&[
            ("fields", "id,name,access_token"),
            ("limit", "100"),
            ("access_token", user_token.expose()),
        ]);
        let mut raw_pages = Vec::new();
        // Bounded: an account with more than 2,000 Pages is not a feed widget's customer.
        for _ in 0..20 {
            let page: Paged<RawPage> = self.send_json(ENDPOINT, request).await?;
            raw_pages.extend(page.data);
            match page.paging.and_then(|p| p.next) {
                Some(next) => {
                    let next = self.checked_next(ENDPOINT, TokenFamily::Facebook, &next)?;
                    request = self.http.get(next);
                }
                None => break,
            }
        }
        let mut pages = Vec::with_capacity(raw_pages.len());
        for raw in raw_pages {
            // A Page listed without a token is one the user cannot act on; it cannot be used.
            let Some(page_token) = raw.access_token else {
                continue;
            };
            let instagram_business_account =
                self.page_instagram_account(&page_token, &raw.id).await?;
            pages.push(FacebookPage {
                id: raw.id,
                name: raw.name.unwrap_or_default(),
                access_token: page_token,
                instagram_business_account,
            });
        }
        Ok(pages)
    }

    /// The Instagram professional account linked to a Page, if any.
    pub async fn page_instagram_account(
        &self,
        page_token: &AccessToken,
        page_id: &str,
    ) -> Result<Option<String>, MetaError> {
        const ENDPOINT: &str = "graph.facebook.com /{page-id}";
        check_family(ENDPOINT, page_token, TokenFamily::Facebook)?;
        let url = self.graph_url(TokenFamily::Facebook, &[page_id]);
        let request = self.http.get(url).query(&[
            ("fields", "instagram_business_account"),
            ("access_token", page_token.expose()),
        ]);
        let reply: PageIgAccount = self.send_json(ENDPOINT, request).await?;
        Ok(reply.instagram_business_account.map(|a| a.id))
    }

    /// What Meta knows about a Facebook token (validity, expiry, data-access expiry, scopes),
    /// asked with the app token. The only way to learn a Page token died without using it.
    pub async fn debug_token(&self, input: &AccessToken) -> Result<TokenInfo, MetaError> {
        const ENDPOINT: &str = "graph.facebook.com /debug_token";
        let url = self.graph_url(TokenFamily::Facebook, &["debug_token"]);
        let app_token = format!(
            "{}|{}",
            self.app.facebook_app_id,
            self.app.facebook_app_secret.expose()
        );
        let request = self.http.get(url).query(&[
            ("input_token", input.expose()),
            ("access_token", app_token.as_str()),
        ]);
        let reply: DebugTokenReply = match self.send_json(ENDPOINT, request).await {
            Ok(reply) => reply,
            // The inspected token's own trouble comes back inside `data` with a 200. An error of
            // the call itself that says "reconnect" is about the token we authenticate with,
            // the app token: the app id or secret is wrong, whatever Meta's wording.
            Err(mut e) if matches!(e.action, super::Action::Reconnect { .. }) => {
                e.action = super::Action::Operator {
                    problem: super::OperatorProblem::AppCredentials,
                };
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let d = reply.data;
        Ok(TokenInfo {
            is_valid: d.is_valid,
            token_type: d.token_type,
            app_id: d.app_id,
            user_id: d.user_id,
            expires_at: d.expires_at.filter(|t| *t > 0),
            data_access_expires_at: d.data_access_expires_at.filter(|t| *t > 0),
            issued_at: d.issued_at,
            scopes: d.scopes,
            error: d
                .error
                .map(|e| (e.code, e.subcode, super::errors::scrub(&e.message))),
        })
    }
}
