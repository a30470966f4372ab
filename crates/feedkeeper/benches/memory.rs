//! Memory of one node after 20 000 distinct heavy widgets were asked for: the renderings must
//! stay within `widgets.cache_bytes` (issue 19, "memory bounded per node").
//!
//! Run: `cargo bench -p feedkeeper --bench memory [-- WIDGETS [CACHE_MIB]]` (defaults 20 000
//! widgets, the default 256 MiB cache). One account with 50 posts, each with a caption of
//! Instagram's 2 200-character maximum, shown by widgets whose settings all differ (so no two
//! documents are the same); each widget's document and feed are requested once. The node's
//! resident memory is read from /proc before the requests (the base: the process, the
//! database's pages, the directory of every widget address) and after, with the cache's own
//! count of what it holds.

use std::time::{Duration, Instant};

#[path = "support/node.rs"]
mod node;

use feedkeeper::clock::Clock;

use feedkeeper::db::users;
use feedkeeper::state::AppState;
use feedkeeper::widgets::settings::WidgetSettings;

/// The process's resident memory, in MiB.
fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let widgets: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let cache_mib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let work = tempfile::tempdir()?;
    let (sim, sim_base) = node::simulator(9).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let database = format!("sqlite://{}", work.path().join("bench.db").display());
    let mut config = node::config(&sim, &sim_base, database, work.path(), &listener)?;
    config.widgets.cache_bytes = cache_mib * 1024 * 1024;
    config.widgets.max_per_user = widgets as u64 + 1;
    config.validate()?;
    let state = AppState::build(config, Clock::System).await?;
    let now = state.clock.now();

    sim.create_account(meta_sim::NewAccount {
        username: "heavy".into(),
        name: Some("A heavy account".into()),
        posts: 0,
        ..Default::default()
    })
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for i in 0..50 {
        let words = "fresh bread & pastries, #baking, @friends and a long story of the day ";
        let caption: String = format!("Post {i}: {}", words.repeat(40))
            .chars()
            .take(2_200)
            .collect();
        sim.post_media(
            "heavy",
            meta_sim::NewMedia {
                caption: Some(caption),
                ..Default::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let owner = users::create(&state.db, "bench@example.com", "x", now).await?;
    let c = node::connect(&state, &sim, owner, "heavy").await?;
    feedkeeper::jobs::run_due_now(&state, "setup").await?;

    // Widgets whose documents all differ: every combination of columns, spacing and radius,
    // showing (nearly) all 50 posts with captions below.
    let started = Instant::now();
    let mut ids = Vec::with_capacity(widgets);
    'made: for columns in 1..=6u32 {
        for spacing in 0..=40u32 {
            for radius in 0..=40u32 {
                for posts in [50u32, 49, 48] {
                    if ids.len() == widgets {
                        break 'made;
                    }
                    let settings = WidgetSettings {
                        columns_desktop: columns,
                        spacing,
                        radius,
                        posts,
                        captions: feedkeeper::widgets::settings::Captions::Below,
                        ..WidgetSettings::default()
                    };
                    let w = feedkeeper::widgets::create(&state, owner, "Heavy", c.id, &settings)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    ids.push(w.public_id);
                }
            }
        }
    }
    anyhow::ensure!(ids.len() == widgets, "only {} combinations", ids.len());
    eprintln!("{widgets} widgets made in {:.0?}", started.elapsed());

    let serving = state.clone();
    tokio::spawn(async move {
        let _ = feedkeeper::app::serve_http(serving, listener, std::future::pending()).await;
    });
    let base = state.config.public_url().trim_end_matches('/').to_owned();
    while !state.widgets.trusted() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = resident_mib();

    let client = reqwest::Client::new();
    let started = Instant::now();
    let (mut largest_html, mut largest_json) = (0, 0);
    for chunk in ids.chunks(16) {
        let mut requests = tokio::task::JoinSet::new();
        for id in chunk {
            for suffix in ["", ".json"] {
                let (client, url) = (client.clone(), format!("{base}/w/{id}{suffix}"));
                requests.spawn(async move {
                    let mut reply = client.get(url).send().await?;
                    anyhow::ensure!(reply.status() == 200, "{}", reply.status());
                    // Read and dropped piece by piece: this process is the node too, and only
                    // the node's memory is measured.
                    let mut size = 0;
                    while let Some(chunk) = reply.chunk().await? {
                        size += chunk.len();
                    }
                    Ok::<_, anyhow::Error>((suffix.is_empty(), size))
                });
            }
        }
        for answer in requests.join_all().await {
            let (html, size) = answer?;
            if html {
                largest_html = largest_html.max(size);
            } else {
                largest_json = largest_json.max(size);
            }
        }
    }
    let elapsed = started.elapsed();
    let (entries, bytes) = state.widgets.usage();
    let after = resident_mib();
    println!(
        "{widgets} distinct widgets of 50 posts with 2 200-character captions (a document of \
         {} KB, a feed of {} KB, plain), each asked for as document and feed once, in {:.0?}\n",
        largest_html / 1024,
        largest_json / 1024,
        elapsed
    );
    println!("| | MiB |");
    println!("|---|---:|");
    println!("| cache limit (`widgets.cache_bytes`) | {cache_mib} |");
    println!(
        "| held by the cache at the end ({entries} renderings) | {:.1} |",
        bytes as f64 / 1024.0 / 1024.0
    );
    println!("| resident before the requests (base) | {before:.1} |");
    println!("| resident after | {after:.1} |");
    println!(
        "| growth beyond the base | {:.1} ({:.2}× the limit) |",
        after - before,
        (after - before) / cache_mib as f64
    );
    Ok(())
}
