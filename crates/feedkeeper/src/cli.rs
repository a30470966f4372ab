//! The `feedkeeper` command line. Each subcommand loads config, then hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::app;
use crate::clock::Clock;
use crate::config::{self, Config, Secret};
use crate::crypto::NamedKey;
use crate::db::Db;
use crate::state::{AppState, DemoAccount, DemoInfo};
use crate::telemetry;

/// `feedkeeper --version`: the release, and the database schema it brings (the newest
/// migration; both backends number theirs alike), so an operator can tell whether an upgrade
/// migrates.
fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{} (database schema {})",
            env!("CARGO_PKG_VERSION"),
            crate::db::latest_migration(crate::config::DatabaseKind::Sqlite)
        )
    })
}

/// Keeps embedded Instagram feeds alive: refreshes tokens, notices revocations, serves images.
#[derive(Debug, Parser)]
#[command(name = "feedkeeper", version, long_version = long_version(), about, long_about = None)]
pub struct Cli {
    /// A TOML config file (see `feedkeeper print-config`). Environment variables
    /// FEEDKEEPER_<SECTION>__<KEY> override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve(ServeArgs),
    /// Try feedkeeper on this machine: SQLite, the built-in Meta simulator with demo accounts.
    Demo(DemoArgs),
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Print a commented example configuration (all defaults).
    PrintConfig,
    /// Run only the Meta simulator (for development without a Meta app).
    SimulateMeta(SimulateArgs),
    /// Inspect and act on connected Instagram accounts (all tenants: an operator's tool).
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// Check the configuration against Meta and the database, and report what needs a look.
    Doctor {
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Background jobs: list them, and revive dead ones.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Token keys: seal every stored token again under the current key (after a rotation).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Dashboard accounts: invite a user, or give one a way back in.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Write a consistent copy of the embedded SQLite database to FILE while nodes serve.
    /// (PostgreSQL: use pg_dump.) Keep the token keys too: without them a backup's
    /// connections cannot be used.
    Backup {
        /// Where to write it (a new file).
        file: PathBuf,
    },
    /// Put a backup made by `backup` in place of the embedded SQLite database (every node
    /// stopped first).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Replace the database that is there now.
        #[arg(long)]
        replace: bool,
    },
    /// Ask the node this configuration runs whether it is ready (its `/readyz`): exit 0 if it
    /// is, 1 with its reason if not. For container health checks (no curl needed).
    Ready {
        /// Another address to ask (default: `server.listen`, a wildcard address asked on
        /// loopback).
        #[arg(long)]
        url: Option<String>,
    },
    /// Print a new random token-encryption key for `security.token_keys`.
    GenerateKey {
        /// The key's id (name it so rotations are easy to follow, e.g. by date).
        #[arg(long, default_value = "k1")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// List every connection with its status, token expiry and last error.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a connection's token now (refresh it when Meta allows, else probe it) and print
    /// the result.
    Refresh {
        /// The connection id (first column of `connections list`).
        id: i64,
    },
    /// Make every connection's check due now, through the queue: the running nodes check them
    /// (honouring Meta's back-offs) within a poll interval.
    Check {
        /// All connections (the only scope so far; say it, so nobody does it by accident).
        #[arg(long, required = true)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Jobs per kind and state, and the dead ones.
    List {
        /// Only the dead jobs.
        #[arg(long)]
        dead: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make dead jobs due again with a clean attempt count.
    Retry {
        /// One job's id (from `jobs list --dead`).
        #[arg(conflicts_with = "all", required_unless_present = "all")]
        id: Option<i64>,
        /// Every dead job.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an account and print a one-time link (valid 7 days) where its owner chooses a
    /// password. Works whether or not sign-up is open: the way to let exactly one person in.
    Create {
        email: String,
        /// The account may see the whole server (the System status page: every tenant's jobs
        /// and errors). The first account always can.
        #[arg(long)]
        operator: bool,
    },
    /// Print a one-time link (valid 1 hour) where the account's owner sets a new password.
    ResetPassword { email: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Seal every stored token again under the first key of `security.token_keys`, then say
    /// whether older keys are still needed.
    Reseal,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Listen address (overrides server.listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Data directory (overrides storage.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Listen address of the dashboard.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the demo keeps its database and images.
    #[arg(long, value_name = "DIR", default_value = "./feedkeeper-demo")]
    pub data_dir: PathBuf,
    /// Listen address of the built-in Meta simulator.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    pub simulator_listen: SocketAddr,
    /// Seed for the simulator's accounts, posts and images.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Listen address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// Seed for ids, tokens, posts and images: the same seed gives the same simulator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Create a few demo accounts with posts and print how to log in as them.
    #[arg(long)]
    pub seed_demo: bool,
}

/// Where a node listening on `listen` answers its readiness probe: a wildcard address is asked
/// on loopback.
fn readyz_url(listen: std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!(
        "http://{}/readyz",
        std::net::SocketAddr::new(ip, listen.port())
    )
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::PrintConfig => {
            print!("{}", config::EXAMPLE);
            Ok(())
        }
        Command::Backup { file } => {
            let config = Config::load(cli.config.as_deref())?;
            telemetry::init(&config.log);
            let held = crate::backup::backup(&config, &file).await?;
            println!(
                "Backed up to {}: {} connections, {} widgets, {} posts. Keep the token keys \
                 (security.token_keys) too, apart from it: without them its connections cannot \
                 be used.",
                file.display(),
                held.connections,
                held.widgets,
                held.posts
            );
            Ok(())
        }
        Command::Restore { file, replace } => {
            let config = Config::load(cli.config.as_deref())?;
            telemetry::init(&config.log);
            let held = crate::backup::restore(&config, &file, replace).await?;
            println!(
                "Restored {}: {} connections, {} widgets, {} posts. Start the nodes with the \
                 same token keys.",
                file.display(),
                held.connections,
                held.widgets,
                held.posts
            );
            Ok(())
        }
        Command::Ready { url } => {
            let config = Config::load(cli.config.as_deref())?;
            let url = url.unwrap_or_else(|| readyz_url(config.server.listen));
            // Straight to the node: never through an HTTP_PROXY from the environment.
            let http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .no_proxy()
                .build()?;
            let response = http
                .get(&url)
                .send()
                .await
                .with_context(|| format!("no answer from {url}"))?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            if status.is_success() {
                print!("{body}");
                Ok(())
            } else {
                anyhow::bail!("{url} answered {status}: {}", body.trim())
            }
        }
        Command::Migrate => {
            let config = Config::load(cli.config.as_deref())?;
            telemetry::init(&config.log);
            if config.storage.database_url.is_empty() {
                std::fs::create_dir_all(&config.storage.data_dir)?;
            }
            let db = Db::connect(&config.database_url()).await?;
            db.migrate().await?;
            db.close().await;
            println!("The database schema is up to date.");
            Ok(())
        }
        Command::Serve(args) => {
            let mut config = Config::load(cli.config.as_deref())?;
            if let Some(listen) = args.listen {
                config.server.listen = listen;
            }
            if let Some(dir) = args.data_dir {
                config.storage.data_dir = dir;
            }
            telemetry::init(&config.log);
            let listener = bind(config.server.listen, "server.listen").await?;
            let state = AppState::build(config, Clock::System).await?;
            tracing::info!(url = %state.config.public_url(), "feedkeeper is serving");
            app::run(state, listener).await
        }
        Command::GenerateKey { id } => {
            let key = NamedKey::generate(&id);
            // Parse it back: this checks the id the user chose.
            NamedKey::parse(&key.to_config_string()).map_err(anyhow::Error::msg)?;
            println!("{}", key.to_config_string());
            Ok(())
        }
        Command::Connections(command) => {
            let config = Config::load(cli.config.as_deref())?;
            telemetry::init(&config.log);
            let state = AppState::build(config, Clock::System).await?;
            let result = connections_command(&state, command).await;
            state.db.close().await;
            result
        }
        Command::Doctor { json } => with_state(cli.config, |state| doctor(state, json)).await,
        Command::Jobs(command) => {
            with_state(cli.config, |state| jobs_command(state, command)).await
        }
        Command::Keys(KeysCommand::Reseal) => with_state(cli.config, keys_reseal).await,
        Command::Users(command) => {
            with_state(cli.config, |state| users_command(state, command)).await
        }
        Command::Demo(args) => demo(cli.config, args).await,
        Command::SimulateMeta(args) => simulate_meta(args).await,
    }
}

/// Loads the config, builds the state, runs `f`, and closes the database.
async fn with_state<F, Fut>(config: Option<PathBuf>, f: F) -> anyhow::Result<()>
where
    F: FnOnce(AppState) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let config = Config::load(config.as_deref())?;
    telemetry::init(&config.log);
    let state = AppState::build(config, Clock::System).await?;
    let db = state.db.clone();
    let result = f(state).await;
    db.close().await;
    result
}

async fn doctor(state: AppState, json: bool) -> anyhow::Result<()> {
    use crate::doctor::Verdict;
    let findings = crate::doctor::run(&state).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            let mark = match f.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
            };
            println!("{mark}  {:<30} {}", f.check, f.detail);
        }
    }
    let failed = findings
        .iter()
        .filter(|f| f.verdict == Verdict::Fail)
        .count();
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}

async fn jobs_command(state: AppState, command: JobsCommand) -> anyhow::Result<()> {
    use crate::db::jobs;
    let now = state.clock.now();
    match command {
        JobsCommand::List { dead, json } => {
            let counts = jobs::counts(&state.db, now, crate::clock::wall_ms()).await?;
            let dead_jobs = jobs::list_dead(&state.db).await?;
            if json {
                let value = if dead {
                    serde_json::to_value(&dead_jobs)?
                } else {
                    serde_json::json!({ "kinds": counts, "dead": dead_jobs })
                };
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(());
            }
            if !dead {
                println!(
                    "{:<14} {:>10} {:>8} {:>8} {:>6}",
                    "KIND", "SCHEDULED", "DUE", "RUNNING", "DEAD"
                );
                for k in &counts {
                    println!(
                        "{:<14} {:>10} {:>8} {:>8} {:>6}",
                        k.kind, k.scheduled, k.due, k.running, k.dead
                    );
                }
            }
            if dead || !dead_jobs.is_empty() {
                println!("\nDead jobs (revive with `feedkeeper jobs retry ID` or `--all`):");
                for j in &dead_jobs {
                    println!(
                        "{:<6} {:<12} {:<10} {}",
                        j.id,
                        j.kind,
                        j.subject,
                        j.last_error.as_deref().unwrap_or("-")
                    );
                }
                if dead_jobs.is_empty() {
                    println!("none");
                }
            }
            Ok(())
        }
        JobsCommand::Retry { id, all } => {
            let revived = jobs::retry_dead(&state.db, if all { None } else { id }, now).await?;
            if revived == 0 {
                match id {
                    Some(id) if !all => anyhow::bail!("job {id} is not dead (or does not exist)"),
                    _ => println!("There were no dead jobs."),
                }
            } else {
                println!("{revived} job(s) are due again; a running node picks them up.");
            }
            Ok(())
        }
    }
}

async fn users_command(state: AppState, command: UsersCommand) -> anyhow::Result<()> {
    use crate::accounts::recovery;
    match command {
        UsersCommand::Create { email, operator } => {
            let link = recovery::invite(&state, &email).await?;
            println!("Created an account for {}.", email.trim());
            if operator {
                let normalized =
                    crate::accounts::Email::parse(&email).map_err(anyhow::Error::msg)?;
                crate::db::users::make_operator(&state.db, normalized.as_str()).await?;
                println!("It is an operator: it sees the System status page.");
            }
            println!("Send its owner this link to choose a password (valid 7 days, works once):");
            println!("{link}");
            mail_link(&state, &email, &link, crate::mail::AccountMail::Invitation).await;
        }
        UsersCommand::ResetPassword { email } => {
            let link = recovery::reset_link(&state, &email).await?;
            println!(
                "Send the owner of {} this link to set a new password",
                email.trim()
            );
            println!("(valid 1 hour, works once; earlier links stop working):");
            println!("{link}");
            mail_link(
                &state,
                &email,
                &link,
                crate::mail::AccountMail::PasswordReset,
            )
            .await;
        }
    }
    Ok(())
}

/// Also mails a one-time link (the outbox sends it once a node runs; without an SMTP server it
/// stays in the user's mailbox page); the printed link works either way.
async fn mail_link(state: &AppState, email: &str, link: &str, kind: crate::mail::AccountMail) {
    match crate::mail::account_link(state, email, link, kind).await {
        Ok(_) if crate::mail::delivers(state) => {
            println!("It is also on its way by mail to {}.", email.trim())
        }
        Ok(_) => {}
        Err(e) => eprintln!("The link could not be mailed ({e}); send it yourself."),
    }
}

async fn keys_reseal(state: AppState) -> anyhow::Result<()> {
    let mut total = 0;
    let report = loop {
        let report = crate::keys::reseal(&state, 1000).await?;
        total += report.resealed;
        if report.resealed < 1000 {
            break report;
        }
    };
    println!(
        "{total} value(s) sealed again under key {:?}.",
        state.cipher.current_key()
    );
    for id in &report.unreadable {
        println!("connection {id}: no configured key opens its token; it needs a reconnect");
    }
    if report.complete() {
        println!("No older key is needed any more: you may remove them from security.token_keys.");
        Ok(())
    } else {
        anyhow::bail!(
            "stored values still need key(s) {:?}; keep them configured",
            report.keys_still_used
        )
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({what}); is another program using it?"))
}

/// One connection as the operator sees it (never the token).
#[derive(serde::Serialize)]
struct ConnectionSummary {
    id: i64,
    owner: String,
    username: String,
    login: &'static str,
    status: &'static str,
    reason: Option<String>,
    token_expires_at: Option<i64>,
    last_refresh_at: Option<i64>,
    last_check_at: Option<i64>,
    last_error: Option<String>,
}

async fn summarize(
    state: &AppState,
    c: &crate::db::connections::Connection,
) -> anyhow::Result<ConnectionSummary> {
    let owner = crate::db::users::get(&state.db, c.owner_id)
        .await
        .map(|u| u.email)
        .unwrap_or_else(|_| format!("user {}", c.owner_id));
    Ok(ConnectionSummary {
        id: c.id.0,
        owner,
        username: c.username.clone(),
        login: c.login_kind().as_str(),
        status: c.status().as_str(),
        reason: c.reason.clone(),
        token_expires_at: c.token_expires_at,
        last_refresh_at: c.last_refresh_at,
        last_check_at: c.last_check_at,
        last_error: c.last_error.clone(),
    })
}

async fn connections_command(state: &AppState, command: ConnectionsCommand) -> anyhow::Result<()> {
    use crate::db::connections as stored;
    let when = |t: Option<i64>| t.map_or("-".to_owned(), crate::clock::format_utc);
    match command {
        ConnectionsCommand::List { json } => {
            let mut rows = Vec::new();
            for c in stored::list_all(&state.db).await? {
                rows.push(summarize(state, &c).await?);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            if rows.is_empty() {
                println!("No connections yet.");
                return Ok(());
            }
            println!(
                "{:<6} {:<24} {:<24} {:<10} {:<28} {:<22} {:<22}",
                "ID", "OWNER", "ACCOUNT", "LOGIN", "STATUS", "TOKEN EXPIRES", "LAST CHECK"
            );
            for r in rows {
                let status = match &r.reason {
                    Some(reason) => format!("{} ({reason})", r.status),
                    None => r.status.to_owned(),
                };
                println!(
                    "{:<6} {:<24} {:<24} {:<10} {:<28} {:<22} {:<22}",
                    r.id,
                    r.owner,
                    format!("@{}", r.username),
                    r.login,
                    status,
                    when(r.token_expires_at),
                    when(r.last_check_at)
                );
                if let Some(error) = r.last_error {
                    println!("       last error: {error}");
                }
            }
            Ok(())
        }
        ConnectionsCommand::Check { all: _ } => {
            let now = state.clock.now();
            let n =
                crate::db::jobs::make_all_due(&state.db, crate::connections::LIFECYCLE_JOB, now)
                    .await?;
            println!(
                "{n} connection check(s) are due now; the running nodes make them within a poll \
                 interval (lifecycle.worker_poll_secs), honouring Meta's back-offs."
            );
            Ok(())
        }
        ConnectionsCommand::Refresh { id } => {
            let id = crate::ids::ConnectionId(id);
            let c = match stored::get(&state.db, id).await {
                Ok(c) => c,
                Err(crate::db::DbError::NotFound) => anyhow::bail!("there is no connection {id}"),
                Err(e) => return Err(e.into()),
            };
            use crate::connections::{Actor, CheckNow, check_now};
            let updated = match check_now(state, id, Actor::Operator, &state.node).await? {
                CheckNow::Checked(report) => match report.connection {
                    Some(c) => c,
                    None => anyhow::bail!("connection {id} was deleted meanwhile"),
                },
                CheckNow::NoToken => anyhow::bail!(
                    "connection {id} has no token (its data was deleted); it needs a reconnect"
                ),
                CheckNow::Paused { until } => anyhow::bail!(
                    "Meta asked feedkeeper to slow down for @{} until {}; checking now would \
                     prolong it. The next check is automatic.",
                    c.username,
                    crate::clock::format_utc(until)
                ),
                CheckNow::Cooldown { until } => anyhow::bail!(
                    "@{} was checked moments ago; try again after {} (lifecycle.manual_check_cooldown_secs)",
                    c.username,
                    crate::clock::format_utc(until)
                ),
                CheckNow::Busy { node } => anyhow::bail!(
                    "@{} is being checked right now{}; its result shows in `connections list` in a moment",
                    c.username,
                    node.map(|n| format!(" by {n}")).unwrap_or_default()
                ),
            };
            let r = summarize(state, &updated).await?;
            println!(
                "@{}: {}{}",
                r.username,
                r.status,
                r.reason.map(|x| format!(" ({x})")).unwrap_or_default()
            );
            println!("token expires: {}", when(r.token_expires_at));
            if updated.status() != crate::db::connections::Status::Active {
                if let Some(error) = r.last_error {
                    println!("last error: {error}");
                }
                anyhow::bail!("connection {id} is not healthy");
            }
            Ok(())
        }
    }
}

/// Points every Meta endpoint of `config` at a simulator running at `base`.
pub fn point_at_simulator(
    config: &mut Config,
    base: &str,
    app: &meta_sim::AppConfig,
) -> anyhow::Result<()> {
    let url = |path: &str| url::Url::parse(&format!("{base}/{path}"));
    config.meta.instagram_oauth_url = url("www.instagram.com/oauth/authorize")?;
    config.meta.instagram_api_url = url("api.instagram.com")?;
    config.meta.instagram_graph_url = url("graph.instagram.com")?;
    config.meta.facebook_www_url = url("www.facebook.com")?;
    config.meta.facebook_graph_url = url("graph.facebook.com")?;
    config.meta.instagram_app_id = app.instagram_app_id.clone();
    config.meta.instagram_app_secret = Secret::new(app.instagram_app_secret.clone());
    config.meta.facebook_app_id = app.facebook_app_id.clone();
    config.meta.facebook_app_secret = Secret::new(app.facebook_app_secret.clone());
    if let Some(host) = url("")?.host_str()
        && !config.meta.cdn_hosts.iter().any(|h| h == host)
    {
        config.meta.cdn_hosts.push(host.to_owned());
    }
    config.validate()?;
    Ok(())
}

async fn demo(config_file: Option<PathBuf>, args: DemoArgs) -> anyhow::Result<()> {
    let mut config = Config::load(config_file.as_deref())?;
    telemetry::init(&config.log);
    config.storage.data_dir = args.data_dir.clone();
    config.storage.database_url = String::new();
    // Anyone trying the demo may make as many accounts as they like.
    config.accounts.open_signup = true;
    if config.security.token_keys.is_empty() {
        config.security.token_keys = vec![Secret::new(demo_token_key(&args.data_dir)?)];
    }

    let sim = meta_sim::Simulator::new(meta_sim::SimOptions {
        seed: args.seed,
        real_time: true,
        ..Default::default()
    });
    let seeded = sim.seed_demo().context("cannot create the demo accounts")?;
    // Whether Instagram's CDN refuses other sites' pages (`cross-origin-resource-policy`) is an
    // open question (reference Q12); widgets show Instagram's image URLs until feedkeeper
    // serves images from its own store, so the demo's CDN answers "no" and previews show.
    sim.patch_settings(&serde_json::json!({"cdn_corp_header": false}))
        .context("cannot configure the demo's simulated CDN")?;
    let sim_listener = bind(args.simulator_listen, "--simulator-listen").await?;
    let running = meta_sim::serve(sim.clone(), sim_listener).await?;
    let sim_url = running.base_url.clone();

    let listener = bind(args.listen, "--listen").await?;
    config.server.listen = listener.local_addr()?;
    config.server.public_url = String::new();
    point_at_simulator(&mut config, &sim_url, &sim.app())?;

    let state = AppState::build(config, Clock::System).await?;
    // What an operator enters in Meta's App Dashboard: our redirect and callback URLs.
    let public = state.config.public_url();
    sim.set_app(meta_sim::AppConfig {
        redirect_uris: vec![
            format!("{public}/connect/instagram/callback"),
            format!("{public}/connect/facebook/callback"),
        ],
        deauthorize_callback_url: Some(format!("{public}/meta/deauthorize")),
        data_deletion_callback_url: Some(format!("{public}/meta/data-deletion")),
        ..sim.app()
    });
    let accounts: Vec<DemoAccount> = seeded
        .iter()
        .map(|a| DemoAccount {
            username: a.username.clone(),
            password: a.password.clone(),
            description: a.description.clone(),
        })
        .collect();
    let dashboard = state.config.public_url();
    println!("feedkeeper demo is running.");
    println!();
    println!("  Dashboard:       {dashboard}/");
    println!("  Meta simulator:  {sim_url}/");
    println!("  Data directory:  {}", args.data_dir.display());
    println!();
    println!("Log in to the simulated Instagram with:");
    for a in &accounts {
        println!(
            "  {:<16} password {:<16} {}",
            a.username, a.password, a.description
        );
    }
    println!();
    println!("Press Ctrl-C to stop.");
    let state = state.with_demo(DemoInfo {
        simulator_url: sim_url,
        accounts,
    });
    let result = app::run(state, listener).await;
    running.shutdown().await;
    result
}

/// The demo's token key: read from its data directory, or made and saved there on first run
/// (readable by the owner only), so tokens stored by one demo run open in the next.
fn demo_token_key(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("token-key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim().to_owned();
        NamedKey::parse(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a token key: {e}", path.display()))?;
        return Ok(text);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let key = NamedKey::generate("demo").to_config_string();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, key.as_bytes())?;
    Ok(key)
}

async fn simulate_meta(args: SimulateArgs) -> anyhow::Result<()> {
    telemetry::init(&config::LogConfig::default());
    let sim = meta_sim::Simulator::new(meta_sim::SimOptions {
        seed: args.seed,
        real_time: true,
        ..Default::default()
    });
    let seeded = if args.seed_demo {
        sim.seed_demo().context("cannot create the demo accounts")?
    } else {
        Vec::new()
    };
    let listener = bind(args.listen, "--listen").await?;
    let running = meta_sim::serve(sim.clone(), listener).await?;
    let base = &running.base_url;
    println!("Meta simulator listening on {base}/");
    println!("Point feedkeeper at it with:");
    println!("  FEEDKEEPER_META__INSTAGRAM_OAUTH_URL={base}/www.instagram.com/oauth/authorize");
    println!("  FEEDKEEPER_META__INSTAGRAM_API_URL={base}/api.instagram.com");
    println!("  FEEDKEEPER_META__INSTAGRAM_GRAPH_URL={base}/graph.instagram.com");
    println!("  FEEDKEEPER_META__FACEBOOK_WWW_URL={base}/www.facebook.com");
    println!("  FEEDKEEPER_META__FACEBOOK_GRAPH_URL={base}/graph.facebook.com");
    let app = sim.app();
    println!(
        "  FEEDKEEPER_META__INSTAGRAM_APP_ID={}",
        app.instagram_app_id
    );
    println!(
        "  FEEDKEEPER_META__INSTAGRAM_APP_SECRET={}",
        app.instagram_app_secret
    );
    println!("  FEEDKEEPER_META__FACEBOOK_APP_ID={}", app.facebook_app_id);
    println!(
        "  FEEDKEEPER_META__FACEBOOK_APP_SECRET={}",
        app.facebook_app_secret
    );
    println!("Control API: {base}/__sim/ (see docs/simulator.md)");
    for a in &seeded {
        println!(
            "  account {:<16} password {:<16} {}",
            a.username, a.password, a.description
        );
    }
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}
