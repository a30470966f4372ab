//! `GET /metrics` for Prometheus (what is counted: `crate::metrics`), and the edge layer that
//! counts every request by route pattern, method and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::Digest as _;

use crate::clock::wall_ms;
use crate::metrics::{DbSnapshot, PoolUse, Snapshot};
use crate::state::AppState;

/// Counts the request once its answer's headers are ready, and while the node drains before
/// stopping, asks the client to close the connection (its next request goes to a node that
/// stays). Outermost on both edges, so what it counts is what the client got (a refusal by the
/// edge included). Routes are named by their pattern, so the label has as many values as there
/// are routes, whatever the paths.
pub async fn count_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // An `Arc` clone: the pattern is the router's own.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    counted(
        &state,
        route.as_ref().map(MatchedPath::as_str),
        &method,
        started,
        response,
    )
}

/// `response`, to a request for `route` (its pattern) started at `started`, counted; and
/// asking the client to close its connection while the node drains. What [`count_requests`]
/// does, for the routes the serving threads take straight to their handlers (`app::Front`).
pub fn counted(
    state: &AppState,
    route: Option<&str>,
    method: &axum::http::Method,
    started: Instant,
    mut response: Response,
) -> Response {
    if state.stopping.load(std::sync::atomic::Ordering::Relaxed) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    state.requests.count(
        route,
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// How long a scrape waits for the database's part.
const SCRAPE_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// `GET /metrics`: the exposition, behind `metrics.token` when one is set. The database's part
/// is read at most once a second whoever asks; when the database does not answer, the node's
/// own part is still served (with `feedkeeper_db_up 0`).
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(state.config.metrics.token.expose(), &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
            "metrics need the bearer token set in metrics.token\n",
        )
            .into_response();
    }
    // On this serving thread's probe connection (never the workers' or the requests' pool),
    // bounded in time: a database that hangs costs a scrape three seconds and answers
    // `feedkeeper_db_up 0`, never a queue.
    let from_db = {
        let db = state.probe_db.clone();
        let clock = state.clock.clone();
        state
            .scraped
            .get(|| async move {
                let mut snapshot = DbSnapshot::default();
                let read = crate::db::metrics::fill(&db, &mut snapshot, clock.now(), wall_ms());
                match tokio::time::timeout(SCRAPE_DB_TIMEOUT, read).await {
                    Ok(Ok(())) => Ok(snapshot),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("no answer in time".to_owned()),
                }
            })
            .await
    };
    let mut snapshot = Snapshot {
        db: from_db
            .inspect_err(|e| tracing::warn!(error = %e, "metrics: cannot read the database"))
            .ok(),
        ..Snapshot::default()
    };
    add_this_node(&state, &mut snapshot);
    let mut response = state.metrics.encode(&snapshot).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What only this node knows: its build, pools, widget cache, Meta's last usage report.
fn add_this_node(state: &AppState, snapshot: &mut Snapshot) {
    let kind = state.db.kind();
    snapshot.version = env!("CARGO_PKG_VERSION");
    snapshot.schema = crate::db::latest_migration(kind);
    snapshot.node = state.node.to_string();
    snapshot.uptime_secs = state.started.elapsed().as_secs_f64();
    let serving = state
        .serving_pools
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|db| pool_use("serving", db))
        .fold(
            PoolUse {
                name: "serving",
                ..PoolUse::default()
            },
            |all, one| PoolUse {
                busy: all.busy + one.busy,
                idle: all.idle + one.idle,
                max: all.max + one.max,
                ..all
            },
        );
    snapshot.pools = vec![pool_use("workers", &state.workers_db), serving];
    let (hits, misses, unknown) = state.widgets.lookups();
    snapshot.widget_cache_hits = hits;
    snapshot.widget_cache_misses = misses;
    snapshot.widget_cache_unknown = unknown;
    let (entries, bytes) = state.widgets.usage();
    snapshot.widget_cache_entries = entries;
    snapshot.widget_cache_bytes = bytes;
    snapshot.widget_loads = state.widgets.loads();
    snapshot.body_file_bytes = crate::zero_copy::bytes_in_files();
    snapshot.body_file_sent_bytes = crate::zero_copy::bytes_sent_from_files();
    let now = state.clock.now();
    let mut app = None;
    let mut account_max = None;
    for (scope, seen) in state.meta.usage().snapshot() {
        if now - seen.seen_at > 3600 {
            continue;
        }
        if scope == "app" {
            app = Some(seen.percent);
        } else {
            account_max = account_max.max(Some(seen.percent));
        }
    }
    snapshot.meta_usage_app = app;
    snapshot.meta_usage_account_max = account_max;
    snapshot.conflict_retries = crate::db::conflict_retries();
}

fn pool_use(name: &'static str, db: &crate::db::Db) -> PoolUse {
    let (size, idle, max) = db.pool_use();
    PoolUse {
        name,
        busy: size.saturating_sub(idle),
        idle,
        max,
    }
}

/// Whether `headers` carry the bearer `token` (any request, when no token is set). Compared in
/// constant time.
fn authorized(token: &str, headers: &HeaderMap) -> bool {
    let token = token.trim();
    if token.is_empty() {
        return true;
    }
    let Some((scheme, given)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
    else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    use subtle::ConstantTimeEq as _;
    let (a, b) = (
        sha2::Sha256::digest(given.trim().as_bytes()),
        sha2::Sha256::digest(token.as_bytes()),
    );
    bool::from(a.ct_eq(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_when_set_must_come_as_a_bearer() {
        let mut headers = HeaderMap::new();
        assert!(authorized("", &headers));
        assert!(!authorized("s3cret", &headers));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert!(!authorized("s3cret", &headers));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(!authorized("s3cret", &headers));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorized("s3cret", &headers));
    }
}
