//! `feedkeeper doctor`: checks the configuration against the world before people run into it:
//! the database, the token keys, the Meta app credentials (asked of Meta itself), the public URL,
//! problems the workers already saw, and dead jobs.

use serde::Serialize;

use crate::db::{jobs, operator_problems};
use crate::meta::{Action, MetaError};
use crate::state::AppState;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Broken: feedkeeper cannot do its job like this.
    Fail,
}

/// One check.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

fn finding(check: &'static str, verdict: Verdict, detail: impl Into<String>) -> Finding {
    Finding {
        check,
        verdict,
        detail: detail.into(),
    }
}

/// A code no one was given: Meta checks the app id and secret before it looks at the code, so
/// its answer tells whether it accepts them.
const PROBE_CODE: &str = "feedkeeper-doctor-probe";

/// What Meta's answer to an exchange of [`PROBE_CODE`] says about the app's credentials.
fn judge_credentials(check: &'static str, app: &str, result: Result<(), MetaError>) -> Finding {
    match result {
        Ok(()) => finding(
            check,
            Verdict::Warn,
            "Meta accepted a made-up code (is this Meta?)",
        ),
        Err(e) => match e.action {
            Action::Operator { problem } => finding(
                check,
                Verdict::Fail,
                format!("{} Meta said: {}", problem.describe(), e.message()),
            ),
            Action::Retry | Action::BackOff { .. } => finding(
                check,
                Verdict::Warn,
                format!("could not ask Meta about the {app} app: {}", e.message()),
            ),
            // Refused for the code only: the id and secret passed.
            _ => finding(
                check,
                Verdict::Ok,
                format!("Meta accepts the {app} app's id and secret"),
            ),
        },
    }
}

/// Writes, reads back and removes a small object in the image store (credentials, bucket,
/// permissions), and says what is stored.
async fn image_store(state: &AppState) -> Finding {
    let store = &state.images.store;
    let probe = object_store::path::Path::from("doctor/probe");
    let body = axum::body::Bytes::from_static(b"feedkeeper doctor");
    let checked = async {
        store.put(&probe, body.clone()).await?;
        let read = store.get(&probe).await?;
        store.delete(&probe).await?;
        Ok::<_, crate::images::store::StoreError>(read.as_ref() == Some(&body))
    }
    .await;
    match checked {
        Ok(true) => match crate::db::images::totals(&state.db).await {
            Ok(t) => finding(
                "image store",
                Verdict::Ok,
                format!(
                    "{}: writable; {} images ({} ready, {} refused), {:.1} MB; {} pictures \
                     waiting for their originals",
                    store.describe,
                    t.images,
                    t.ready,
                    t.failed,
                    t.bytes as f64 / 1e6,
                    t.waiting_pictures
                ),
            ),
            Err(e) => finding("image store", Verdict::Fail, e.to_string()),
        },
        Ok(false) => finding(
            "image store",
            Verdict::Fail,
            format!(
                "{}: an object written could not be read back",
                store.describe
            ),
        ),
        Err(e) => finding(
            "image store",
            Verdict::Fail,
            format!("{}: {e}", store.describe),
        ),
    }
}

/// Runs every check.
pub async fn run(state: &AppState) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.push(match state.db.ping().await {
        Ok(()) => finding(
            "database",
            Verdict::Ok,
            format!("{:?} answers; schema up to date", state.db.kind()),
        ),
        Err(e) => finding("database", Verdict::Fail, e.to_string()),
    });

    findings.push(match crate::keys::keys_in_use(state).await {
        Ok(old) if old.is_empty() => finding(
            "token keys",
            Verdict::Ok,
            format!("every stored token is sealed under the current key {:?}", state.cipher.current_key()),
        ),
        Ok(old) => finding(
            "token keys",
            Verdict::Warn,
            format!(
                "tokens still sealed under older keys {old:?}: run `feedkeeper keys reseal` before removing them"
            ),
        ),
        Err(e) => finding("token keys", Verdict::Fail, e.to_string()),
    });

    let public = state.config.public_url();
    let local = public.contains("://127.")
        || public.contains("://localhost")
        || public.contains("://[::1]");
    findings.push(if public.starts_with("https://") {
        finding("public URL", Verdict::Ok, public.clone())
    } else if local {
        finding(
            "public URL",
            Verdict::Warn,
            format!("{public}: fine on this machine; Meta and other people need an https address"),
        )
    } else {
        finding(
            "public URL",
            Verdict::Fail,
            format!("{public}: Meta requires https redirect URIs"),
        )
    });

    findings.push(image_store(state).await);

    let meta = &state.config.meta;
    let redirect = format!("{public}/connect/instagram/callback");
    findings.push(if meta.instagram_app_id.is_empty() {
        finding(
            "Instagram app",
            Verdict::Warn,
            "meta.instagram_app_id is not set: Instagram Login is off",
        )
    } else {
        let result = state
            .meta
            .exchange_instagram_code(PROBE_CODE, &redirect)
            .await
            .map(|_| ());
        judge_credentials("Instagram app", "Instagram", result)
    });
    let redirect = format!("{public}/connect/facebook/callback");
    findings.push(if meta.facebook_app_id.is_empty() {
        finding(
            "Facebook app",
            Verdict::Warn,
            "meta.facebook_app_id is not set: business connections are off",
        )
    } else {
        let result = state
            .meta
            .exchange_facebook_code(PROBE_CODE, &redirect)
            .await
            .map(|_| ());
        judge_credentials("Facebook app", "Facebook", result)
    });

    findings.push(match operator_problems::open(&state.db).await {
        Ok(problems) if problems.is_empty() => {
            finding("problems seen by the workers", Verdict::Ok, "none")
        }
        Ok(problems) => finding(
            "problems seen by the workers",
            Verdict::Fail,
            problems
                .iter()
                .map(|p| format!("{} ({} times): {}", p.kind, p.occurrences, p.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => finding("problems seen by the workers", Verdict::Fail, e.to_string()),
    });

    findings.push(match jobs::list_dead(&state.db).await {
        Ok(dead) if dead.is_empty() => finding("background jobs", Verdict::Ok, "no dead jobs"),
        Ok(dead) => finding(
            "background jobs",
            Verdict::Warn,
            format!(
                "{} dead job(s): see `feedkeeper jobs list --dead`",
                dead.len()
            ),
        ),
        Err(e) => finding("background jobs", Verdict::Fail, e.to_string()),
    });
    findings
}
