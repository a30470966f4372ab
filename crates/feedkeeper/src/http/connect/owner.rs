//! The owner starts a login from the dashboard: a new connection or a reconnect.

use super::*;

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub(super) csrf: String,
}

/// `POST /connections/connect/{provider}`: the owner connects an account of their own.
pub async fn start_owner(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(provider): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let provider = Provider::parse(&provider)?;
    begin(
        &state,
        provider,
        Starter {
            owner: user.id,
            binding: &user.csrf,
            link: None,
            reconnect: None,
        },
    )
    .await
}

/// `POST /connections/{id}/reconnect`: the owner logs in again for one of their connections.
pub async fn start_reconnect(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let c = stored::get_owned(&state.db, user.id, crate::http::path_id(&id)?).await?;
    let provider = provider_of(&c);
    begin(
        &state,
        provider,
        Starter {
            owner: user.id,
            binding: &user.csrf,
            link: None,
            reconnect: Some(c.id),
        },
    )
    .await
}

pub(super) fn provider_of(c: &Connection) -> Provider {
    match c.login_kind() {
        crate::db::connections::LoginKind::Instagram => Provider::Instagram,
        crate::db::connections::LoginKind::Facebook => Provider::Facebook,
    }
}

// ---- client links ----------------------------------------------------------------------------
