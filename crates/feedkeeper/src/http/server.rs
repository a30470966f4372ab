//! The HTTP/1 server under the edge: accept loops on threads of their own.
//!
//! Each serving thread runs a single-threaded runtime that accepts from the one listening
//! socket (shared as nginx's workers share theirs) and serves every connection it accepted to
//! the end, so a request is read, answered and written on one thread. On one multi-threaded
//! runtime, most of a small response's cost was waking other threads and handing work between
//! them (see docs/benchmarks.md). The background workers stay on the main runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tower::ServiceExt as _;

/// The serving threads after they stopped accepting; see [`serve_on_threads`].
///
/// Database connections opened while serving are driven by the runtime of the thread that
/// opened them, and the pool hands them to anyone, the background workers included. So the
/// threads keep their (idle) runtimes running until this is dropped: drop it after the
/// workers have stopped and the database is closed.
#[must_use = "dropping this ends the serving threads' runtimes"]
pub struct ServingThreads {
    _release: watch::Sender<()>,
}

/// How many serving threads `configured` asks for: itself, or one per CPU core for 0.
pub fn thread_count(configured: u64) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => usize::try_from(n).unwrap_or(1),
    }
}

/// Serves `router` on `listener` from `threads` threads until `shutdown` resolves, then lets
/// open requests finish for up to `grace` (every thread at once) and returns. Each connection
/// must send its request headers within `header_timeout`, and handlers see the peer address
/// (`ConnectInfo`). If this future is dropped instead, the threads stop the same way and end.
pub async fn serve_on_threads(
    listener: TcpListener,
    router: Router,
    threads: usize,
    header_timeout: Duration,
    grace: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<ServingThreads> {
    let listener = listener.into_std()?;
    let (stop, stopped) = watch::channel(false);
    let (release, released) = watch::channel(());
    let mut finished = Vec::with_capacity(threads);
    for index in 0..threads.max(1) {
        let listener = listener.try_clone()?;
        let router = router.clone();
        let mut stopped = stopped.clone();
        let mut released = released.clone();
        let (done, finished_serving) = oneshot::channel::<()>();
        finished.push(finished_serving);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("http-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => {
                            tracing::error!(error = %e, "a serving thread cannot use the listener");
                            return;
                        }
                    };
                    // A dropped `stop` (the caller went away) stops serving too.
                    let stop = async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    };
                    serve_connections(listener, router, header_timeout, grace, stop).await;
                    let _ = done.send(());
                    // Keep driving this runtime's connections (see `ServingThreads`).
                    while released.changed().await.is_ok() {}
                });
            })?;
    }
    drop(listener);
    shutdown.await;
    let _ = stop.send(true);
    for finished_serving in finished {
        // An error means the thread ended early (it logged why); nothing to wait for.
        let _ = finished_serving.await;
    }
    Ok(ServingThreads { _release: release })
}

/// One thread's accept loop: serves `router` on `listener` until `shutdown` resolves, then lets open requests finish for
/// up to `grace`. Each connection must send its request headers within `header_timeout`, and the
/// handlers see the peer address (`ConnectInfo`) for the log-in limit.
async fn serve_connections(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    grace: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, or a connection reset while queued: back off a
                    // moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service = router
            .clone()
            .map_request(move |mut request: Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            })
            .map_err(|never: Infallible| match never {});
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the shutdown grace period");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    fn app() -> Router {
        Router::new()
            .route(
                "/thread",
                get(|| async { std::thread::current().name().unwrap_or("?").to_owned() }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    "done"
                }),
            )
    }

    #[tokio::test]
    async fn serving_threads_answer_finish_what_they_started_and_stop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(serve_on_threads(
            listener,
            app(),
            2,
            Duration::from_secs(5),
            Duration::from_secs(5),
            async {
                let _ = stopped.await;
            },
        ));
        let client = reqwest::Client::new();
        let name = client
            .get(format!("{base}/thread"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(name.starts_with("http-"), "served by {name}");

        // A request under way when the shutdown comes is answered; then the port is closed.
        let slow = tokio::spawn(client.get(format!("{base}/slow")).send());
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        let answer = slow.await.unwrap().unwrap();
        assert_eq!(answer.text().await.unwrap(), "done");
        let threads = serving.await.unwrap().unwrap();
        let fresh = reqwest::Client::new();
        assert!(
            fresh.get(format!("{base}/thread")).send().await.is_err(),
            "no longer accepting"
        );
        drop(threads);
    }

    #[tokio::test]
    async fn dropping_the_server_stops_its_threads() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let serving = tokio::spawn(serve_on_threads(
            listener,
            app(),
            1,
            Duration::from_secs(5),
            Duration::from_secs(5),
            std::future::pending(),
        ));
        let client = reqwest::Client::new();
        assert!(client.get(format!("{base}/thread")).send().await.is_ok());
        serving.abort();
        let _ = serving.await;
        // The thread notices within moments and closes the listening socket.
        let mut closed = false;
        for _ in 0..100 {
            if reqwest::Client::new()
                .get(format!("{base}/thread"))
                .send()
                .await
                .is_err()
            {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            closed,
            "the port still answers after the server was dropped"
        );
    }

    #[test]
    fn zero_threads_means_one_per_core() {
        assert!(thread_count(0) >= 1);
        assert_eq!(thread_count(3), 3);
    }
}
