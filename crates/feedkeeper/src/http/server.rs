//! The HTTP/1 server under the edge: accept loops on threads of their own.
//!
//! Each serving thread runs a single-threaded runtime that accepts from the one listening
//! socket (shared as nginx's workers share theirs) and serves every connection it accepted to
//! the end, so a request is read, answered and written on one thread. On one multi-threaded
//! runtime, most of a small response's cost was waking other threads and handing work between
//! them (see docs/benchmarks.md). The background workers stay on the main runtime.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tower::ServiceExt as _;

/// The serving threads after they stopped accepting; see [`serve_on_threads`].
///
/// Connections opened while serving are driven by the runtime of the thread that opened them.
/// Each thread's database pool is its own, but the Meta client's pooled HTTP connections are
/// shared with the background workers. So the threads keep their (idle) runtimes running until
/// this is dropped: drop it after the workers have stopped and the database is closed.
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

/// A serving thread as the others see it: how many connections it has open, and where to
/// hand it one.
struct Peer {
    open: Arc<AtomicUsize>,
    inbox: mpsc::UnboundedSender<Handed>,
}

/// A connection handed to another thread, already counted in that thread's `open`.
type Handed = (std::net::TcpStream, SocketAddr, OpenConnection, Admitted);

/// What each connection may take, and how the server stops.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// The request head must arrive within this long.
    pub header_timeout: Duration,
    /// The largest request head read (a larger one gets 431); also each connection's read
    /// buffer.
    pub max_header_bytes: usize,
    /// Nothing read for this long (an idle keep-alive, a client gone silent): closed.
    pub idle_timeout: Duration,
    /// An answer the client does not read for this long: closed.
    pub write_timeout: Duration,
    /// Open connections on the node, and per client address (trusted proxies exempt).
    pub max_connections: usize,
    pub max_per_address: usize,
    pub trusted_proxies: crate::http::client_addr::TrustedProxies,
    /// On shutdown, open requests may finish within this long.
    pub grace: Duration,
}

impl ConnectionLimits {
    /// The limits of the `[server]` configuration.
    pub fn from_config(server: &crate::config::ServerConfig, grace: Duration) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(server.header_read_timeout_secs),
            max_header_bytes: server.max_header_bytes as usize,
            idle_timeout: Duration::from_secs(server.idle_timeout_secs),
            write_timeout: Duration::from_secs(server.write_timeout_secs),
            max_connections: server.max_connections as usize,
            max_per_address: server.max_connections_per_address as usize,
            // Validated with the configuration.
            trusted_proxies: crate::http::client_addr::TrustedProxies::parse(
                &server.trusted_proxies,
            )
            .unwrap_or_default()
            .writing(server.client_address_header),
            grace,
        }
    }
}

/// The node's open connections, in all and by client address.
#[derive(Debug)]
struct Gate {
    limits: ConnectionLimits,
    total: AtomicUsize,
    by_address: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

/// A connection let in, counted until dropped.
#[derive(Debug)]
struct Admitted {
    gate: Arc<Gate>,
    address: Option<IpAddr>,
}

impl Gate {
    /// Lets a connection from `peer` in, unless the node or its address has too many open.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admitted> {
        let peer = peer.to_canonical();
        // One client easily has a whole IPv6 /64; a proxy in front carries everyone (as does
        // one on this machine, listed or not).
        let address = match peer {
            _ if self.limits.trusted_proxies.contains(peer) || is_localhost(peer) => None,
            IpAddr::V4(_) => Some(peer),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                Some(IpAddr::V6(std::net::Ipv6Addr::new(
                    s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                )))
            }
        };
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.limits.max_connections {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        if let Some(address) = address {
            let mut by_address = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
            let open = by_address.entry(address).or_default();
            if *open >= self.limits.max_per_address {
                drop(by_address);
                self.total.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
            *open += 1;
        }
        Some(Admitted {
            gate: self.clone(),
            address,
        })
    }
}

/// 127.0.0.1 or ::1: where a proxy on the same machine connects from.
fn is_localhost(ip: IpAddr) -> bool {
    ip == IpAddr::from(std::net::Ipv4Addr::LOCALHOST)
        || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.gate.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(address) = self.address {
            let mut by_address = self
                .gate
                .by_address
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(open) = by_address.get_mut(&address) {
                *open -= 1;
                if *open == 0 {
                    by_address.remove(&address);
                }
            }
        }
    }
}

/// What one serving thread is given.
struct Worker<A> {
    listener: std::net::TcpListener,
    serving: Serving<A>,
}

/// What a serving thread answers requests with: a router, or a front that takes some routes
/// straight to their handlers before it (`app::Front`).
pub trait Answer: Clone + Send + 'static {
    /// The answer to `request`, which came from `peer`.
    fn answer(
        &self,
        request: Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response> + Send + use<Self>;
}

impl Answer for Router {
    fn answer(
        &self,
        mut request: Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response> + Send + use<> {
        request
            .extensions_mut()
            .insert(ConnectInfo::<SocketAddr>(peer));
        let answer = self.clone().oneshot(request);
        async move {
            match answer.await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    }
}

/// Makes what serving thread `index` answers with, on that thread (so what it opens, such as
/// its database pool's connections, belongs to that thread's runtime).
pub type MakeRouter<A = Router> = Arc<dyn Fn(usize) -> A + Send + Sync>;

/// What one serving thread serves with.
struct Serving<A> {
    index: usize,
    inbox: mpsc::UnboundedReceiver<Handed>,
    peers: Arc<[Peer]>,
    router: MakeRouter<A>,
    gate: Arc<Gate>,
}

/// Serves the routers `router` makes (one per thread, on it) on `listener` from `threads`
/// threads until `shutdown` resolves, then lets open requests finish for up to `grace` (every
/// thread at once) and returns. Each connection is held to `limits`, and handlers see the peer
/// address (`ConnectInfo`). If this future is dropped instead, the threads stop the same way
/// and end.
pub async fn serve_on_threads<A: Answer>(
    listener: TcpListener,
    router: MakeRouter<A>,
    threads: usize,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<ServingThreads> {
    let threads = threads.max(1);
    let gate = Arc::new(Gate {
        limits,
        total: AtomicUsize::new(0),
        by_address: Default::default(),
    });
    let listener = listener.into_std()?;
    let (stop, stopped) = watch::channel(false);
    let (release, released) = watch::channel(());
    let (peers, inboxes): (Vec<Peer>, Vec<_>) = (0..threads)
        .map(|_| {
            let (inbox, receiver) = mpsc::unbounded_channel();
            let peer = Peer {
                open: Arc::default(),
                inbox,
            };
            (peer, receiver)
        })
        .unzip();
    let peers: Arc<[Peer]> = peers.into();
    // The threads log where the caller logs (a test's subscriber is the calling thread's own).
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let mut finished = Vec::with_capacity(threads);
    for (index, inbox) in inboxes.into_iter().enumerate() {
        let worker = Worker {
            listener: listener.try_clone()?,
            serving: Serving {
                index,
                inbox,
                peers: peers.clone(),
                router: router.clone(),
                gate: gate.clone(),
            },
        };
        let mut stopped = stopped.clone();
        let mut released = released.clone();
        let dispatch = dispatch.clone();
        let (ready, started) = oneshot::channel::<std::io::Result<()>>();
        let (done, finished_serving) = oneshot::channel::<()>();
        finished.push(finished_serving);
        std::thread::Builder::new()
            .name(format!("http-{index}"))
            .spawn(move || {
                let _logging = tracing::dispatcher::set_default(&dispatch);
                // Built here, so a thread that cannot start never drops a runtime on the
                // caller's async thread.
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(worker.listener) {
                        Ok(listener) => listener,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    // A dropped `stop` (the caller went away) stops serving too.
                    let stop = async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    };
                    serve_connections(listener, worker.serving, stop).await;
                    let _ = done.send(());
                    // Keep driving this runtime's connections (see `ServingThreads`).
                    while released.changed().await.is_ok() {}
                });
            })?;
        // A thread that cannot serve stops the whole server from starting (the others see
        // `stop` dropped and end).
        started
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("a serving thread ended at start")))?;
    }
    drop(listener);
    drop(peers);
    shutdown.await;
    let _ = stop.send(true);
    for finished_serving in finished {
        // An error means the thread ended early (it panicked); nothing to wait for.
        let _ = finished_serving.await;
    }
    Ok(ServingThreads { _release: release })
}

/// Raises the soft limit on open files to the hard limit, as Go's runtime and nginx's
/// `worker_rlimit_nofile` do: every connection holds a file, and services are often started with
/// a soft limit of 1 024. Returns the limit now in force, if known.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        // `None` is unlimited.
        let below = match (limit.current, limit.maximum) {
            (Some(current), Some(maximum)) => current < maximum,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if below {
            let before = limit.current;
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => {
                    tracing::debug!(?before, now = ?limit.maximum, "raised the open-file limit")
                }
                Err(e) => tracing::debug!(error = %e, "the open-file limit could not be raised"),
            }
        }
        getrlimit(Resource::Nofile).current
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// One thread's loop until `shutdown` resolves: accepts from the shared socket and serves each
/// connection here, or hands it to the thread with the fewest open connections (whichever
/// thread the kernel wakes first accepts, which left one core busier than the other), and
/// serves what the others hand over. Then lets open requests finish for up to `grace`.
async fn serve_connections<A: Answer>(
    listener: TcpListener,
    serving: Serving<A>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let Serving {
        index,
        mut inbox,
        peers,
        router,
        gate,
    } = serving;
    let router = router(index);
    let limits = gate.limits.clone();
    let epoch = std::time::Instant::now();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let watched = Arc::new(Watchlist::default());
    let watchdog = tokio::spawn(watchdog(
        watched.clone(),
        epoch,
        [
            limits.idle_timeout,
            limits.write_timeout,
            limits.header_timeout,
        ],
    ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer, open, admitted) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Over the node's or the address's limit: closed at once, costing nothing.
                    let Some(admitted) = gate.admit(peer.ip()) else {
                        tracing::debug!(%peer, "connection refused: too many open");
                        continue;
                    };
                    match hand_over(index, &peers, stream, peer, admitted) {
                        Some(ours) => ours,
                        None => continue,
                    }
                }
                Err(e) => {
                    // Out of file descriptors, or a connection reset while queued: back off a
                    // moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some((stream, peer, open, admitted)) = inbox.recv() => match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => (stream, peer, open, admitted),
                Err(e) => {
                    tracing::debug!(error = %e, "a handed-over connection could not be used");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Answers leave at once: a small segment (a streamed response's last chunk, the tail of
        // a long body) must not wait for the client's delayed ACK of the one before (Nagle).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            // Refused before any route: no Host, or two (RFC 9112 §3.2).
            let refused = crate::http::edge::bad_host(&request);
            let answer = (!refused).then(|| router.answer(request, peer));
            async move {
                Ok::<_, Infallible>(match answer {
                    Some(answer) => answer.await,
                    None => crate::http::edge::bad_host_response(),
                })
            }
        });
        let waiting = Arc::new(Waiting::default());
        let stream = Watched {
            inner: crate::zero_copy::ZeroCopyStream::new(stream),
            waiting: waiting.clone(),
        };
        let connection = http
            .clone()
            .timer(WatchdogTimer {
                waiting: waiting.clone(),
                epoch,
            })
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        // Off the watchlist as soon as the task ends or is aborted, so a flood of short
        // connections leaves nothing behind for the watchdog's next look.
        let unwatch = watched.unwatch_on_drop();
        let id = unwatch.id;
        let task = tokio::spawn(async move {
            let _unwatch = unwatch;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(open);
            drop(admitted);
        });
        watched.add(id, waiting, task.abort_handle());
    }
    drop(listener);
    // Connections handed over but not yet taken are closed unserved, as a closed port would.
    inbox.close();
    while let Ok(handed) = inbox.try_recv() {
        drop(handed);
    }
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the shutdown grace period");
    }
    watchdog.abort();
    // What is still open had its grace period; with no watchdog, nothing would bound it.
    for task in watched.drain() {
        task.abort();
    }
}

/// Keeps `stream` on thread `index` (returned, counted) unless another thread has fewer open
/// connections, in which case it is counted there at once (so a burst of accepts spreads
/// evenly) and sent there.
fn hand_over(
    index: usize,
    peers: &[Peer],
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
) -> Option<(tokio::net::TcpStream, SocketAddr, OpenConnection, Admitted)> {
    let load = |i: usize| peers[i].open.load(Ordering::Relaxed);
    let target = (0..peers.len())
        .min_by_key(|&i| (load(i), i != index))
        .unwrap_or(index);
    if target == index || load(target) >= load(index) {
        return Some((
            stream,
            peer,
            OpenConnection::count(&peers[index].open),
            admitted,
        ));
    }
    // Leaves this thread's reactor; the target registers it with its own.
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(error = %e, "an accepted connection could not be handed over");
            return None;
        }
    };
    let counted = OpenConnection::count(&peers[target].open);
    match peers[target].inbox.send((stream, peer, counted, admitted)) {
        Ok(()) => None,
        // That thread has stopped: serve it here after all.
        Err(mpsc::error::SendError((stream, peer, _, admitted))) => {
            tokio::net::TcpStream::from_std(stream).ok().map(|stream| {
                (
                    stream,
                    peer,
                    OpenConnection::count(&peers[index].open),
                    admitted,
                )
            })
        }
    }
}

/// When a connection's socket last started waiting, in milliseconds since `epoch` (0: it is not
/// waiting; [`UNSTAMPED`]: it is, since a moment the watchdog has not yet stamped), written by
/// [`Watched`] and read by [`watchdog`]; and the deadline for the request head being read
/// ([`WatchdogTimer`]; 0: none).
#[derive(Debug, Default)]
struct Waiting {
    read: AtomicU64,
    write: AtomicU64,
    head_deadline: AtomicU64,
}

/// A wait the watchdog stamps with its own clock when it next looks: the serving path reads no
/// clock per request.
const UNSTAMPED: u64 = u64::MAX;

/// A connection's socket, noting when it starts and stops waiting, for the deadlines hyper does
/// not have (see [`watchdog`]). On the hot path this is an atomic store when a wait begins or
/// ends: no clock read, no timer per request.
struct Watched<T> {
    inner: T,
    waiting: Arc<Waiting>,
}

impl<T> Watched<T> {
    fn note(slot: &AtomicU64, poll: &std::task::Poll<std::io::Result<impl Sized>>) {
        match poll {
            std::task::Poll::Pending => {
                if slot.load(Ordering::Relaxed) == 0 {
                    slot.store(UNSTAMPED, Ordering::Relaxed);
                }
            }
            std::task::Poll::Ready(_) => slot.store(0, Ordering::Relaxed),
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        Self::note(&self.waiting.read, &poll);
        poll
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> Watched<T> {
    /// A write-side poll, noted.
    fn poll_writing<R>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        poll: impl FnOnce(
            std::pin::Pin<&mut T>,
            &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<R>>,
    ) -> std::task::Poll<std::io::Result<R>> {
        let result = poll(std::pin::Pin::new(&mut self.inner), cx);
        Self::note(&self.waiting.write, &result);
        if result.is_ready() && self.waiting.read.load(Ordering::Relaxed) != 0 {
            // An answer going out is not silence: a long one is not cut by the idle limit.
            self.waiting.read.store(UNSTAMPED, Ordering::Relaxed);
        }
        result
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.poll_writing(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.poll_writing(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_writing(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_writing(cx, |inner, cx| inner.poll_shutdown(cx))
    }
}

/// The timer hyper is given for its one deadline, the request head's: the deadline is noted for
/// the connection's [`watchdog`], which closes the connection once it passes (what hyper does
/// when its timer fires), instead of a timer registered and cancelled for every request.
/// hyper's HTTP/1 server uses its timer for nothing else; a sleep from this timer never wakes
/// its task by itself.
#[derive(Clone)]
struct WatchdogTimer {
    waiting: Arc<Waiting>,
    epoch: std::time::Instant,
}

impl WatchdogTimer {
    fn note(&self, deadline: std::time::Instant) {
        let at = u64::try_from(deadline.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX - 1)
            .clamp(1, u64::MAX - 1);
        self.waiting.head_deadline.store(at, Ordering::Relaxed);
    }
}

impl hyper::rt::Timer for WatchdogTimer {
    fn sleep(&self, duration: Duration) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    fn sleep_until(
        &self,
        deadline: std::time::Instant,
    ) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        self.note(deadline);
        Box::pin(HeadDeadline(self.waiting.clone()))
    }

    fn reset(
        &self,
        _: &mut std::pin::Pin<Box<dyn hyper::rt::Sleep>>,
        new_deadline: std::time::Instant,
    ) {
        self.note(new_deadline);
    }
}

/// A head deadline noted for the watchdog, and withdrawn when hyper drops it (the head arrived).
struct HeadDeadline(Arc<Waiting>);

impl Future for HeadDeadline {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        // The watchdog ends the connection when the deadline passes.
        std::task::Poll::Pending
    }
}

impl hyper::rt::Sleep for HeadDeadline {}

impl Drop for HeadDeadline {
    fn drop(&mut self) {
        self.0.head_deadline.store(0, Ordering::Relaxed);
    }
}

/// A serving thread's connections, as its [`watchdog`] sees them: each from when its task is
/// spawned until the task ends.
#[derive(Default)]
struct Watchlist {
    next: AtomicU64,
    connections:
        std::sync::Mutex<std::collections::HashMap<u64, (Arc<Waiting>, tokio::task::AbortHandle)>>,
}

/// Takes a connection off its thread's [`Watchlist`] when dropped (its task ended).
struct Unwatch {
    list: Arc<Watchlist>,
    id: u64,
}

impl Drop for Unwatch {
    fn drop(&mut self) {
        self.list.entries().remove(&self.id);
    }
}

impl Watchlist {
    fn entries(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<u64, (Arc<Waiting>, tokio::task::AbortHandle)>,
    > {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection's place on the list, given up when the guard is dropped.
    fn unwatch_on_drop(self: &Arc<Self>) -> Unwatch {
        Unwatch {
            list: self.clone(),
            id: self.next.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn add(&self, id: u64, waiting: Arc<Waiting>, task: tokio::task::AbortHandle) {
        // A task that already ended (its guard found nothing to remove) goes at the next look.
        self.entries().insert(id, (waiting, task));
    }

    /// Every connection still on the list, taken off it.
    fn drain(&self) -> Vec<tokio::task::AbortHandle> {
        self.entries().drain().map(|(_, (_, task))| task).collect()
    }
}

/// Closes (aborts the task of) each of a thread's connections that has waited too long: a
/// read for longer than the idle limit (nothing sent: an idle keep-alive, or a client gone
/// silent), a write for longer than the write limit (a client that does not read its answer),
/// or a request head past its deadline. One task per thread, not a timer per connection or per
/// request: it looks a few times per limit and stamps the waits it finds begun, so a
/// connection is closed within half as much again as its limit.
async fn watchdog(
    watched: Arc<Watchlist>,
    epoch: std::time::Instant,
    [idle, stall, head]: [Duration; 3],
) {
    let shortest = idle.min(stall).min(head);
    let every = (shortest / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let (idle, stall) = (idle.as_millis() as u64, stall.as_millis() as u64);
    loop {
        tokio::time::sleep(every).await;
        let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let since = |slot: &AtomicU64| match slot.load(Ordering::Relaxed) {
            0 => 0,
            UNSTAMPED => {
                slot.store(now.max(1), Ordering::Relaxed);
                0
            }
            at => now.saturating_sub(at),
        };
        let mut expired = Vec::new();
        watched.entries().retain(|_, (waiting, task)| {
            if task.is_finished() {
                return false;
            }
            let head = waiting.head_deadline.load(Ordering::Relaxed);
            let late = since(&waiting.read) > idle
                || since(&waiting.write) > stall
                || (head != 0 && now > head);
            if late {
                expired.push(task.clone());
            }
            !late
        });
        // Aborted outside the lock: an aborted task's guard takes the lock as it is dropped.
        for task in expired {
            tracing::debug!("connection closed: it waited too long");
            task.abort();
        }
    }
}

/// One open connection in a thread's count, for as long as this lives.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn count(open: &Arc<AtomicUsize>) -> OpenConnection {
        open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(open.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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

    fn test_limits() -> ConnectionLimits {
        ConnectionLimits::from_config(
            &crate::config::ServerConfig::default(),
            Duration::from_secs(5),
        )
    }

    /// The name of the thread that answers `client`'s request.
    async fn thread_of(client: &reqwest::Client, base: &str) -> String {
        client
            .get(format!("{base}/thread"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn serving_threads_answer_finish_what_they_started_and_stop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(serve_on_threads(
            listener,
            Arc::new(|_| app()),
            2,
            test_limits(),
            async {
                let _ = stopped.await;
            },
        ));
        let client = reqwest::Client::new();
        let name = thread_of(&client, &base).await;
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

    /// Reads one answer's head and body (`Content-Length`) from `stream`.
    async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt as _;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return text;
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the answer was whole: {text}");
            got.extend_from_slice(&buf[..n]);
        }
    }

    /// The request head's deadline, kept by the thread's watchdog: a connection that sends a
    /// request head in time, again and again, is served for as long as it likes; one that falls
    /// silent between requests, or stops half-way through a head, is closed soon after.
    #[tokio::test]
    async fn request_heads_must_arrive_in_time_each_time() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut limits = test_limits();
        limits.header_timeout = Duration::from_secs(2);
        let _serving = tokio::spawn(serve_on_threads(
            listener,
            Arc::new(|_| app()),
            1,
            limits,
            std::future::pending(),
        ));
        let request = b"GET /thread HTTP/1.1\r\nHost: x\r\n\r\n";

        // Each head within the deadline, over three times the deadline in all.
        let mut steady = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(6500) {
            steady.write_all(request).await.unwrap();
            assert!(read_answer(&mut steady).await.starts_with("HTTP/1.1 200"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Silent after an answer, and silent half-way through a head: both closed.
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        idle.write_all(request).await.unwrap();
        assert!(read_answer(&mut idle).await.starts_with("HTTP/1.1 200"));
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /thread HTTP/1.1\r\nHo").await.unwrap();
        let waited = std::time::Instant::now();
        for stream in [&mut idle, &mut slow] {
            let mut rest = Vec::new();
            let closed =
                tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut rest));
            assert!(closed.await.is_ok(), "the connection was left open");
        }
        // Within half as much again as the deadline, plus the machine's own delays.
        assert!(
            waited.elapsed() < Duration::from_secs(8),
            "{:?}",
            waited.elapsed()
        );
    }

    #[tokio::test]
    async fn connections_are_spread_evenly_over_the_threads() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let _serving = tokio::spawn(serve_on_threads(
            listener,
            Arc::new(|_| app()),
            2,
            test_limits(),
            std::future::pending(),
        ));
        // Eight clients, each keeping its connection open: whichever thread accepts, each new
        // connection goes to the thread with fewer.
        let mut clients = Vec::new();
        let mut served_by = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..8 {
            let client = reqwest::Client::new();
            let name = thread_of(&client, &base).await;
            *served_by.entry(name).or_default() += 1;
            clients.push(client);
        }
        assert_eq!(
            served_by.into_iter().collect::<Vec<_>>(),
            [("http-0".to_owned(), 4), ("http-1".to_owned(), 4)]
        );
    }

    #[tokio::test]
    async fn dropping_the_server_stops_its_threads() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let serving = tokio::spawn(serve_on_threads(
            listener,
            Arc::new(|_| app()),
            1,
            test_limits(),
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

    /// 8 MB (more than a loopback socket buffers at once, so writes come back short and wait),
    /// a pattern that shows any byte out of place.
    fn large_body() -> Vec<u8> {
        (0..8 * 1024 * 1024 + 7)
            .map(|i: usize| (i % 251) as u8)
            .collect()
    }

    /// Reads one answer's head from `reader`, returning its content length.
    async fn content_length(reader: &mut (impl tokio::io::AsyncBufRead + Unpin)) -> usize {
        use tokio::io::AsyncBufReadExt as _;
        let mut length = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            assert!(!line.is_empty(), "the connection closed inside a head");
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = Some(value.trim().parse().unwrap());
            }
        }
        length.expect("a content length")
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn large_bodies_go_out_from_their_file_whole_and_in_order_to_a_slow_reader() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let dir = tempfile::tempdir().unwrap();
        let files = crate::zero_copy::BodyFiles::open(dir.path()).unwrap();
        let body = files.back(axum::body::Bytes::from(large_body()));
        assert!(crate::zero_copy::is_file_backed(&body));
        let served = body.clone();
        let app = move |_| {
            let served = served.clone();
            app().route("/large", get(move || std::future::ready(served.clone())))
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let _serving = tokio::spawn(serve_on_threads(
            listener,
            Arc::new(app),
            1,
            test_limits(),
            std::future::pending(),
        ));
        let sent_before = crate::zero_copy::bytes_sent_from_files();

        // Two requests at once on one connection, then a small one: each answer must be whole
        // and start where the one before ended.
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(
                b"GET /large HTTP/1.1\r\nHost: t\r\n\r\n\
                  GET /large HTTP/1.1\r\nHost: t\r\n\r\n\
                  GET /thread HTTP/1.1\r\nHost: t\r\n\r\n",
            )
            .await
            .unwrap();
        let mut reader = tokio::io::BufReader::new(stream);
        // A write that stalled (data corked, a lost wake-up) fails here rather than hangs.
        let read_all = async {
            for (answer, expected) in [(0, &body[..]), (1, &body[..]), (2, b"http-0".as_slice())] {
                let length = content_length(&mut reader).await;
                assert_eq!(length, expected.len(), "answer {answer}");
                let mut received = vec![0; length];
                let mut at = 0;
                while at < length {
                    // The first answer read slowly, so the server meets a full socket and sends
                    // the rest of the file from where the last short write ended.
                    let slowly = answer == 0 && at < 4 * 1024 * 1024;
                    let end = if slowly {
                        (at + 64 * 1024).min(length)
                    } else {
                        length
                    };
                    let n = reader.read(&mut received[at..end]).await.unwrap();
                    assert!(n > 0, "answer {answer} cut short at {at}");
                    at += n;
                    if slowly {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                assert!(received == expected, "answer {answer} differs");
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read_all)
            .await
            .expect("the answers arrive within a minute");
        assert!(
            crate::zero_copy::bytes_sent_from_files() - sent_before >= 2 * body.len() as u64,
            "the bodies were copied, not sent from their file"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        use rustix::process::{Resource, getrlimit};
        let now = raise_open_file_limit();
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(now, limit.current);
        assert_eq!(limit.current, limit.maximum);
    }

    #[test]
    fn zero_threads_means_one_per_core() {
        assert!(thread_count(0) >= 1);
        assert_eq!(thread_count(3), 3);
    }
}
