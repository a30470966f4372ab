//! A feedkeeper node for a benchmark: the simulator as its Meta, a configuration pointed at it,
//! and accounts connected with the simulator's tokens. Shared by the benchmarks that run one.

use feedkeeper::clock::Clock;
use feedkeeper::config::{Config, Secret};
use feedkeeper::connections::{self, Actor};
use feedkeeper::db::connections::Connection;
use feedkeeper::ids::UserId;
use feedkeeper::meta::{AccessToken, ExpiringToken};
use feedkeeper::state::AppState;

/// The simulator, serving on a free port of this machine (kept running until the process ends).
pub async fn simulator(seed: u64) -> anyhow::Result<(meta_sim::Simulator, String)> {
    let sim = meta_sim::Simulator::new(meta_sim::SimOptions {
        seed,
        start_time: Clock::System.now(),
        ..Default::default()
    });
    let server = meta_sim::start(sim.clone(), "127.0.0.1:0".parse()?).await?;
    let base = server.base_url.clone();
    std::mem::forget(server);
    Ok((sim, base))
}

/// A configuration for a node on `database_url` (its files in `dir`) whose Meta is the
/// simulator at `sim_base`, listening on `listener`.
pub fn config(
    sim: &meta_sim::Simulator,
    sim_base: &str,
    database_url: String,
    dir: &std::path::Path,
    listener: &tokio::net::TcpListener,
) -> anyhow::Result<Config> {
    let mut config = Config::default();
    feedkeeper::cli::point_at_simulator(&mut config, sim_base, &sim.app())?;
    config.storage.database_url = database_url;
    config.storage.data_dir = dir.to_owned();
    config.security.token_keys = vec![Secret::new(
        feedkeeper::crypto::NamedKey::generate("bench").to_config_string(),
    )];
    config.log.level = "warn".into();
    config.server.listen = listener.local_addr()?;
    config.server.public_url = format!("http://{}", listener.local_addr()?);
    Ok(config)
}

/// Connects the simulator's account `username` for `owner`, as a login would.
pub async fn connect(
    state: &AppState,
    sim: &meta_sim::Simulator,
    owner: UserId,
    username: &str,
) -> anyhow::Result<Connection> {
    let now = state.clock.now();
    let generated = sim
        .generate_token(username)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let token = ExpiringToken {
        access_token: AccessToken::new(generated.access_token),
        expires_at: Some(now + generated.expires_in),
    };
    connections::connect_instagram(state, owner, &token, None, Actor::User, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}
