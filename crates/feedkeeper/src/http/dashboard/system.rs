//! `GET /system`: what an operator needs to see at a glance: problems only they can fix (the Meta
//! app's configuration), the background jobs per kind, which nodes hold work, and dead jobs.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::accounts::{CurrentUser, Page};
use crate::clock::format_utc;
use crate::clock::wall_ms;
use crate::db::{jobs, operator_problems};
use crate::error::AppError;
use crate::error::render;
use crate::state::AppState;

/// An operator problem, in words.
pub struct ProblemView {
    pub app: &'static str,
    pub advice: &'static str,
    pub message: String,
    pub since: String,
    pub occurrences: i64,
}

/// The open operator problems, for this page and the banner on the connections list.
pub async fn problem_views(state: &AppState) -> Result<Vec<ProblemView>, AppError> {
    Ok(operator_problems::open(&state.db)
        .await?
        .into_iter()
        .map(|p| {
            let (family, problem) = p.parts();
            ProblemView {
                app: if family == "facebook" {
                    "Facebook app"
                } else {
                    "Instagram app"
                },
                advice: problem.map_or("Check the Meta app's settings.", |p| p.describe()),
                message: p.message.clone(),
                since: format_utc(p.first_seen_at),
                occurrences: p.occurrences,
            }
        })
        .collect())
}

struct DeadJobView {
    id: i64,
    kind: String,
    subject: String,
    error: String,
    since: String,
}

#[derive(Template)]
#[template(path = "system.html")]
struct SystemPage {
    page: Page,
    node: String,
    version: &'static str,
    database: &'static str,
    meta_target: String,
    problems: Vec<ProblemView>,
    kinds: Vec<jobs::KindCounts>,
    holders: Vec<(String, i64)>,
    dead: Vec<DeadJobView>,
}

/// `GET /system`.
pub async fn show(State(state): State<AppState>, user: CurrentUser) -> Result<Response, AppError> {
    // Every tenant's jobs and errors: the operator's alone (to others, no such page).
    if !user.is_operator {
        return Err(AppError::NotFound);
    }
    let now = state.clock.now();
    let dead = jobs::list_dead(&state.db)
        .await?
        .into_iter()
        .map(|j| DeadJobView {
            id: j.id,
            kind: j.kind,
            subject: j.subject,
            error: j.last_error.unwrap_or_default(),
            since: j.dead_at.map(format_utc).unwrap_or_default(),
        })
        .collect();
    let graph = &state.config.meta.instagram_graph_url;
    let meta_target = if graph.host_str() == Some("graph.instagram.com") {
        "Meta's real hosts".to_owned()
    } else {
        format!("a stand-in at {}", graph.origin().ascii_serialization())
    };
    render(&SystemPage {
        page: Page::for_user(&user, "System status"),
        node: state.node.to_string(),
        version: env!("CARGO_PKG_VERSION"),
        database: match state.db.kind() {
            crate::config::DatabaseKind::Sqlite => "SQLite",
            crate::config::DatabaseKind::Postgres => "PostgreSQL",
        },
        meta_target,
        problems: problem_views(&state).await?,
        kinds: jobs::counts(&state.db, now, wall_ms()).await?,
        holders: jobs::lease_holders(&state.db, wall_ms()).await?,
        dead,
    })
}
