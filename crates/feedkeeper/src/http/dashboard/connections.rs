//! The connections pages: the owner's Instagram accounts with their health in plain words, one
//! account's incidents and audit log, and the buttons that act on it (check now, reconnect link,
//! disconnect).
//!
//! Every read goes through `db::connections::get_owned`/`list_owned` with the logged-in user's id:
//! another tenant's connection answers 404, exactly like a missing one. The login flows behind
//! "Connect" and "Reconnect" live in `http::connect`; this module only links to them.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse as _, Redirect, Response};
use serde::Deserialize;

use super::links;
use crate::accounts::session::Tone;
use crate::accounts::{CurrentUser, Page};
use crate::clock::format_utc;
use crate::connections::{self, Actor, CheckNow};
use crate::db::audit::{self, AuditEntry};
use crate::db::connections::{self as stored, Connection, LoginKind, Status};
use crate::db::incidents::{self, Incident};
use crate::error::AppError;
use crate::error::render;
use crate::http::path_id;
use crate::meta::ReconnectReason;
use crate::state::AppState;

/// How many audit rows the detail page shows (newest first).
const AUDIT_ROWS: i64 = 200;
/// How long a reconnect link made from the connections page works.
const RECONNECT_LINK_DAYS: i64 = 7;

/// A connection as the pages show it: every value already in plain words.
pub struct ConnectionView {
    pub id: i64,
    pub username: String,
    pub display_name: Option<String>,
    /// Shown instead of the profile picture. Meta's picture URLs expire within days and are
    /// served with `cross-origin-resource-policy: same-origin`, and a browser of ours should
    /// never contact Meta: the picture shows once the image store keeps its own copy.
    pub initials: String,
    /// A "Business connection FB" (Facebook Login, Page token).
    pub business_fb: bool,
    pub page_name: Option<String>,
    /// `ok`, `warn` or `bad`, for the status badge's colour.
    pub tone: &'static str,
    /// "Active", "Needs reconnecting: …", "Having trouble: …".
    pub status: String,
    /// Extra sentences under the status (app removed, data deleted).
    pub notes: Vec<String>,
    /// Label and value pairs: expiry, last refresh, check, sync and error.
    pub facts: Vec<(&'static str, String)>,
    /// The open incident, in words ("Needs reconnecting, since …").
    pub incident: Option<String>,
    /// Whether a login is stored (a check is possible).
    pub has_token: bool,
    /// Made through a client link: the link's label, and the client's email if the link named one.
    pub client_label: Option<String>,
    pub client_email: Option<String>,
}

impl ConnectionView {
    pub fn new(state: &AppState, c: &Connection, open: Option<&Incident>) -> ConnectionView {
        let when = |t: Option<i64>| t.map_or_else(|| "never".to_owned(), format_utc);
        let business_fb = c.login_kind() == LoginKind::Facebook;
        let mut facts = Vec::new();
        if c.token_sealed.is_none() {
            facts.push((
                "Expiry",
                "No login stored (its data was deleted)".to_owned(),
            ));
        } else if c.status() == Status::NeedsReconnect {
            // A refused login has no "valid until" worth showing.
            facts.push(("Expiry", "Meta no longer accepts this login".to_owned()));
        } else if business_fb {
            // Page tokens have no end date (Meta reports none, or 0); Facebook still wants the
            // person to log in again every 90 days, which is the date that matters.
            match c.token_expires_at.filter(|&t| t > 0) {
                Some(t) => facts.push(("Expiry", format!("Login valid until {}", format_utc(t)))),
                None => facts.push(("Expiry", "No end date (a Page login)".to_owned())),
            }
            if let Some(t) = c.data_access_expires_at.filter(|&t| t > 0) {
                facts.push((
                    "Log in again by",
                    format!(
                        "{} (Facebook asks for a new login every 90 days)",
                        format_utc(t)
                    ),
                ));
            }
        } else {
            match c.token_expires_at {
                Some(t) => facts.push((
                    "Expiry",
                    format!(
                        "Login valid until {}",
                        crate::clock::format_with_distance(t, state.clock.now())
                    ),
                )),
                None => facts.push(("Expiry", "Login expiry unknown".to_owned())),
            }
        }
        if !business_fb {
            facts.push(("Last renewed", when(c.last_refresh_at)));
        }
        // A failed check is a check too: say when, and that it failed.
        let last_checked = match (c.last_check_at, c.last_error_at) {
            (ok, Some(failed))
                if ok.is_none_or(|ok| failed >= ok) && c.status() != Status::Active =>
            {
                format!("{} ({})", format_utc(failed), trouble_words(c))
            }
            (ok, _) => when(ok),
        };
        facts.push(("Last checked", last_checked));
        facts.push(("Last synced", when(c.last_sync_at)));
        // Needs-reconnect says why in its status line; Meta's own words would repeat it.
        if c.status() == Status::Degraded
            && let Some(error) = &c.last_error
        {
            let at = c
                .last_error_at
                .map(|t| format!(" ({})", format_utc(t)))
                .unwrap_or_default();
            facts.push(("Last error", format!("{error}{at}")));
        }

        let mut notes = Vec::new();
        if let Some(t) = c.deauthorized_at {
            if c.data_purged_at.is_none() {
                let purge = t + state.policy().deauthorized_grace;
                notes.push(format!(
                    "feedkeeper was removed from the account's connected apps on {}. Its data will \
                     be deleted on {} unless it is reconnected before.",
                    format_utc(t),
                    format_utc(purge)
                ));
            } else {
                notes.push(format!(
                    "feedkeeper was removed from the account's connected apps on {}.",
                    format_utc(t)
                ));
            }
        }
        if let Some(t) = c.data_purged_at {
            notes.push(format!(
                "Its data was deleted on {}. Reconnect it to show its posts again.",
                format_utc(t)
            ));
        }

        let (tone, status) = status_words(c);
        ConnectionView {
            id: c.id.0,
            username: c.username.clone(),
            display_name: c.display_name.clone().filter(|n| !n.trim().is_empty()),
            initials: initials(c.display_name.as_deref().unwrap_or(&c.username)),
            business_fb,
            page_name: c.fb_page_name.clone(),
            tone,
            status,
            notes,
            facts,
            incident: open.map(|i| match i.kind.as_str() {
                // The status line already says it needs reconnecting, and why.
                "reconnect_needed" => {
                    format!("Waiting for a reconnect since {}", format_utc(i.opened_at))
                }
                kind => format!(
                    "{}, since {}",
                    incident_kind_words(kind),
                    format_utc(i.opened_at)
                ),
            }),
            has_token: c.token_sealed.is_some(),
            client_label: c.client_label.clone(),
            client_email: c.client_email.clone(),
        }
    }
}

/// What went wrong with the last call to Meta: an error code means Meta answered, with an
/// error; none means no answer came (a timeout, a refused connection).
fn trouble_words(c: &Connection) -> &'static str {
    if c.last_error_code.is_some() {
        "Meta answered with an error"
    } else {
        "Meta did not answer"
    }
}

/// The status in plain words, with the badge tone.
fn status_words(c: &Connection) -> (&'static str, String) {
    match c.status() {
        Status::Active => ("ok", "Active".to_owned()),
        Status::Degraded => (
            "warn",
            format!(
                "Having trouble: {}; retrying automatically",
                trouble_words(c)
            ),
        ),
        Status::NeedsReconnect => (
            "bad",
            format!("Needs reconnecting: {}", reason_words(c.reason.as_deref())),
        ),
    }
}

/// A stored reconnect reason in plain words; an unknown one is shown as stored.
pub(super) fn reason_words(reason: Option<&str>) -> String {
    match reason {
        Some(r) => ReconnectReason::parse(r)
            .map(|r| r.describe().to_owned())
            .unwrap_or_else(|| r.to_owned()),
        None => ReconnectReason::Unknown.describe().to_owned(),
    }
}

fn status_name(s: &str) -> String {
    match s {
        "active" => "Active".to_owned(),
        "degraded" => "Having trouble".to_owned(),
        "needs_reconnect" => "Needs reconnecting".to_owned(),
        other => other.to_owned(),
    }
}

fn incident_kind_words(kind: &str) -> String {
    match kind {
        "reconnect_needed" => "Needs reconnecting".to_owned(),
        "degraded_too_long" => "Having trouble for too long".to_owned(),
        "expiry_at_risk" => "The login is about to expire and cannot be renewed".to_owned(),
        "data_access_expiring" => "Facebook data access is about to expire".to_owned(),
        other => other.to_owned(),
    }
}

fn event_words(event: &str) -> String {
    match event {
        "connected" => "Connected".to_owned(),
        "reconnected" => "Reconnected".to_owned(),
        "refreshed" => "Login renewed".to_owned(),
        "status_changed" => "Status changed".to_owned(),
        "deauthorized" => "Removed from the account's connected apps".to_owned(),
        "data_purged" => "Data deleted".to_owned(),
        "check_requested" | "refresh_requested" => "Check requested".to_owned(),
        other => other.to_owned(),
    }
}

/// `text` to follow a word mid-sentence: its first letter in lower case, and nothing else
/// (names such as "Meta" or "Instagram" inside it keep their capitals).
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Meta's account type in words (`BUSINESS`, `MEDIA_CREATOR`, `CREATOR`).
fn account_type_words(kind: &str) -> String {
    match kind {
        "BUSINESS" => "Business account".to_owned(),
        "MEDIA_CREATOR" | "CREATOR" => "Creator account".to_owned(),
        "PERSONAL" => "Personal account".to_owned(),
        other => other.to_lowercase(),
    }
}

fn actor_words(actor: &str) -> String {
    match actor {
        "worker" => "feedkeeper (automatic)".to_owned(),
        "user" => "You".to_owned(),
        "client" => "Client (through a link)".to_owned(),
        "meta" => "Meta".to_owned(),
        "operator" => "An operator (command line)".to_owned(),
        other => other.to_owned(),
    }
}

/// Up to two letters for an avatar placeholder: "Bakery & Co" → "BC", "shop_1" → "S1".
fn initials(name: &str) -> String {
    let letters: String = name
        .split(|c: char| c.is_whitespace() || c == '_' || c == '.' || c == '-')
        .filter_map(|word| word.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    if letters.is_empty() {
        "?".to_owned()
    } else {
        letters
    }
}

#[derive(Template)]
#[template(path = "connections.html")]
struct ListPage {
    page: Page,
    connections: Vec<ConnectionView>,
    /// Problems of the Meta app's configuration, which only the operator can fix (shown to
    /// operators).
    problems: Vec<super::system::ProblemView>,
    /// Such a problem holds up checks, for someone who is not an operator.
    held_up: bool,
    /// In the demo: whom to log in to the simulated Instagram as.
    demo_accounts: Vec<crate::state::DemoAccount>,
}

/// `GET /connections`.
pub async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<Response, AppError> {
    let mut views = Vec::new();
    let mut all = stored::list_owned(&state.db, user.id).await?;
    // Connections a person must act on come first, then the troubled ones, then the rest (the
    // sort is stable: alphabetical within each group).
    all.sort_by_key(|c| match c.status() {
        Status::NeedsReconnect => 0,
        Status::Degraded => 1,
        Status::Active => 2,
    });
    for c in all {
        let open = incidents::open_for(&state.db, c.id).await?;
        views.push(ConnectionView::new(&state, &c, open.as_ref()));
    }
    render(&ListPage {
        page: Page::for_user(&user, "Connections"),
        connections: views,
        // The details (and the System status page) are the operator's; others learn that
        // checks are held up, not why.
        problems: if user.is_operator {
            super::system::problem_views(&state).await?
        } else {
            Vec::new()
        },
        held_up: !user.is_operator
            && !crate::db::operator_problems::open(&state.db)
                .await?
                .is_empty(),
        demo_accounts: state
            .demo
            .as_deref()
            .map(|d| d.accounts.clone())
            .unwrap_or_default(),
    })
}

/// One incident, in words.
struct IncidentView {
    kind: String,
    reason: Option<String>,
    opened: String,
    closed: Option<String>,
}

/// One audit row, in words.
struct AuditView {
    at: String,
    event: String,
    /// "Active → Needs reconnecting".
    change: Option<String>,
    reason: Option<String>,
    /// "190 / 460".
    meta_code: Option<String>,
    detail: Option<String>,
    /// Meta's message behind a status change, shown with its code under "For support".
    meta_message: Option<String>,
    actor: String,
}

impl From<&AuditEntry> for AuditView {
    fn from(e: &AuditEntry) -> Self {
        let change = match (&e.from_status, &e.to_status) {
            (Some(from), Some(to)) => Some(format!("{} → {}", status_name(from), status_name(to))),
            (None, Some(to)) => Some(format!("→ {}", status_name(to))),
            (Some(from), None) => Some(format!("{} →", status_name(from))),
            (None, None) => None,
        };
        AuditView {
            at: format_utc(e.at),
            event: event_words(&e.event),
            change,
            reason: e.reason.as_deref().map(|r| reason_words(Some(r))),
            meta_code: e.meta_code.map(|code| match e.meta_subcode {
                Some(sub) => format!("{code} / {sub}"),
                None => code.to_string(),
            }),
            // A status change with a reason says it in plain words; Meta's own message for it
            // goes with the code, for support.
            detail: e
                .detail
                .clone()
                .filter(|_| e.reason.is_none() || e.meta_code.is_none()),
            meta_message: e
                .detail
                .clone()
                .filter(|_| e.reason.is_some() && e.meta_code.is_some()),
            actor: actor_words(&e.actor),
        }
    }
}

#[derive(Template)]
#[template(path = "connection_detail.html")]
struct DetailPage {
    page: Page,
    c: ConnectionView,
    incidents: Vec<IncidentView>,
    audit: Vec<AuditView>,
    audit_limit: i64,
    /// How many posts the sync keeps for it.
    posts_stored: usize,
    mail: super::mail::ConnectionMail,
}

/// `GET /connections/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let c = stored::get_owned(&state.db, user.id, path_id(&id)?).await?;
    let all_incidents = incidents::list(&state.db, c.id).await?;
    let open = all_incidents.iter().find(|i| i.closed_at.is_none());
    let mut view = ConnectionView::new(&state, &c, open);
    let mut about = vec![
        ("Instagram account id", c.ig_user_id.clone()),
        (
            "Connected with",
            match c.login_kind() {
                LoginKind::Instagram => "Instagram login".to_owned(),
                LoginKind::Facebook => "Facebook login (business connection)".to_owned(),
            },
        ),
        ("Connected since", format_utc(c.created_at)),
        ("Status since", format_utc(c.status_changed_at)),
    ];
    if let Some(kind) = &c.account_type {
        about.push(("Account type", account_type_words(kind)));
    }
    // One list, so the labels line up.
    view.facts.extend(about);
    let incidents = all_incidents
        .iter()
        .map(|i| IncidentView {
            kind: incident_kind_words(&i.kind),
            reason: i.reason.as_deref().map(|r| reason_words(Some(r))),
            opened: format_utc(i.opened_at),
            closed: i.closed_at.map(format_utc),
        })
        .collect();
    let audit = audit::list(&state.db, c.id, AUDIT_ROWS)
        .await?
        .iter()
        .map(AuditView::from)
        .collect();
    let posts_stored =
        crate::db::posts::list_posts(&state.db, c.id, state.config.sync.max_posts as i64)
            .await?
            .len();
    render(&DetailPage {
        page: Page::for_user(&user, format!("@{}", c.username)),
        c: view,
        incidents,
        audit,
        audit_limit: AUDIT_ROWS,
        posts_stored,
        mail: super::mail::connection_mail(&state, &c).await?,
    })
}

/// A form that carries only the CSRF token (and, for "Refresh now", where to go back to).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ActionForm {
    csrf: String,
    /// `detail` to come back to the connection's page; anything else means the list. Never a URL,
    /// so the form cannot be turned into an open redirect.
    back: String,
}

/// `POST /connections/{id}/refresh`: checks the login now (renews it when Meta allows, else
/// proves it alive), as `feedkeeper connections refresh` does, and says what came of it.
pub async fn refresh(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let c = stored::get_owned(&state.db, user.id, path_id(&id)?).await?;
    let back = if form.back == "detail" {
        format!("/connections/{}", c.id)
    } else {
        "/connections".to_owned()
    };
    let (tone, message) = match connections::check_now(&state, c.id, Actor::User, &state.node)
        .await?
    {
        CheckNow::Checked(report) => match &report.connection {
            Some(now) => (
                match now.status() {
                    Status::Active => Tone::Ok,
                    Status::Degraded => Tone::Warn,
                    Status::NeedsReconnect => Tone::Bad,
                },
                match report.next_due {
                    Some(next) => format!(
                        "{} Next automatic check: {}.",
                        refresh_message(now, report.renewed),
                        crate::clock::format_with_distance(next, state.clock.now())
                    ),
                    None => refresh_message(now, report.renewed),
                },
            ),
            None => (
                Tone::Warn,
                format!("@{} was removed meanwhile.", c.username),
            ),
        },
        CheckNow::NoToken => (
            Tone::Bad,
            format!(
                "@{} has no login stored (its data was deleted). Reconnect it to show its posts again.",
                c.username
            ),
        ),
        // Meta is throttling this account (or the whole app): asking again now would only prolong it.
        CheckNow::Paused { until } => (
            Tone::Warn,
            format!(
                "Meta asked feedkeeper to slow down for @{}, so it was not checked now. The next \
             try is automatic, after {}.",
                c.username,
                format_utc(until)
            ),
        ),
        CheckNow::Cooldown { until } => (
            Tone::Warn,
            format!(
                "@{} was checked moments ago ({}). You can check it again after {}.",
                c.username,
                lowercase_first(&status_words(&c).1),
                format_utc(until)
            ),
        ),
        CheckNow::Busy { .. } => (
            Tone::Warn,
            format!(
                "@{} is being checked right now; its page shows the result in a moment.",
                c.username
            ),
        ),
    };
    user.flash_with(&state, tone, &message).await?;
    Ok(Redirect::to(&back).into_response())
}

/// What a check found, in one sentence for the flash.
fn refresh_message(c: &Connection, renewed: bool) -> String {
    let name = &c.username;
    match c.status() {
        Status::Active => {
            let expiry = c.token_expires_at.filter(|&t| t > 0).map(format_utc);
            match (c.login_kind(), expiry) {
                (_, Some(until)) if renewed => {
                    format!("@{name} is active; login renewed until {until}.")
                }
                (_, Some(until)) => format!("@{name} is active; login valid until {until}."),
                (LoginKind::Facebook, None) => {
                    format!("@{name} is active; its Page login does not expire.")
                }
                (LoginKind::Instagram, None) => format!("@{name} is active."),
            }
        }
        Status::Degraded => {
            let error = c
                .last_error
                .as_deref()
                .map(|e| format!(" (Meta said: {e})"))
                .unwrap_or_default();
            format!(
                "@{name} is having trouble: {}; retrying automatically{error}.",
                trouble_words(c)
            )
        }
        Status::NeedsReconnect => format!(
            "@{name} needs reconnecting: {}. Press Reconnect, or send the account holder a \
             reconnect link.",
            reason_words(c.reason.as_deref())
        ),
    }
}

/// `POST /connections/{id}/reconnect-link`: a single-use link for the account holder to log in
/// again, shown once.
pub async fn reconnect_link(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let c = stored::get_owned(&state.db, user.id, path_id(&id)?).await?;
    links::issue(
        &state,
        &user,
        links::Issue {
            label: &format!("Reconnect @{}", c.username),
            client_email: None,
            connection: Some(&c),
            single_use: true,
            days: RECONNECT_LINK_DAYS,
        },
    )
    .await
}

#[derive(Template)]
#[template(path = "disconnect_confirm.html")]
struct ConfirmPage {
    page: Page,
    c: ConnectionView,
    /// The owner's widgets showing this account (they will show nothing).
    widgets: Vec<String>,
}

/// `GET /connections/{id}/disconnect`: asks before deleting.
pub async fn confirm_disconnect(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let c = stored::get_owned(&state.db, user.id, path_id(&id)?).await?;
    let open = incidents::open_for(&state.db, c.id).await?;
    let widgets = crate::db::widgets::list_owned(&state.db, user.id)
        .await?
        .into_iter()
        .filter(|w| w.connection_id == Some(c.id))
        .map(|w| w.name)
        .collect();
    render(&ConfirmPage {
        page: Page::for_user(&user, format!("Disconnect @{}?", c.username)),
        c: ConnectionView::new(&state, &c, open.as_ref()),
        widgets,
    })
}

/// `POST /connections/{id}/disconnect`: removes the connection and everything stored about it.
pub async fn disconnect(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, AppError> {
    user.verify_csrf(&form.csrf)?;
    let c = stored::get_owned(&state.db, user.id, path_id(&id)?).await?;
    connections::disconnect(&state, c.id).await?;
    tracing::info!(user = %user.id, connection = %c.id, "connection disconnected by its owner");
    user.flash(
        &state,
        &format!("Disconnected @{} and deleted its data.", c.username),
    )
    .await?;
    Ok(Redirect::to("/connections").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConnectionId;

    #[test]
    fn a_status_mid_sentence_keeps_its_names_capitalised() {
        assert_eq!(
            lowercase_first("Having trouble: Meta did not answer"),
            "having trouble: Meta did not answer"
        );
        assert_eq!(lowercase_first(""), "");
    }

    #[test]
    fn initials_take_the_first_letters_of_up_to_two_words() {
        assert_eq!(initials("Bakery & Co"), "BC");
        assert_eq!(initials("shop_1"), "S1");
        assert_eq!(initials("harbor"), "H");
        assert_eq!(initials("  "), "?");
        assert_eq!(initials("<script>"), "S");
    }

    #[test]
    fn statuses_are_told_in_plain_words() {
        let mut c = Connection::example(LoginKind::Instagram, Status::NeedsReconnect);
        c.reason = Some("password_changed".into());
        let (tone, words) = status_words(&c);
        assert_eq!(tone, "bad");
        assert!(words.starts_with("Needs reconnecting: the password was changed on Instagram"));
        c.set_status(Status::Degraded);
        assert!(status_words(&c).1.contains("retrying automatically"));
        assert_eq!(reason_words(Some("something_new")), "something_new");
        assert_eq!(status_name("needs_reconnect"), "Needs reconnecting");
    }

    #[test]
    fn path_ids_that_are_not_numbers_are_not_found() {
        assert!(matches!(
            path_id::<ConnectionId>("x1"),
            Err(AppError::NotFound)
        ));
        assert!(matches!(
            path_id::<ConnectionId>("99999999999999999999"),
            Err(AppError::NotFound)
        ));
        assert_eq!(path_id::<ConnectionId>("7").ok(), Some(ConnectionId(7)));
    }
}
