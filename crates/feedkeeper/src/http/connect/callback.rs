//! Meta's redirect back after the login dialog: check the state, exchange the code, connect.

use super::*;

/// `GET /connect/{provider}/callback`: Meta sends the person back with a code (or an error).
pub async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    user: Option<CurrentUser>,
) -> Result<Response, AppError> {
    let provider = Provider::parse(&provider)?;
    let query = query.unwrap_or_default();
    let now = state.clock.now();
    let parsed = parse_callback(&query);
    let state_value = match &parsed {
        Ok(cb) => cb.state.clone(),
        Err(_) => url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned()),
    };
    let Some(state_value) = state_value.filter(|s| !s.is_empty() && s.len() <= 200) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "This login cannot be completed",
            "The address is missing its login details. Start the connection again.",
            user.as_ref(),
            None,
        );
    };
    let state_hash = hash_token(&state_value);
    let not_usable = |message: &str| {
        problem(
            StatusCode::BAD_REQUEST,
            "This login cannot be completed",
            message,
            user.as_ref(),
            None,
        )
    };
    let started = match oauth_states::lookup(&state.db, &state_hash).await? {
        None => {
            return not_usable(
                "This login was not started here, or its address was changed. Start the connection again.",
            );
        }
        Some(s) if s.used_at.is_some() => {
            return not_usable(
                "This login was already completed. If the account does not show up, start the connection again.",
            );
        }
        Some(s) if s.expires_at <= now => {
            return not_usable(
                "This login took too long (more than 15 minutes). Start the connection again.",
            );
        }
        Some(s) => s,
    };
    let link = match started.link_id {
        Some(id) => Some(link_store::get(&state.db, id).await?),
        None => None,
    };
    // The browser must be the one that started the login. A refused attempt does not spend the
    // state, so whoever saw the address cannot spoil the real login.
    let bound = match &link {
        None => user.as_ref().is_some_and(|u| {
            u.id == started.owner_id && hash_token(&u.csrf) == started.binding_hash
        }),
        Some(_) => read_our_cookie(&state.config, &headers, LINK_COOKIE)
            .is_some_and(|c| hash_token(c) == started.binding_hash),
    };
    if !bound || Provider::parse(&started.provider)? != provider {
        return problem(
            StatusCode::FORBIDDEN,
            "This login cannot be completed",
            "This login was started in another browser or session, so it was not used. Start the connection again from this browser.",
            user.as_ref(),
            None,
        );
    }
    // Single use, even when two requests race here.
    if oauth_states::consume(&state.db, &state_hash, now)
        .await?
        .is_none()
    {
        return not_usable(
            "This login was already completed. If the account does not show up, start the connection again.",
        );
    }
    let flow = Flow {
        state: &state,
        owner: started.owner_id,
        user: user.as_ref(),
        link: link.as_ref(),
        reconnect: started.connection_id,
        binding: &started.binding_hash,
    };
    let callback = match parsed {
        Ok(cb) => cb,
        Err(e) => {
            let message = match &e.failure {
                Failure::Denied { .. } => format!(
                    "You cancelled the {} login, so nothing was connected.",
                    provider.name()
                ),
                _ => "Meta did not send the login back complete. Please try again.".to_owned(),
            };
            flow.release_link().await?;
            return flow.problem("Nothing was connected", &message);
        }
    };
    if let Some(refused) = flow.link_refused(now).await? {
        return Ok(refused);
    }
    let meta = &state.meta;
    let redirect = redirect_uri(&state, provider);
    let expect = match started.connection_id {
        Some(id) => Some(stored::get(&state.db, id).await?),
        None => None,
    };
    let connected = match provider {
        Provider::Instagram => {
            let token = match meta
                .exchange_instagram_code(&callback.code, &redirect)
                .await
            {
                Ok(short) => meta.obtain_long_lived(&short.access_token).await,
                Err(e) => Err(e),
            };
            match token {
                Ok(token) => {
                    connections::connect_instagram(
                        &state,
                        started.owner_id,
                        &token,
                        expect.as_ref(),
                        flow.actor(),
                        flow.client(),
                    )
                    .await
                }
                Err(e) => Err(ConnectError::Meta(e)),
            }
        }
        Provider::Facebook => {
            let pages = async {
                let short = meta
                    .exchange_facebook_code(&callback.code, &redirect)
                    .await?;
                let long = meta
                    .exchange_facebook_long_lived(&short.access_token)
                    .await?;
                let info = meta.debug_token(&long.access_token).await?;
                let pages = meta.facebook_pages(&long.access_token).await?;
                Ok::<_, crate::meta::MetaError>((info.user_id, pages))
            }
            .await;
            match pages {
                Ok((fb_user_id, pages)) => {
                    return flow
                        .pages_chosen_or_offered(fb_user_id, pages, expect.as_ref())
                        .await;
                }
                Err(e) => Err(ConnectError::Meta(e)),
            }
        }
    };
    flow.finish(connected.map(|c| vec![c])).await
}

/// The context of one login being completed.
pub(super) struct Flow<'a> {
    pub(super) state: &'a AppState,
    pub(super) owner: UserId,
    /// The owner's session, for owner flows (checked to be the one that started the login).
    pub(super) user: Option<&'a CurrentUser>,
    pub(super) link: Option<&'a ConnectLink>,
    pub(super) reconnect: Option<ConnectionId>,
    pub(super) binding: &'a str,
}

impl Flow<'_> {
    pub(super) fn actor(&self) -> Actor {
        if self.link.is_some() {
            Actor::Client
        } else {
            Actor::User
        }
    }

    /// The client link this login came through, to be remembered on the connection (a
    /// reconnect link renews a connection that already says whom it is for).
    pub(super) fn client(&self) -> Option<ClientOrigin> {
        self.link
            .filter(|l| l.connection_id.is_none())
            .map(|l| ClientOrigin {
                label: l.label.clone(),
                email: l.client_email.clone(),
            })
    }

    fn problem(&self, title: &str, message: &str) -> Result<Response, AppError> {
        problem(StatusCode::BAD_REQUEST, title, message, self.user, None)
    }

    /// Nothing was connected: the browser's reservation of a single-use link goes, so it (or
    /// another browser) can try again.
    pub(super) async fn release_link(&self) -> Result<(), AppError> {
        if let Some(link) = self.link {
            link_store::release(&self.state.db, link, self.binding).await?;
        }
        Ok(())
    }

    /// Why the link this login came through may not be used now, as a page: expired or
    /// withdrawn meanwhile, or (single use) no longer reserved by this browser.
    pub(super) async fn link_refused(&self, now: i64) -> Result<Option<Response>, AppError> {
        let Some(link) = self.link else {
            return Ok(None);
        };
        if link.unusable(now).is_some() {
            return self
                .problem(
                    "This link can no longer be used",
                    "The link expired or was withdrawn while you were logging in. Ask for a new one.",
                )
                .map(Some);
        }
        if !link_store::holds(&self.state.db, link, self.binding, now).await? {
            return self
                .problem(
                    "This link was used in another browser",
                    "Someone connected an account with this link in another browser while you were logging in. Ask the person who sent it for a new link.",
                )
                .map(Some);
        }
        Ok(None)
    }

    /// After a Facebook login: connect the one eligible Page, or let the person pick.
    async fn pages_chosen_or_offered(
        &self,
        fb_user_id: Option<String>,
        pages: Vec<FacebookPage>,
        expect: Option<&Connection>,
    ) -> Result<Response, AppError> {
        let eligible: Vec<FacebookPage> = pages
            .into_iter()
            .filter(|p| p.instagram_business_account.is_some())
            .filter(|p| {
                expect.is_none_or(|c| {
                    p.instagram_business_account.as_deref() == Some(c.ig_user_id.as_str())
                })
            })
            .collect();
        match eligible.len() {
            0 => self.problem(
                "No Instagram account found",
                match expect {
                    Some(_) => "None of the Facebook Pages you shared is linked to the Instagram account this link is for. Log in again and share that Page.",
                    None => "None of the Facebook Pages you shared has an Instagram professional account linked to it. Link one in the Instagram app (Settings → Account type and tools), or share another Page.",
                },
            ),
            1 => {
                let result = connections::connect_facebook_page(self.state, self.owner, &eligible[0], fb_user_id, expect, self.actor(), self.client()).await;
                self.finish(result.map(|c| vec![c])).await
            }
            _ => self.offer_pages(fb_user_id, eligible).await,
        }
    }

    async fn offer_pages(
        &self,
        fb_user_id: Option<String>,
        pages: Vec<FacebookPage>,
    ) -> Result<Response, AppError> {
        use futures_util::StreamExt as _;
        let now = self.state.clock.now();
        let id = random_token();
        // The @handle each Page would connect, so the person knows what they pick: a few asked
        // at once, and all within one bound (best effort: without it the Page's name shows).
        let deadline = tokio::time::Instant::now() + PAGE_LOOKUP_TIMEOUT;
        let lookups: Vec<_> = pages
            .iter()
            .map(|p| async move {
                let ig = p.instagram_business_account.as_deref()?;
                let asked = self
                    .state
                    .meta
                    .facebook_instagram_profile(&p.access_token, ig);
                tokio::time::timeout_at(deadline, asked)
                    .await
                    .ok()?
                    .ok()?
                    .username
            })
            .collect();
        let usernames = futures_util::stream::iter(lookups)
            .buffered(PAGE_CALLS_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        let stored_pages: Vec<StoredPage> = pages
            .into_iter()
            .zip(usernames)
            .map(|(p, username)| StoredPage {
                id: p.id,
                name: p.name,
                ig: p.instagram_business_account,
                username,
                token: p.access_token.expose().to_owned(),
            })
            .collect();
        let json = serde_json::to_string(&stored_pages).map_err(anyhow::Error::from)?;
        let id_hash = hash_token(&id);
        page_choices::insert(
            &self.state.db,
            &page_choices::PageChoice {
                pages_sealed: self
                    .state
                    .cipher
                    .seal(&json, &format!("page-choice:{id_hash}")),
                id_hash,
                owner_id: self.owner,
                binding_hash: self.binding.to_owned(),
                link_id: self.link.map(|l| l.id),
                connection_id: self.reconnect,
                fb_user_id,
                created_at: now,
                expires_at: now + CHOICE_TTL_SECS,
            },
        )
        .await?;
        Ok(see_other(&format!("/connect/facebook/pages/{id}")))
    }

    pub(super) async fn finish(
        &self,
        result: Result<Vec<Connection>, ConnectError>,
    ) -> Result<Response, AppError> {
        match result {
            Ok(connected) => self.finish_partly(connected, None).await,
            Err(failure) => self.finish_partly(Vec::new(), Some(failure)).await,
        }
    }

    /// Ends a login that connected `connected` and, for the rest, ran into `failure`. With
    /// nothing connected, the link's reservation goes (it may be tried again); with something
    /// connected, the link is spent, and the person learns what did not connect too.
    pub(super) async fn finish_partly(
        &self,
        connected: Vec<Connection>,
        failure: Option<ConnectError>,
    ) -> Result<Response, AppError> {
        let why = match failure {
            None => None,
            Some(ConnectError::Db(e)) if connected.is_empty() => {
                self.release_link().await?;
                return Err(e.into());
            }
            Some(ConnectError::Db(e)) => {
                tracing::error!(error = %e, "a connection could not be stored");
                Some("Something went wrong on our side. Please try again.".to_owned())
            }
            Some(ConnectError::Meta(e)) => {
                tracing::warn!(error = %e, "a connection login failed at Meta");
                Some("Instagram did not accept the login just now. Please try again in a few minutes.".to_owned())
            }
            Some(e) => Some(capitalize(&e.to_string())),
        };
        if connected.is_empty() {
            self.release_link().await?;
            return self.problem(
                "Nothing was connected",
                why.as_deref().unwrap_or("Nothing was chosen."),
            );
        }
        let handles: Vec<String> = connected
            .iter()
            .map(|c| format!("@{}", c.username))
            .collect();
        let names = handles.join(", ");
        match self.link {
            Some(link) => {
                let first_use =
                    link_store::record_use(&self.state.db, link, self.state.clock.now()).await?;
                if !first_use {
                    tracing::info!(link = %link.id, "a single-use link was completed twice at once");
                }
                if let Some(why) = why {
                    return problem(
                        StatusCode::OK,
                        "Only some accounts were connected",
                        &format!("Connected {names}. The others were not: {why}"),
                        None,
                        None,
                    );
                }
                // A page of its own: reloading it says the same, and Meta's code leaves the
                // address bar.
                let now = self.state.clock.now();
                Ok(see_other(&super::done::address(
                    self.state,
                    link.id,
                    &handles,
                    self.binding,
                    now,
                )))
            }
            None => {
                // The owner is back in their dashboard.
                let verb = if self.reconnect.is_some() {
                    "Reconnected"
                } else {
                    "Connected"
                };
                if let Some(user) = self.user {
                    match why {
                        None => user.flash(self.state, &format!("{verb} {names}.")).await?,
                        Some(why) => {
                            user.flash_with(
                                self.state,
                                crate::accounts::session::Tone::Warn,
                                &format!("{verb} {names}. The others were not: {why}"),
                            )
                            .await?
                        }
                    }
                }
                Ok(see_other("/connections"))
            }
        }
    }
}
