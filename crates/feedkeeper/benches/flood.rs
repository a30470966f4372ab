//! A flood of requests for random widget addresses against one node on PostgreSQL, while a real
//! widget and a logged-in dashboard page are read and the background jobs run: what the flood
//! costs the database and everyone else (issue 19, "the public path never queues on the
//! database").
//!
//! Run: `scripts/bench-flood.sh [postgres://admin-url]` (needs `wrk`: `apt-get install wrk`).
//! It makes a database of its own on that server (dropped at the end), a node serving through
//! the full edge with its workers, 20 synced accounts, a widget and a dashboard session; then
//! measures twice for the same time, without and with the flood: the real widget's p99, the
//! dashboard's p99, the database's transactions per second (`pg_stat_database`), non-2xx
//! answers, and lost leases and pool timeouts in the node's log.

use std::sync::Mutex;
use std::time::Duration;

#[path = "support/node.rs"]
mod node;
#[path = "support/wrk.rs"]
mod support;
use support::{WrkResult, on_path, wrk};

use feedkeeper::clock::Clock;
use feedkeeper::connections::{LIFECYCLE_JOB, SYNC_JOB};
use feedkeeper::db::{Db, jobs, users};
use feedkeeper::state::AppState;
use feedkeeper::widgets::settings::WidgetSettings;

const SECONDS: u32 = 20;
const ACCOUNTS: usize = 20;

/// Random well-formed widget addresses: 21 free characters and a last one whose spare bits are
/// zero (so every address decodes to 16 bytes, as a real one does, and gets past the format
/// check to the lookup).
const RANDOM_IDS_LUA: &str = r#"
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local last = "AQgw"
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  local t = {}
  for i = 1, 21 do
    local r = math.random(1, 64)
    t[i] = chars:sub(r, r)
  end
  local r = math.random(1, 4)
  t[22] = last:sub(r, r)
  return wrk.format("GET", "/w/" .. table.concat(t))
end
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    anyhow::ensure!(
        on_path("wrk"),
        "`wrk` is not installed (apt-get install wrk)"
    );
    let admin_url = std::env::args()
        .nth(1)
        .filter(|a| a.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let work = tempfile::tempdir()?;
    let log_path = work.path().join("node.log");
    let log_file = std::fs::File::create(&log_path)?;
    tracing_subscriber::fmt()
        .json()
        .with_env_filter("warn")
        .with_writer(Mutex::new(log_file))
        .init();

    let name = format!("fk_bench_flood_{}", std::process::id());
    let admin = Db::connect(&admin_url).await?;
    let Db::Postgres(admin_pool) = &admin else {
        anyhow::bail!("the flood benchmark runs on PostgreSQL");
    };
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin_pool)
        .await?;
    let mut url = url::Url::parse(&admin_url)?;
    url.set_path(&format!("/{name}"));
    let result = run(url.as_str(), &name, admin_pool, &work, &log_path).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(admin_pool)
        .await?;
    result
}

async fn run(
    url: &str,
    name: &str,
    admin: &sqlx::PgPool,
    work: &tempfile::TempDir,
    log_path: &std::path::Path,
) -> anyhow::Result<()> {
    let (sim, sim_base) = node::simulator(7).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut config = node::config(&sim, &sim_base, url.to_owned(), work.path(), &listener)?;
    config.lifecycle.worker_poll_secs = 1;
    // wrk opens its flood from one address.
    config.server.max_connections_per_address = 10_000;
    config.validate()?;
    let state = AppState::build(config, Clock::System).await?;
    let now = state.clock.now();

    let owner = users::create(&state.db, "bench@example.com", "x", now).await?;
    let mut first = None;
    for i in 0..ACCOUNTS {
        let username = format!("flood_{i}");
        sim.create_account(meta_sim::NewAccount {
            username: username.clone(),
            posts: 12,
            ..Default::default()
        })
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let c = node::connect(&state, &sim, owner, &username).await?;
        first.get_or_insert(c.id);
    }
    feedkeeper::jobs::run_due_now(&state, "setup").await?;
    let widget = feedkeeper::widgets::create(
        &state,
        owner,
        "Real",
        first.expect("accounts were made"),
        &WidgetSettings::default(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let session = feedkeeper::accounts::session::start(&state, owner)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let cookie = session
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();

    // The node as `serve` runs it: the serving threads, the workers, the change poller.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let workers = feedkeeper::jobs::spawn(state.clone(), &state.node, stopping).await;
    let serving = state.clone();
    tokio::spawn(async move {
        let _ = feedkeeper::app::serve_http(serving, listener, std::future::pending()).await;
    });
    let base = state.config.public_url().trim_end_matches('/').to_owned();
    let client = reqwest::Client::new();
    for path in [
        format!("/w/{}", widget.public_id),
        "/connections".to_owned(),
    ] {
        let reply = client
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await?;
        anyhow::ensure!(reply.status() == 200, "{path} answers {}", reply.status());
    }
    let lua = work.path().join("random-ids.lua");
    std::fs::write(&lua, RANDOM_IDS_LUA)?;

    println!(
        "one node on PostgreSQL, {ACCOUNTS} synced accounts, jobs due all the time; {SECONDS} s \
         per phase; widget: wrk -c16, dashboard (/connections, logged in): wrk -c4, flood: wrk \
         -c256 on random well-formed /w/{{id}}\n"
    );
    let mut rows = Vec::new();
    for flood in [false, true] {
        // Work for the workers in both phases.
        let now = state.clock.now();
        jobs::make_all_due(&state.db, LIFECYCLE_JOB, now).await?;
        jobs::make_all_due(&state.db, SYNC_JOB, now).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = transactions(admin, name).await?;
        let started = std::time::Instant::now();
        let widget_run = spawn_wrk(&format!("{base}/w/{}", widget.public_id), 16, None, None);
        let dashboard_run = spawn_wrk(&format!("{base}/connections"), 4, Some(&cookie), None);
        let flood_run = flood.then(|| spawn_wrk(&format!("{base}/w/"), 256, None, Some(&lua)));
        let widget_result = widget_run.join().expect("wrk thread")?;
        let dashboard_result = dashboard_run.join().expect("wrk thread")?;
        let flood_result = match flood_run {
            Some(run) => Some(run.join().expect("wrk thread")?),
            None => None,
        };
        let elapsed = started.elapsed().as_secs_f64();
        // pg_stat_database is flushed within a second of the last transaction.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = transactions(admin, name).await?;
        rows.push(Phase {
            widget: widget_result,
            dashboard: dashboard_result,
            flood: flood_result,
            db_per_sec: (after - before) as f64 / elapsed,
        });
    }
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), workers).await;

    let (quiet, flooded) = (&rows[0], &rows[1]);
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    let lost_leases = count("lease lost") + count("lease was lost");
    let pool_timeouts = count("PoolTimedOut") + count("pool timed out");
    let flood = flooded.flood.as_ref().expect("the flood ran");
    println!("| | without flood | with flood | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| real widget p99 | {:.2} ms | {:.2} ms | {:.2}× |",
        quiet.widget.p99_ms,
        flooded.widget.p99_ms,
        flooded.widget.p99_ms / quiet.widget.p99_ms
    );
    println!(
        "| dashboard p99 | {:.2} ms | {:.2} ms | {:.2}× |",
        quiet.dashboard.p99_ms,
        flooded.dashboard.p99_ms,
        flooded.dashboard.p99_ms / quiet.dashboard.p99_ms
    );
    println!(
        "| real widget req/s | {:.0} | {:.0} | {:.2}× |",
        quiet.widget.rps,
        flooded.widget.rps,
        flooded.widget.rps / quiet.widget.rps
    );
    println!(
        "| dashboard req/s | {:.0} | {:.0} | {:.2}× |",
        quiet.dashboard.rps,
        flooded.dashboard.rps,
        flooded.dashboard.rps / quiet.dashboard.rps
    );
    println!(
        "| database transactions/s | {:.0} | {:.0} | +{:.0} |",
        quiet.db_per_sec,
        flooded.db_per_sec,
        flooded.db_per_sec - quiet.db_per_sec
    );
    println!("| flood req/s (all 404) | – | {:.0} | |", flood.rps);
    println!(
        "| database work added per flood request | | {:.4} % | |",
        100.0 * (flooded.db_per_sec - quiet.db_per_sec).max(0.0) / flood.rps
    );
    println!(
        "| non-2xx answers (widget, dashboard) | {}, {} | {}, {} | |",
        quiet.widget.non_2xx,
        quiet.dashboard.non_2xx,
        flooded.widget.non_2xx,
        flooded.dashboard.non_2xx
    );
    println!("| lost leases, pool timeouts (node log) | | {lost_leases}, {pool_timeouts} | |");
    Ok(())
}

struct Phase {
    widget: WrkResult,
    dashboard: WrkResult,
    flood: Option<WrkResult>,
    db_per_sec: f64,
}

async fn transactions(admin: &sqlx::PgPool, name: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::BIGINT FROM pg_stat_database WHERE datname = $1",
    )
    .bind(name)
    .fetch_one(admin)
    .await?)
}

/// wrk on one thread in the background.
fn spawn_wrk(
    url: &str,
    connections: u32,
    cookie: Option<&str>,
    script: Option<&std::path::Path>,
) -> std::thread::JoinHandle<anyhow::Result<WrkResult>> {
    let url = url.to_owned();
    let headers: Vec<String> = cookie.map(|c| format!("Cookie: {c}")).into_iter().collect();
    let script = script.map(std::path::Path::to_owned);
    std::thread::spawn(move || wrk(&url, 1, connections, SECONDS, &headers, script.as_deref()))
}
