//! Choosing which Facebook Pages to connect after a Facebook login.

use super::*;

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct StoredPage {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) ig: Option<String>,
    /// The linked Instagram account's @handle, when Meta told us.
    #[serde(default)]
    pub(super) username: Option<String>,
    pub(super) token: String,
}

/// One Page on the picker.
struct PageOption {
    id: String,
    name: String,
    username: Option<String>,
    /// The owner has this Instagram account connected already (connecting it again renews it).
    connected: bool,
}

#[derive(Template)]
#[template(path = "page_picker.html")]
struct PagePicker {
    page: Page,
    choice: String,
    options: Vec<PageOption>,
}

async fn load_choice(
    state: &AppState,
    choice: &str,
    headers: &HeaderMap,
    user: Option<&CurrentUser>,
) -> Result<Result<(page_choices::PageChoice, Vec<StoredPage>), Response>, AppError> {
    let now = state.clock.now();
    let expired = || {
        problem(
            StatusCode::GONE,
            "Please start again",
            "This choice has expired (after 30 minutes) or was already made. Start the connection again.",
            user,
            None,
        )
    };
    if choice.len() > 200 {
        return Ok(Err(expired()?));
    }
    let Some(stored_choice) = page_choices::get(&state.db, &hash_token(choice), now).await? else {
        return Ok(Err(expired()?));
    };
    let bound = match stored_choice.link_id {
        None => user.is_some_and(|u| {
            u.id == stored_choice.owner_id && hash_token(&u.csrf) == stored_choice.binding_hash
        }),
        Some(_) => read_our_cookie(&state.config, headers, LINK_COOKIE)
            .is_some_and(|c| hash_token(c) == stored_choice.binding_hash),
    };
    if !bound {
        return Ok(Err(problem(
            StatusCode::FORBIDDEN,
            "Please start again",
            "This choice belongs to another browser or session.",
            user,
            None,
        )?));
    }
    let json = state
        .cipher
        .open(
            &stored_choice.pages_sealed,
            &format!("page-choice:{}", stored_choice.id_hash),
        )
        .map_err(|e| AppError::Internal(anyhow::anyhow!("page choice does not open: {e}")))?;
    let pages: Vec<StoredPage> = serde_json::from_str(&json).map_err(anyhow::Error::from)?;
    Ok(Ok((stored_choice, pages)))
}

/// `GET /connect/facebook/pages/{choice}`: which Pages' Instagram accounts to connect.
pub async fn page_picker(
    State(state): State<AppState>,
    Path(choice): Path<String>,
    headers: HeaderMap,
    user: Option<CurrentUser>,
) -> Result<Response, AppError> {
    let (stored_choice, pages) = match load_choice(&state, &choice, &headers, user.as_ref()).await?
    {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let mut options = Vec::with_capacity(pages.len());
    for p in pages {
        let connected = match &p.ig {
            Some(ig) => stored::find_by_ig_user(&state.db, stored_choice.owner_id, ig)
                .await?
                .is_some(),
            None => false,
        };
        options.push(PageOption {
            id: p.id,
            name: p.name,
            username: p.username,
            connected,
        });
    }
    let csrf = match &user {
        Some(u) => u.csrf.clone(),
        None => read_our_cookie(&state.config, &headers, LINK_COOKIE)
            .unwrap_or("")
            .to_owned(),
    };
    let mut page = Page::public("Choose the accounts to connect", csrf);
    if let Some(u) = &user {
        page = Page {
            flash: None,
            ..Page::for_user(u, "Choose the accounts to connect")
        };
    }
    render(&PagePicker {
        page,
        choice,
        options,
    })
}

/// The picker's answer: `page_id` repeated, plus `csrf`.
#[derive(Deserialize)]
pub struct PickedPages {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    page_id: Vec<String>,
    /// The Cancel button.
    #[serde(default)]
    cancel: bool,
}

/// `POST /connect/facebook/pages/{choice}`.
pub async fn pick_pages(
    State(state): State<AppState>,
    Path(choice): Path<String>,
    headers: HeaderMap,
    user: Option<CurrentUser>,
    RawForm(picked): RawForm,
) -> Result<Response, AppError> {
    let (stored_choice, pages) = match load_choice(&state, &choice, &headers, user.as_ref()).await?
    {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let expected_csrf = match (&stored_choice.link_id, &user) {
        (None, Some(u)) => u.csrf.clone(),
        _ => read_our_cookie(&state.config, &headers, LINK_COOKIE)
            .unwrap_or("")
            .to_owned(),
    };
    if !tokens_match(&expected_csrf, &picked.csrf) {
        return problem(
            StatusCode::FORBIDDEN,
            "Please start again",
            "This form has expired. Reload the page and choose again.",
            user.as_ref(),
            None,
        );
    }
    if picked.cancel {
        // Nothing is connected, and the choice (with its Page tokens) is gone at once; a
        // single-use link it came through may be tried again.
        page_choices::take(&state.db, &stored_choice.id_hash).await?;
        if let Some(id) = stored_choice.link_id {
            let link = link_store::get(&state.db, id).await?;
            link_store::release(&state.db, &link, &stored_choice.binding_hash).await?;
        }
        return problem(
            StatusCode::OK,
            "Nothing was connected",
            "You cancelled the choice; no account was connected.",
            user.as_ref(),
            None,
        );
    }
    let chosen: Vec<&StoredPage> = pages
        .iter()
        .filter(|p| picked.page_id.contains(&p.id))
        .collect();
    if chosen.is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            "Nothing was chosen",
            "Tick at least one account, then press Connect.",
            user.as_ref(),
            Some((&format!("/connect/facebook/pages/{choice}"), "Choose again")),
        );
    }
    if !page_choices::take(&state.db, &stored_choice.id_hash).await? {
        return problem(
            StatusCode::GONE,
            "Already done",
            "These accounts were already connected from this page.",
            user.as_ref(),
            None,
        );
    }
    let link = match stored_choice.link_id {
        Some(id) => Some(link_store::get(&state.db, id).await?),
        None => None,
    };
    let flow = Flow {
        state: &state,
        owner: stored_choice.owner_id,
        user: user.as_ref(),
        link: link.as_ref(),
        reconnect: stored_choice.connection_id,
        binding: &stored_choice.binding_hash,
    };
    if let Some(refused) = flow.link_refused(state.clock.now()).await? {
        return Ok(refused);
    }
    let expect = match stored_choice.connection_id {
        Some(id) => Some(stored::get(&state.db, id).await?),
        None => None,
    };
    // A few at once (each asks Meta twice), in the order picked.
    use futures_util::StreamExt as _;
    let calls: Vec<_> = chosen
        .into_iter()
        .map(|p| {
            let page = FacebookPage {
                id: p.id.clone(),
                name: p.name.clone(),
                access_token: AccessToken::new(p.token.clone()),
                instagram_business_account: p.ig.clone(),
            };
            let (flow, expect, fb_user_id) =
                (&flow, expect.as_ref(), stored_choice.fb_user_id.clone());
            async move {
                connections::connect_facebook_page(
                    flow.state,
                    stored_choice.owner_id,
                    &page,
                    fb_user_id,
                    expect,
                    flow.actor(),
                    flow.client(),
                )
                .await
            }
        })
        .collect();
    let results: Vec<_> = futures_util::stream::iter(calls)
        .buffered(PAGE_CALLS_AT_ONCE)
        .collect()
        .await;
    // What connected stays connected (and spends a single-use link); the first failure is what
    // the person is told about the rest.
    let mut connected = Vec::new();
    let mut failure = None;
    for result in results {
        match result {
            Ok(c) => connected.push(c),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    flow.finish_partly(connected, failure).await
}

/// A form whose fields may repeat (`page_id=1&page_id=2`), which `axum::Form` cannot read into a
/// `Vec`.
pub struct RawForm(PickedPages);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawForm {
    type Rejection = AppError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| AppError::BadRequest("the form could not be read".into()))?;
        let mut picked = PickedPages {
            csrf: String::new(),
            page_id: Vec::new(),
            cancel: false,
        };
        for (key, value) in url::form_urlencoded::parse(&body) {
            match key.as_ref() {
                "csrf" => picked.csrf = value.into_owned(),
                "page_id" => picked.page_id.push(value.into_owned()),
                "cancel" => picked.cancel = true,
                _ => {}
            }
        }
        Ok(RawForm(picked))
    }
}
