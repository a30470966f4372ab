//! The cost of due work at two table sizes: claiming and finishing a batch of due lifecycle
//! checks (the database alone), and a whole pass of real checks against the simulator, with
//! 1 000 and with 100 000 connections in the table. Only the due batch differs in nothing; the
//! rest of the rows are scheduled for later. If the queue is right, the two sizes cost the same.
//!
//! Run: `cargo bench -p feedkeeper --bench claim -- postgres://postgres@127.0.0.1:5432/postgres`
//! (any database the URL reaches can be used to create a scratch one; it is dropped after).

use std::time::{Duration, Instant};

use feedkeeper::clock::Clock;
use feedkeeper::clock::wall_ms;
use feedkeeper::config::{Config, Secret};
use feedkeeper::connections::{LIFECYCLE_JOB, token_context};
use feedkeeper::db::{Db, jobs};
use feedkeeper::jobs::lifecycle::LifecycleWork;
use feedkeeper::jobs::runner::{RunnerSettings, run_due};
use feedkeeper::state::AppState;

/// Due checks per measurement.
const DUE: usize = 500;
const REPEATS: usize = 5;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let admin_url = std::env::args()
        .skip(1)
        .find(|a| a.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    println!(
        "| connections in the table | due | claim + finish (DB only), median | full pass against the simulator, median |"
    );
    println!("|---:|---:|---:|---:|");
    let mut results = Vec::new();
    for total in [1_000usize, 100_000] {
        let (db_only, full) = measure(&admin_url, total).await?;
        println!(
            "| {total} | {DUE} | {:.1} ms | {:.1} ms |",
            ms(db_only),
            ms(full)
        );
        results.push((db_only, full));
    }
    println!(
        "\nratio 100 000 / 1 000: claim + finish {:.2}x, full pass {:.2}x",
        ms(results[1].0) / ms(results[0].0),
        ms(results[1].1) / ms(results[0].1)
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn measure(admin_url: &str, total: usize) -> anyhow::Result<(Duration, Duration)> {
    let name = format!("fk_bench_{}_{total}", std::process::id());
    let admin = Db::connect(admin_url).await?;
    let Db::Postgres(admin_pool) = &admin else {
        anyhow::bail!("the claim benchmark runs on PostgreSQL");
    };
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(admin_pool)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin_pool)
        .await?;
    let url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => anyhow::bail!("cannot read a database name off {admin_url}"),
    };
    let result = run(&url, total).await;
    admin.close().await;
    let admin = Db::connect(admin_url).await?;
    if let Db::Postgres(pool) = &admin {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(pool)
            .await?;
    }
    result
}

async fn run(url: &str, total: usize) -> anyhow::Result<(Duration, Duration)> {
    let now = Clock::System.now();
    let sim = meta_sim::Simulator::new(meta_sim::SimOptions {
        seed: 11,
        start_time: now,
        ..Default::default()
    });
    sim.patch_settings(&serde_json::json!({"app_calls_per_hour": 100_000_000u64, "ig_account_calls_per_day": 100_000_000u64}))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let server = meta_sim::start(sim.clone(), "127.0.0.1:0".parse()?).await?;
    let mut config = Config::default();
    feedkeeper::cli::point_at_simulator(&mut config, &server.base_url, &sim.app())?;
    config.storage.database_url = url.to_owned();
    config.security.token_keys = vec![Secret::new(
        feedkeeper::crypto::NamedKey::generate("bench").to_config_string(),
    )];
    let state = AppState::build(config, Clock::System).await?;
    let Db::Postgres(pool) = &state.db else {
        unreachable!()
    };
    sqlx::query("INSERT INTO users (email, password_hash, created_at, updated_at) VALUES ('bench@example.com', 'x', 0, 0)")
        .execute(pool)
        .await?;
    // Every connection: a row and a lifecycle job due in a month (the filler the due work must
    // not pay for), inserted in bulk.
    sqlx::query(
        "INSERT INTO connections (owner_id, ig_user_id, username, login_kind, token_sealed,
            token_issued_at, token_expires_at, status, status_changed_at, created_at, updated_at)
         SELECT 1, '17841' || lpad(g::text, 12, '0'), 'filler_' || g, 'instagram', 'v2.x.filler',
            $1, $1 + 5184000, 'active', $1, $1, $1 FROM generate_series(1, $2) g",
    )
    .bind(now)
    .bind(total as i64)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO jobs (kind, subject, due_at, created_at)
         SELECT 'lifecycle', CAST(id AS TEXT), $1 + 30 * 86400, $1 FROM connections",
    )
    .bind(now)
    .execute(pool)
    .await?;
    // The due batch: real simulator accounts with real (sealed) tokens.
    let mut due_ids = Vec::new();
    for i in 0..DUE {
        let username = format!("bench_{i}");
        sim.create_account(meta_sim::NewAccount {
            username: username.clone(),
            ..Default::default()
        })
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let token = sim
            .generate_token(&username)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let id: i64 =
            sqlx::query_scalar("SELECT id FROM connections ORDER BY id OFFSET $1 LIMIT 1")
                .bind(i as i64)
                .fetch_one(pool)
                .await?;
        let sealed = state.cipher.seal(
            &token.access_token,
            &token_context(feedkeeper::ids::ConnectionId(id)),
        );
        sqlx::query("UPDATE connections SET token_sealed = $1, username = $2 WHERE id = $3")
            .bind(sealed)
            .bind(&username)
            .bind(id)
            .execute(pool)
            .await?;
        due_ids.push(id);
    }
    sqlx::query("ANALYZE").execute(pool).await?;
    let make_due = || async {
        for id in &due_ids {
            jobs::schedule(&state.db, LIFECYCLE_JOB, &id.to_string(), now - 1, now)
                .await
                .unwrap();
        }
    };

    // The database alone: claim the due batch 25 at a time and finish each job.
    let mut db_only = Vec::new();
    for _ in 0..REPEATS {
        make_due().await;
        let started = Instant::now();
        let mut done = 0;
        loop {
            let batch = jobs::claim_due(
                &state.db,
                LIFECYCLE_JOB,
                "bench",
                Clock::System.now(),
                wall_ms(),
                60_000,
                25,
            )
            .await?;
            if batch.is_empty() {
                break;
            }
            for job in batch {
                jobs::finish(&state.db, &job.lease().unwrap(), Some(now + 30 * 86400)).await?;
                done += 1;
            }
        }
        db_only.push(started.elapsed());
        assert_eq!(done, DUE);
    }

    // A whole pass: the runner claims, checks each token at the simulator, stores the result.
    let settings = RunnerSettings::from_state(&state, "bench");
    let work = std::sync::Arc::new(LifecycleWork);
    let mut full = Vec::new();
    for _ in 0..REPEATS {
        make_due().await;
        let started = Instant::now();
        let report = run_due(&state, &work, &settings).await?;
        full.push(started.elapsed());
        assert_eq!(report.finished, DUE, "{report:?}");
    }
    let unhealthy: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM connections WHERE status <> 'active'")
            .fetch_one(pool)
            .await?;
    anyhow::ensure!(unhealthy == 0, "{unhealthy} checks failed at the simulator");
    state.db.close().await;
    Ok((median(db_only), median(full)))
}
