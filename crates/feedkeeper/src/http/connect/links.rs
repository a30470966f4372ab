//! A client opens the link an agency sent: the landing page, and starting the login.

use super::*;

/// A usable link by its secret, or the page explaining why not.
async fn usable_link(
    state: &AppState,
    token: &str,
) -> Result<Result<ConnectLink, Response>, AppError> {
    let now = state.clock.now();
    let link = if token.len() > 200 {
        None
    } else {
        link_store::find_by_token_hash(&state.db, &hash_token(token)).await?
    };
    let Some(link) = link else {
        return Ok(Err(problem(
            StatusCode::NOT_FOUND,
            "This link does not work",
            "The link is not valid. Check that it was copied in full, or ask the person who sent it for a new one.",
            None,
            None,
        )?));
    };
    if let Some(why) = link.unusable(now) {
        let message = match why {
            Unusable::Revoked => {
                "The person who sent this link has withdrawn it. Ask them for a new one."
            }
            Unusable::Expired => "This link has expired. Ask the person who sent it for a new one.",
            Unusable::AlreadyUsed => {
                "This link has already been used. If you need to connect again, ask for a new link."
            }
        };
        return Ok(Err(problem(
            StatusCode::GONE,
            "This link can no longer be used",
            message,
            None,
            None,
        )?));
    }
    Ok(Ok(link))
}

#[derive(Template)]
#[template(path = "link_landing.html")]
struct LinkLanding {
    page: Page,
    token: String,
    requester: String,
    logo_url: Option<String>,
    label: String,
    reconnect_username: Option<String>,
    reconnect_is_facebook: bool,
    expires: String,
}

/// `GET /l/{token}`: the client sees who asks, what will be granted, and how to log in.
pub async fn link_landing(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let link = match usable_link(&state, &token).await? {
        Ok(link) => link,
        Err(page) => return Ok(page),
    };
    let requester = requester(&state, &link, Some(&token)).await?;
    let reconnect = match link.connection_id {
        Some(id) => Some(stored::get(&state.db, id).await?),
        None => None,
    };
    // The cookie doubles as this page's CSRF token (double submit) and binds the login.
    let browser = read_our_cookie(&state.config, &headers, LINK_COOKIE)
        .filter(|v| crate::accounts::csrf::is_well_formed(v))
        .map(str::to_owned)
        .unwrap_or_else(random_token);
    let page = LinkLanding {
        page: Page::public("Connect your Instagram account", browser.clone()),
        requester: requester.name,
        logo_url: requester.logo_url,
        token,
        label: link.label.clone(),
        reconnect_is_facebook: reconnect
            .as_ref()
            .is_some_and(|c| provider_of(c) == Provider::Facebook),
        reconnect_username: reconnect.map(|c| c.username),
        expires: crate::clock::format_utc(link.expires_at),
    };
    let mut response = render(&page)?;
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(&state.config, LINK_COOKIE, &browser, STATE_TTL_SECS * 4),
    );
    Ok(response)
}

/// `GET /l/{token}/logo`: the logo of the organisation that sent a usable link (only the link's
/// holder can see it).
pub async fn link_logo(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let Ok(link) = usable_link(&state, &token).await? else {
        return Err(AppError::NotFound);
    };
    let logo = crate::db::organisations::logo(&state.db, link.owner_id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(crate::http::dashboard::account::logo_response(logo))
}

/// `POST /l/{token}/{provider}`: the client starts the login.
pub async fn link_start(
    State(state): State<AppState>,
    Path((token, provider)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    let provider = Provider::parse(&provider)?;
    let link = match usable_link(&state, &token).await? {
        Ok(link) => link,
        Err(page) => return Ok(page),
    };
    let browser = read_our_cookie(&state.config, &headers, LINK_COOKIE).unwrap_or("");
    if browser.is_empty() || !tokens_match(browser, &form.csrf) {
        return problem(
            StatusCode::FORBIDDEN,
            "Please start again",
            "This page has expired or your browser blocks cookies. Open the link again and press the button once more.",
            None,
            Some((&format!("/l/{token}"), "Open the link again")),
        );
    }
    // A single-use link is this browser's until its login ends: a second browser starting at
    // the same moment cannot connect through it too.
    let now = state.clock.now();
    let until = now + STATE_TTL_SECS + CHOICE_TTL_SECS;
    if !link_store::reserve(&state.db, &link, &hash_token(browser), now, until).await? {
        return problem(
            StatusCode::CONFLICT,
            "This link is in use",
            "Someone is connecting an account with this link in another browser right now. Finish there, or ask the person who sent it for a new link.",
            None,
            None,
        );
    }
    begin(
        &state,
        provider,
        Starter {
            owner: link.owner_id,
            binding: browser,
            link: Some(&link),
            reconnect: link.connection_id,
        },
    )
    .await
}

// ---- Meta's redirect back ------------------------------------------------------------------------
