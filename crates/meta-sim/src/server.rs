//! Running the simulator on a socket: `start`/`serve` spawn the axum server in a tokio task;
//! `RunningSim` knows its base URL and shuts the server down on drop or `shutdown()`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::simulator::Simulator;

/// A simulator being served.
pub struct RunningSim {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// The simulator (a clone sharing its state).
    pub sim: Simulator,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The URLs feedkeeper's `meta.*` settings take for a running simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaUrls {
    /// `meta.instagram_oauth_url`.
    pub instagram_oauth_url: String,
    /// `meta.instagram_api_url`.
    pub instagram_api_url: String,
    /// `meta.instagram_graph_url`.
    pub instagram_graph_url: String,
    /// `meta.facebook_www_url`.
    pub facebook_www_url: String,
    /// `meta.facebook_graph_url`.
    pub facebook_graph_url: String,
    /// CDN base (`…/scontent.cdninstagram.com`).
    pub cdn_url: String,
}

impl RunningSim {
    /// The Meta endpoints of this simulator.
    pub fn urls(&self) -> MetaUrls {
        let b = &self.base_url;
        MetaUrls {
            instagram_oauth_url: format!("{b}/www.instagram.com/oauth/authorize"),
            instagram_api_url: format!("{b}/api.instagram.com"),
            instagram_graph_url: format!("{b}/graph.instagram.com"),
            facebook_www_url: format!("{b}/www.facebook.com"),
            facebook_graph_url: format!("{b}/graph.facebook.com"),
            cdn_url: format!("{b}/{}", crate::cdn::CDN_HOST),
        }
    }

    /// Stops accepting connections and waits (up to two seconds) for open ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            // A hanging request (timeout outage) must not hold shutdown hostage.
            task.abort();
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds `addr` (use port 0 for a free port) and serves the simulator.
pub async fn start(sim: Simulator, addr: SocketAddr) -> io::Result<RunningSim> {
    let listener = TcpListener::bind(addr).await?;
    serve(sim, listener).await
}

/// Serves the simulator on an already bound listener.
pub async fn serve(sim: Simulator, listener: TcpListener) -> io::Result<RunningSim> {
    let addr = listener.local_addr()?;
    let shown = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    let (tx, rx) = oneshot::channel::<()>();
    let router = sim.router();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "meta simulator server stopped");
        }
    });
    Ok(RunningSim {
        base_url: format!("http://{shown}"),
        addr,
        sim,
        shutdown: Some(tx),
        task: Some(task),
    })
}
