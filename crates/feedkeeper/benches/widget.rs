//! The public widget and image endpoints against nginx serving the same bytes from files, in
//! one run on one machine: `wrk` at 64 and 256 connections on `/w/{id}`, `/w/{id}.json` and a
//! stored image variant (`/i/{key}/640.webp`), requests per second and p99 latency, and their
//! ratios. `BENCH_ROWS=widget` or `BENCH_ROWS=images` runs only those rows; `BENCH_HOLD=1`
//! sets both servers up and keeps them serving, for profiling by hand (`BENCH_COPY=1` with it:
//! large plain answers copied, not sent from their files). The plain rows are also measured
//! with sending from files turned off, in the same alternation, to show what it is worth.
//!
//! Run: `scripts/bench-widget.sh` (needs `wrk` and `nginx`: `apt-get install wrk nginx-light`).
//! It builds a release binary of this bench, which sets up a real widget (SQLite, the built-in
//! simulator, a synced account with 12 posts), serves it through the full edge, writes the exact
//! bytes it serves to files, starts nginx on them, and runs wrk against both.

use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "support/node.rs"]
mod node;
#[path = "support/wrk.rs"]
mod support;
use support::{WrkResult, on_path};

use feedkeeper::clock::Clock;

use feedkeeper::db::users;
use feedkeeper::state::AppState;
use feedkeeper::widgets::settings::WidgetSettings;

const SECONDS: u32 = 10;
/// Each row is measured this many times, feedkeeper and nginx alternately; the table shows
/// the medians (one run on a shared 2-core machine varies by ±20 %).
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    for tool in ["wrk", "nginx"] {
        if !on_path(tool) {
            anyhow::bail!("`{tool}` is not installed (apt-get install wrk nginx-light)");
        }
    }
    let work = tempfile::tempdir()?;
    let (base, id, _state) = serve_widget(work.path()).await?;

    // The same bytes, as files for nginx.
    let client = reqwest::Client::new();
    let html = client
        .get(format!("{base}/w/{id}"))
        .send()
        .await?
        .bytes()
        .await?;
    let json = client
        .get(format!("{base}/w/{id}.json"))
        .send()
        .await?
        .bytes()
        .await?;
    let sent_from_files = feedkeeper::zero_copy::bytes_sent_from_files();
    client
        .get(format!("{base}/w/{id}"))
        .send()
        .await?
        .bytes()
        .await?;
    // Counted by the serving thread once `sendfile` returns, which may be after the client has
    // read the bytes.
    let counted = async {
        while feedkeeper::zero_copy::bytes_sent_from_files() - sent_from_files < html.len() as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    anyhow::ensure!(
        tokio::time::timeout(Duration::from_secs(2), counted)
            .await
            .is_ok(),
        "the document should leave from its file (is the work folder on a filesystem without O_TMPFILE?)"
    );
    // What browsers get: brotli (reqwest here has no decoder, so the bytes arrive as sent).
    let br = |path: String| {
        let client = client.clone();
        async move {
            let reply = client
                .get(path)
                .header("accept-encoding", "br")
                .send()
                .await?;
            anyhow::ensure!(reply.headers()["content-encoding"] == "br", "not brotli");
            Ok::<_, anyhow::Error>(reply.bytes().await?)
        }
    };
    let html_br = br(format!("{base}/w/{id}")).await?;
    let json_br = br(format!("{base}/w/{id}.json")).await?;
    let root = work.path().join("www");
    std::fs::create_dir_all(root.join("w"))?;
    std::fs::create_dir_all(root.join("br").join("w"))?;
    std::fs::write(root.join("w").join(&id), &html)?;
    std::fs::write(root.join("w").join(format!("{id}.json")), &json)?;
    std::fs::write(root.join("br").join("w").join(&id), &html_br)?;
    std::fs::write(
        root.join("br").join("w").join(format!("{id}.json")),
        &json_br,
    )?;
    // A stored variant as a phone's grid asks for it: the first post's 640 px WebP.
    let feed: serde_json::Value = serde_json::from_slice(&json)?;
    let variant = feed["posts"][0]["image"]["sizes"]
        .as_array()
        .and_then(|sizes| {
            sizes
                .iter()
                .find(|s| s["width"] == 640 && s["format"] == "webp")
        })
        .and_then(|s| s["url"].as_str())
        .ok_or_else(|| anyhow::anyhow!("the widget shows no stored image"))?
        .to_owned();
    let image_path = variant
        .strip_prefix(&base)
        .ok_or_else(|| anyhow::anyhow!("{variant} is not on {base}"))?
        .to_owned();
    let image = client.get(&variant).send().await?.bytes().await?;
    let image_file = root.join(image_path.trim_start_matches('/'));
    std::fs::create_dir_all(image_file.parent().unwrap_or(&root))?;
    std::fs::write(&image_file, &image)?;
    let nginx_port = free_port()?;
    let nginx = start_nginx(work.path(), &root, nginx_port)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let nginx_base = format!("http://127.0.0.1:{nginx_port}");
    let check = client.get(format!("{nginx_base}/w/{id}")).send().await?;
    anyhow::ensure!(
        check.status().is_success(),
        "nginx answers {}",
        check.status()
    );
    anyhow::ensure!(
        check.bytes().await? == html,
        "nginx must serve the same bytes"
    );

    let check = client
        .get(format!("{nginx_base}{image_path}"))
        .send()
        .await?;
    anyhow::ensure!(
        check.bytes().await? == image,
        "nginx must serve the same image bytes"
    );
    println!(
        "bodies: /w/{{id}} {} bytes ({} brotli), /w/{{id}}.json {} bytes ({} brotli), \
         /i/{{key}}/640.webp {} bytes; {SECONDS} s per run, wrk -t2, median of {ROUNDS} \
         alternating runs\n",
        html.len(),
        html_br.len(),
        json.len(),
        json_br.len(),
        image.len()
    );
    if std::env::var_os("BENCH_COPY").is_some() {
        // Profiling the copying path by hand.
        feedkeeper::zero_copy::set_sendfile(false);
    }
    if std::env::var_os("BENCH_HOLD").is_some() {
        // For profiling by hand (`perf record -p`, `strace -c -p`): both servers stay up.
        println!("holding: feedkeeper {base}/w/{id}, nginx {nginx_base}/w/{id} (Ctrl-C ends)");
        tokio::signal::ctrl_c().await?;
        // Returning stops nginx and removes the files.
        return Ok(());
    }
    let only = std::env::var("BENCH_ROWS").unwrap_or_default();
    println!(
        "| endpoint | connections | feedkeeper req/s | nginx req/s | req/s ratio | feedkeeper p99 | nginx p99 | p99 ratio | copied, not sent from a file: req/s ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, path, brotli) in [
        ("/w/{id}", format!("/w/{id}"), false),
        ("/w/{id}.json", format!("/w/{id}.json"), false),
        ("/w/{id}, brotli", format!("/w/{id}"), true),
        ("/w/{id}.json, brotli", format!("/w/{id}.json"), true),
        ("/i/{key}/640.webp", image_path.clone(), false),
    ] {
        let is_image = path.starts_with("/i/");
        if (only == "widget" && is_image) || (only == "images" && !is_image) {
            continue;
        }
        // nginx serves the very bytes we send: the plain files, or the brotli ones as brotli.
        let (header, nginx_path) = if brotli {
            (Some("Accept-Encoding: br"), format!("/br{path}"))
        } else {
            (None, path.clone())
        };
        for connections in [64, 256] {
            let mut ours = Vec::with_capacity(ROUNDS);
            let mut theirs = Vec::with_capacity(ROUNDS);
            let mut copying = Vec::with_capacity(ROUNDS);
            // Bodies large enough for `sendfile` (the plain documents) are measured copied too,
            // in the same alternation, to show what it is worth.
            let from_file = !brotli && !is_image;
            for _ in 0..ROUNDS {
                ours.push(wrk(&format!("{base}{path}"), connections, header)?);
                theirs.push(wrk(
                    &format!("{nginx_base}{nginx_path}"),
                    connections,
                    header,
                )?);
                if from_file {
                    feedkeeper::zero_copy::set_sendfile(false);
                    let copied = wrk(&format!("{base}{path}"), connections, header);
                    feedkeeper::zero_copy::set_sendfile(true);
                    copying.push(copied?);
                }
            }
            let (ours, theirs) = (WrkResult::median(&ours), WrkResult::median(&theirs));
            let copied = if copying.is_empty() {
                "(copied either way)".to_owned()
            } else {
                format!("{:.2}×", WrkResult::median(&copying).rps / theirs.rps)
            };
            println!(
                "| `{label}` | {connections} | {:.0} | {:.0} | {:.2}× | {:.2} ms | {:.2} ms | {:.2}× | {copied} |",
                ours.rps,
                theirs.rps,
                ours.rps / theirs.rps,
                ours.p99_ms,
                theirs.p99_ms,
                ours.p99_ms / theirs.p99_ms
            );
        }
    }
    drop(nginx);
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A feedkeeper node serving one widget of a synced account; returns its base URL and the
/// widget's public id.
async fn serve_widget(dir: &std::path::Path) -> anyhow::Result<(String, String, AppState)> {
    let (sim, sim_base) = node::simulator(5).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let database = format!("sqlite://{}", dir.join("bench.db").display());
    let mut config = node::config(&sim, &sim_base, database, dir, &listener)?;
    // Measure the widget path, not the request limit.
    config.server.max_concurrent_requests = 100_000;
    config.validate()?;
    let state = AppState::build(config, Clock::System).await?;
    let now = state.clock.now();

    sim.create_account(meta_sim::NewAccount {
        username: "bench_bakery".into(),
        name: Some("Bench Bakery".into()),
        posts: 12,
        ..Default::default()
    })
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let owner = users::create(&state.db, "bench@example.com", "x", now).await?;
    let c = node::connect(&state, &sim, owner, "bench_bakery").await?;
    feedkeeper::jobs::run_due_now(&state, "bench").await?;
    let widget =
        feedkeeper::widgets::create(&state, owner, "Bench", c.id, &WidgetSettings::default())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The widget's pictures stored, as a node's workers do within seconds.
    feedkeeper::jobs::run_due_now(&state, "bench").await?;
    let serving = state.clone();
    tokio::spawn(async move {
        // Serves until the process ends (the shutdown never comes).
        let _ = feedkeeper::app::serve_http(serving, listener, std::future::pending()).await;
    });
    let base = state.config.public_url().trim_end_matches('/').to_owned();
    Ok((base, widget.public_id, state))
}

/// nginx on `port`, serving `root`, set up as production nginx is (sendfile, keep-alive, open
/// files cached, no access log, the same cache headers we send).
fn start_nginx(dir: &std::path::Path, root: &std::path::Path, port: u16) -> anyhow::Result<Killed> {
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes auto;\npid {pid};\nerror_log {log} warn;\ndaemon off;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000;\n\
               open_file_cache max=1000 inactive=60s;\n  open_file_cache_valid 60s;\n  open_file_cache_min_uses 1;\n  open_file_cache_errors on;\n\
               client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n\
               types {{ text/html html; application/json json; }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {root};\n\
                 location /w/ {{ default_type text/html; add_header Cache-Control \"public, max-age=60, stale-while-revalidate=600, stale-if-error=86400\"; etag on; }}\n\
                 location ~ \\.json$ {{ default_type application/json; add_header Cache-Control \"public, max-age=60\"; }}\n\
                 location ^~ /br/ {{ default_type text/html; add_header Content-Encoding br; add_header Cache-Control \"public, max-age=60\"; }}\n\
                 location ^~ /i/ {{ types {{ image/webp webp; image/jpeg jpg; }} add_header Cache-Control \"public, max-age=31536000, immutable\"; add_header Cross-Origin-Resource-Policy cross-origin; etag on; }}\n\
               }}\n}}\n",
            pid = dir.join("nginx.pid").display(),
            log = dir.join("nginx-error.log").display(),
            tmp = dir.display(),
            root = root.display(),
        ),
    )?;
    let child = Command::new("nginx")
        .args([
            "-c",
            &conf.display().to_string(),
            "-p",
            &dir.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    Ok(Killed(child))
}

/// nginx's master process, stopped with its workers when dropped: SIGTERM (a SIGKILL would
/// leave the workers running), then SIGKILL if it has not gone within a few seconds.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One row's run: wrk -t2 for [`SECONDS`].
fn wrk(url: &str, connections: u32, header: Option<&str>) -> anyhow::Result<WrkResult> {
    let headers: Vec<String> = header.map(str::to_owned).into_iter().collect();
    let result = support::wrk(url, 2, connections, SECONDS, &headers, None)?;
    anyhow::ensure!(result.non_2xx == 0, "errors while measuring {url}");
    Ok(result)
}
