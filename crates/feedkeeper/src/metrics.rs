//! Prometheus metrics. Two kinds of numbers, exposed together at `/metrics`
//! (`http/metrics.rs`) in the OpenMetrics text format:
//!
//! - what happens on this node, counted as it happens ([`Metrics`]): HTTP requests and their
//!   latency by route, jobs ended by kind and outcome, calls to Meta by host and outcome;
//! - what is true now, read at each scrape ([`Snapshot`]): backlogs, connections by status, the
//!   soonest token expiry, sync lag, pools, the widget cache. The database's part is the same on
//!   every node (alert on `max` of it, not `sum`).
//!
//! It sits at the bottom of the layers (like `clock`): the HTTP edge, the runner and the Meta
//! client all count into it, and it imports none of them. Every label takes a bounded set of
//! values (route patterns, never raw paths; job kinds; configured hosts), so the series count
//! has a ceiling whatever visitors send.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route pattern (`/w/:id`), or `(none)` when no route matched.
    pub route: String,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: String,
    /// `finished`, `retried` (failed, will run again), `dead` (failed too often), `lost`
    /// (another node took the lease over), `handed_back` (stopped at shutdown), `unrecorded`
    /// (its end could not be written; the lease runs out and it runs again).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MetaCallLabels {
    pub host: String,
    /// `ok`, or what the failure calls for: `reconnect`, `back_off`, `retry`, `gone`, `bug`,
    /// `operator`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PercentileLabels {
    percentile: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolNameLabels {
    pool: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    schema: String,
    node: String,
}

/// The upper bounds of the request latency buckets: half a millisecond to about a minute, each
/// 2.5 times the one before (and `+Inf` after them).
const LATENCY_BOUNDS: [f64; 14] = {
    let mut bounds = [0.0005; 14];
    let mut i = 1;
    while i < bounds.len() {
        bounds[i] = bounds[i - 1] * 2.5;
        i += 1;
    }
    bounds
};

/// What this node counts as it happens. Cheap to share (`Arc` in the state).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Every [`RequestCounts`] handed out; a scrape adds them up.
    requests: Mutex<Vec<Arc<RequestCounts>>>,
    jobs: Family<JobLabels, Counter>,
    meta_calls: Family<MetaCallLabels, Counter>,
}

/// HTTP requests counted by one serving thread, by route pattern: its own lock and numbers, so
/// counting takes no lock and no counter another core uses too (one shared counter, or one
/// histogram's lock, moved between the cores on every widget request). A
/// scrape adds up every thread's counts. (Anything else that answers requests, a test's
/// router, shares one set behind its lock.)
#[derive(Debug, Default)]
pub struct RequestCounts(Mutex<HashMap<Box<str>, RouteCounts>>);

/// One route's requests on one thread.
#[derive(Clone, Debug, Default)]
struct RouteCounts {
    /// Answers by method and status.
    answers: Vec<(&'static str, u16, u64)>,
    /// Latencies: how many fell in each bucket of [`LATENCY_BOUNDS`], then `+Inf`.
    buckets: [u64; LATENCY_BOUNDS.len() + 1],
    seconds: f64,
}

impl RouteCounts {
    fn add(&mut self, other: &RouteCounts) {
        for &(method, status, n) in &other.answers {
            self.count(method, status, n);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.seconds += other.seconds;
    }

    fn count(&mut self, method: &'static str, status: u16, n: u64) {
        match self
            .answers
            .iter_mut()
            .find(|(m, s, _)| *m == method && *s == status)
        {
            Some((_, _, count)) => *count += n,
            None => self.answers.push((method, status, n)),
        }
    }
}

impl RequestCounts {
    /// One request answered: `route` is its route's pattern (`None`: no route matched).
    pub fn count(
        &self,
        route: Option<&str>,
        method: &axum::http::Method,
        status: u16,
        seconds: f64,
    ) {
        let route = route.unwrap_or(NO_ROUTE);
        let mut routes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Allocates only for a route's first request, and a method and status's first.
        let counts = match routes.get_mut(route) {
            Some(counts) => counts,
            None => routes.entry(route.into()).or_default(),
        };
        counts.count(method_label(method), status, 1);
        let bucket = LATENCY_BOUNDS.partition_point(|&bound| bound < seconds);
        counts.buckets[bucket] += 1;
        counts.seconds += seconds;
    }
}

/// The route "pattern" of a request no route matched.
const NO_ROUTE: &str = "(none)";

impl Metrics {
    /// A new set of request counts, for one serving thread (or anything else that answers
    /// requests), included in every scrape from now on.
    pub fn request_counts(&self) -> Arc<RequestCounts> {
        let counts = Arc::new(RequestCounts::default());
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(counts.clone());
        counts
    }

    /// Every thread's request counts added up, by route pattern.
    fn requests_so_far(&self) -> RequestFamilies {
        let shards = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // Added up while each thread's lock is held (no allocation there but a route's
        // first); labelled when written out.
        let mut routes: BTreeMap<Box<str>, RouteCounts> = BTreeMap::new();
        for shard in shards {
            let counts = shard.0.lock().unwrap_or_else(|e| e.into_inner());
            for (pattern, counts) in counts.iter() {
                match routes.get_mut(pattern) {
                    Some(total) => total.add(counts),
                    None => {
                        routes.insert(pattern.clone(), counts.clone());
                    }
                }
            }
        }
        RequestFamilies(routes)
    }

    /// The outcomes a job can end with.
    pub const JOB_OUTCOMES: [&'static str; 6] = [
        "finished",
        "retried",
        "dead",
        "lost",
        "handed_back",
        "unrecorded",
    ];

    /// A worker of `kind` runs here: every outcome gets its series at 0, so that `increase()`
    /// sees the first one after a restart.
    pub fn job_kind_started(&self, kind: &str) {
        for outcome in Self::JOB_OUTCOMES {
            let _ = self.jobs.get_or_create(&JobLabels {
                kind: kind.to_owned(),
                outcome,
            });
        }
    }

    /// The outcomes of a call to Meta.
    pub const META_OUTCOMES: [&'static str; 7] = [
        "ok",
        "reconnect",
        "back_off",
        "retry",
        "gone",
        "bug",
        "operator",
    ];

    /// Calls to `host` are made: every outcome gets its series at 0.
    pub fn meta_host(&self, host: &str) {
        for outcome in Self::META_OUTCOMES {
            let _ = self.meta_calls.get_or_create(&MetaCallLabels {
                host: host.to_owned(),
                outcome,
            });
        }
    }

    /// One job ended (see [`JobLabels::outcome`]).
    pub fn job_ended(&self, kind: &str, outcome: &'static str) {
        self.jobs
            .get_or_create(&JobLabels {
                kind: kind.to_owned(),
                outcome,
            })
            .inc();
    }

    /// One call to Meta ended (see [`MetaCallLabels::outcome`]).
    pub fn meta_call(&self, host: &str, outcome: &'static str) {
        self.meta_calls
            .get_or_create(&MetaCallLabels {
                host: host.to_owned(),
                outcome,
            })
            .inc();
    }

    /// The exposition: the live counters and the scrape's `snapshot`, in the OpenMetrics text
    /// format.
    pub fn encode(&self, snapshot: &Snapshot) -> String {
        let mut registry = Registry::with_prefix("feedkeeper");
        registry.register_collector(Box::new(self.requests_so_far()));
        registry.register(
            "jobs_ended",
            "Background jobs that ended on this node, by kind and outcome (finished, retried, \
             dead, lost, handed_back)",
            self.jobs.clone(),
        );
        registry.register(
            "meta_calls",
            "Calls to Meta's APIs, by host and outcome (ok, or what the failure calls for)",
            self.meta_calls.clone(),
        );
        snapshot.register(&mut registry);
        let mut text = String::new();
        // Writing to a String cannot fail; a label that could not be encoded would be our bug.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        text
    }
}

/// The request families of one scrape: every thread's counts added up, by route pattern.
#[derive(Debug)]
struct RequestFamilies(BTreeMap<Box<str>, RouteCounts>);

impl Collector for RequestFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut requests = encoder.encode_descriptor(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            None,
            MetricType::Counter,
        )?;
        for (pattern, counts) in &self.0 {
            let route = route_label(pattern);
            for &(method, status, n) in &counts.answers {
                let labels = HttpLabels {
                    route: route.clone(),
                    method,
                    status,
                };
                requests
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        let mut seconds = encoder.encode_descriptor(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to its headers), by route pattern",
            None,
            MetricType::Histogram,
        )?;
        for (pattern, counts) in &self.0 {
            let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(counts.buckets)
                .collect();
            let labels = RouteLabels {
                route: route_label(pattern),
            };
            seconds
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    counts.seconds,
                    counts.buckets.iter().sum(),
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

/// A route pattern as a label: `/w/{id}` becomes `/w/:id` (braces in label values trip up
/// simple exposition parsers and read badly in queries).
fn route_label(pattern: &str) -> String {
    let mut label = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '{' => label.push(':'),
            '}' => {}
            c => label.push(c),
        }
    }
    label
}

fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// One job kind's queue, as the database has it now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobQueue {
    pub kind: String,
    /// Due now and not held by any node.
    pub waiting: i64,
    /// Held by a node (running).
    pub running: i64,
    /// Failed too often; waiting for an operator.
    pub dead: i64,
    /// How long the oldest waiting job has been due, in seconds (0 when none waits).
    pub oldest_due_secs: i64,
}

/// A pool of database connections on this node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolUse {
    /// `workers` (the background work's and the CLI's) or `serving` (the serving thread that
    /// answered this scrape).
    pub name: &'static str,
    pub busy: u32,
    pub idle: u32,
    pub max: u32,
}

/// What the database says now (the same on every node).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DbSnapshot {
    pub jobs: Vec<JobQueue>,
    /// Connections by status (`active`, `degraded`, `needs_reconnect`), every status listed.
    pub connections: Vec<(String, i64)>,
    /// The earliest expiry (Unix seconds) of a token still in use, if any.
    pub soonest_token_expiry: Option<i64>,
    /// Seconds since each active connection's last sync: the median and the 99th percentile.
    pub sync_lag: Option<(f64, f64)>,
    /// Mail waiting to be sent, and how long the oldest has waited.
    pub mail_pending: i64,
    pub mail_oldest_secs: i64,
    /// Incidents open (people asked to act), and how long the oldest has been open.
    pub incidents_open: i64,
    pub incidents_oldest_secs: i64,
    /// Webhook deliveries waiting (to be made or retried).
    pub webhooks_pending: i64,
    /// Pictures not stored yet, and stored images waiting for their variants.
    pub images_unfetched: i64,
    pub images_unprocessed: i64,
}

/// What is true now, read at a scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub version: &'static str,
    pub schema: i64,
    pub node: String,
    /// Seconds this process has run.
    pub uptime_secs: f64,
    /// The database's part; `None` when the database did not answer in time.
    pub db: Option<DbSnapshot>,
    pub pools: Vec<PoolUse>,
    /// Widget lookups answered from memory, not found in memory, and known not to exist.
    pub widget_cache_hits: u64,
    pub widget_cache_misses: u64,
    pub widget_cache_unknown: u64,
    pub widget_cache_entries: u64,
    pub widget_cache_bytes: u64,
    /// Widgets read from the database to be rendered.
    pub widget_loads: u64,
    /// Bytes held in files for sending large answers (`zero_copy`), and sent from them.
    pub body_file_bytes: u64,
    pub body_file_sent_bytes: u64,
    /// Meta's last reported usage (percent of the limit): the app's, and the highest of any
    /// account's (business use case), seen in the last hour.
    pub meta_usage_app: Option<u32>,
    pub meta_usage_account_max: Option<u32>,
    /// Transactions PostgreSQL ended as a deadlock or serialization failure, run again.
    pub conflict_retries: u64,
}

impl Snapshot {
    fn register(&self, registry: &mut Registry) {
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: self.version,
                schema: self.schema.to_string(),
                node: self.node.clone(),
            })
            .set(1);
        registry.register(
            "build_info",
            "This node: its release, database schema and name (always 1)",
            build,
        );
        registry.register(
            "uptime_seconds",
            "Seconds since this process started",
            float_gauge(self.uptime_secs),
        );

        let db_up: Gauge = Gauge::default();
        db_up.set(i64::from(self.db.is_some()));
        registry.register(
            "db_up",
            "Whether the database answered this scrape in time (its families are absent if not)",
            db_up,
        );
        if let Some(db) = &self.db {
            db.register(registry);
        }

        let pools: Family<PoolLabels, Gauge> = Family::default();
        let pool_max: Family<PoolNameLabels, Gauge> = Family::default();
        for p in &self.pools {
            for (state, value) in [("busy", p.busy), ("idle", p.idle)] {
                pools
                    .get_or_create(&PoolLabels {
                        pool: p.name,
                        state,
                    })
                    .set(i64::from(value));
            }
            pool_max
                .get_or_create(&PoolNameLabels { pool: p.name })
                .set(i64::from(p.max));
        }
        registry.register(
            "db_pool_connections",
            "Database connections open on this node, by pool and state",
            pools,
        );
        registry.register(
            "db_pool_max_connections",
            "The most connections each pool may open",
            pool_max,
        );
        let lookups: Family<OutcomeLabels, Counter> = Family::default();
        for (outcome, value) in [
            ("hit", self.widget_cache_hits),
            ("miss", self.widget_cache_misses),
            ("unknown", self.widget_cache_unknown),
        ] {
            lookups
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(value);
        }
        registry.register(
            "widget_cache_lookups",
            "Widget requests looked up in memory: hit (answered from memory), miss (not: \
             rendered, or waited for another request's rendering, or memory not trusted yet), \
             unknown (an address that does not exist, refused without the database)",
            lookups,
        );
        registry.register(
            "widget_cache_entries",
            "Rendered widgets held in memory",
            int_gauge(self.widget_cache_entries as i64),
        );
        registry.register(
            "widget_cache_bytes",
            "Bytes of rendered widgets held in memory",
            int_gauge(self.widget_cache_bytes as i64),
        );
        registry.register(
            "body_file_bytes",
            "Bytes of large answers held in unnamed files in the data directory, to be sent \
             with sendfile (disk space and page cache)",
            int_gauge(self.body_file_bytes as i64),
        );
        let sent: Counter = Counter::default();
        sent.inc_by(self.body_file_sent_bytes);
        registry.register(
            "body_file_sent_bytes",
            "Bytes of answers sent from those files with sendfile",
            sent,
        );
        let loads: Counter = Counter::default();
        loads.inc_by(self.widget_loads);
        registry.register(
            "widget_loads",
            "Widgets read from the database to be rendered",
            loads,
        );
        let usage: Family<ScopeLabels, Gauge> = Family::default();
        for (scope, value) in [
            ("app", self.meta_usage_app),
            ("account_max", self.meta_usage_account_max),
        ] {
            if let Some(v) = value {
                usage
                    .get_or_create(&ScopeLabels { scope })
                    .set(i64::from(v));
            }
        }
        registry.register(
            "meta_usage_percent",
            "Meta's rate-limit usage as it last reported it (100: throttled), for the app and \
             the busiest account in the last hour",
            usage,
        );
        let retries: Counter = Counter::default();
        retries.inc_by(self.conflict_retries);
        registry.register(
            "db_conflict_retries",
            "Transactions PostgreSQL ended as a deadlock or serialization failure and that \
             were run again (should stay at 0)",
            retries,
        );
    }
}

impl DbSnapshot {
    fn register(&self, registry: &mut Registry) {
        let waiting: Family<KindLabels, Gauge> = Family::default();
        let running: Family<KindLabels, Gauge> = Family::default();
        let dead: Family<KindLabels, Gauge> = Family::default();
        let oldest: Family<KindLabels, Gauge> = Family::default();
        for q in &self.jobs {
            let kind = KindLabels {
                kind: q.kind.clone(),
            };
            waiting.get_or_create(&kind).set(q.waiting);
            running.get_or_create(&kind).set(q.running);
            dead.get_or_create(&kind).set(q.dead);
            oldest.get_or_create(&kind).set(q.oldest_due_secs);
        }
        registry.register(
            "jobs_waiting",
            "Jobs due now that no node holds, by kind",
            waiting,
        );
        registry.register("jobs_running", "Jobs a node holds, by kind", running);
        registry.register(
            "jobs_dead",
            "Jobs that failed too often and wait for an operator (feedkeeper jobs retry)",
            dead,
        );
        registry.register(
            "jobs_oldest_due_seconds",
            "How long the oldest waiting job of each kind has been due",
            oldest,
        );

        let connections: Family<StatusLabels, Gauge> = Family::default();
        for (status, count) in &self.connections {
            connections
                .get_or_create(&StatusLabels {
                    status: status.clone(),
                })
                .set(*count);
        }
        registry.register(
            "connections",
            "Connected Instagram accounts, by status",
            connections,
        );
        if let Some(at) = self.soonest_token_expiry {
            let g: Gauge = Gauge::default();
            g.set(at);
            registry.register(
                "token_soonest_expiry_timestamp_seconds",
                "When the first token still in use expires (Unix time); healthy tokens are \
                 refreshed weeks before",
                g,
            );
        }
        if let Some((p50, p99)) = self.sync_lag {
            let lag: Family<PercentileLabels, Gauge<f64, AtomicU64>> = Family::default();
            lag.get_or_create(&PercentileLabels { percentile: "50" })
                .set(p50);
            lag.get_or_create(&PercentileLabels { percentile: "99" })
                .set(p99);
            registry.register(
                "sync_lag_seconds",
                "Seconds since an active account's posts were last synced, across accounts",
                lag,
            );
        }
        registry.register(
            "mail_pending",
            "Messages in the outbox waiting to be sent",
            int_gauge(self.mail_pending),
        );
        registry.register(
            "mail_oldest_pending_seconds",
            "How long the oldest message in the outbox has waited",
            int_gauge(self.mail_oldest_secs),
        );
        registry.register(
            "incidents_open",
            "Incidents open: connections waiting for a person (reconnect, expiring login)",
            int_gauge(self.incidents_open),
        );
        registry.register(
            "incidents_oldest_open_seconds",
            "How long the oldest open incident has been open",
            int_gauge(self.incidents_oldest_secs),
        );
        registry.register(
            "webhook_deliveries_pending",
            "Webhook deliveries waiting to be made or retried",
            int_gauge(self.webhooks_pending),
        );
        registry.register(
            "images_unfetched",
            "Pictures shown by a widget that are not stored yet",
            int_gauge(self.images_unfetched),
        );
        registry.register(
            "images_unprocessed",
            "Stored images waiting for their resized variants",
            int_gauge(self.images_unprocessed),
        );
    }
}

fn int_gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

fn float_gauge(value: f64) -> Gauge<f64, AtomicU64> {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(value);
    g
}

/// The `q`-quantile (0..=1) of `values`, sorted here (nearest rank).
pub fn quantile(values: &mut [i64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1] as f64)
}

/// When each of this node's workers last went round its loop (claiming, or waking to look),
/// for `/readyz` (a worker that hangs, say on a database that stopped answering, stops
/// beating), and which ended without being stopped, for `/healthz`. Empty when this process
/// runs no workers (`serve_http` alone, the CLI).
#[derive(Debug, Default)]
pub struct WorkerBeats {
    beats: std::sync::Mutex<std::collections::HashMap<&'static str, std::time::Instant>>,
    died: std::sync::Mutex<Vec<&'static str>>,
}

impl WorkerBeats {
    /// The worker of `kind` is alive now.
    pub fn beat(&self, kind: &'static str) {
        let mut beats = self.beats.lock().unwrap_or_else(|e| e.into_inner());
        beats.insert(kind, std::time::Instant::now());
    }

    /// The worker of `kind` stopped on purpose (shutdown): it no longer counts.
    pub fn stopped(&self, kind: &'static str) {
        let mut beats = self.beats.lock().unwrap_or_else(|e| e.into_inner());
        beats.remove(kind);
    }

    /// The worker of `kind` ended without being stopped (its loop panicked): this node should
    /// be restarted (`/healthz`).
    pub fn died(&self, kind: &'static str) {
        self.stopped(kind);
        self.died
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(kind);
    }

    /// A worker that ended without being stopped, if any.
    pub fn dead(&self) -> Option<&'static str> {
        self.died
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .copied()
    }

    /// The worker that has gone longest without a beat, and for how long; `None` when no worker
    /// runs here.
    pub fn stalest(&self) -> Option<(&'static str, std::time::Duration)> {
        let beats = self.beats.lock().unwrap_or_else(|e| e.into_inner());
        beats
            .iter()
            .map(|(kind, at)| (*kind, at.elapsed()))
            .max_by_key(|(_, since)| *since)
    }
}

/// A value worked out at most once per `max_age`, and by one caller at a time: the others get
/// the last value at once rather than waiting. Probes and scrapes that anyone can send use it,
/// so a flood of them makes one database query a second, not one each.
#[derive(Debug)]
pub struct Recent<T> {
    last: std::sync::Mutex<Option<(std::time::Instant, T)>>,
    working: tokio::sync::Mutex<()>,
    max_age: std::time::Duration,
}

impl<T: Clone> Recent<T> {
    pub fn new(max_age: std::time::Duration) -> Self {
        Recent {
            last: std::sync::Mutex::new(None),
            working: tokio::sync::Mutex::new(()),
            max_age,
        }
    }

    fn fresh(&self) -> Option<T> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < self.max_age)
            .map(|(_, v)| v.clone())
    }

    fn any(&self) -> Option<T> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref().map(|(_, v)| v.clone())
    }

    /// The value, worked out by `work` if the last one is older than `max_age` and nobody else
    /// is working it out; while someone is, the last value (the first callers ever wait).
    pub async fn get<F, Fut>(&self, work: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        if let Some(v) = self.fresh() {
            return v;
        }
        let _turn = match self.working.try_lock() {
            Ok(turn) => turn,
            Err(_) => match self.any() {
                Some(v) => return v,
                None => self.working.lock().await,
            },
        };
        // Someone may have worked it out while this caller waited for its turn.
        if let Some(v) = self.fresh() {
            return v;
        }
        let value = work().await;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), value.clone()));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_that_stop_leave_the_beats_and_workers_that_die_are_remembered() {
        let beats = WorkerBeats::default();
        assert_eq!(beats.stalest(), None);
        beats.beat("sync");
        beats.beat("mail");
        assert!(beats.stalest().is_some());
        beats.stopped("sync");
        assert_eq!(beats.stalest().map(|(kind, _)| kind), Some("mail"));
        assert_eq!(beats.dead(), None);
        beats.died("mail");
        assert_eq!(beats.dead(), Some("mail"));
        assert_eq!(beats.stalest(), None);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut lags: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(quantile(&mut lags, 0.5), Some(50.0));
        assert_eq!(quantile(&mut lags, 0.99), Some(99.0));
        assert_eq!(quantile(&mut [7], 0.99), Some(7.0));
        assert_eq!(quantile(&mut [], 0.5), None);
    }

    #[test]
    fn route_labels_name_parameters_without_braces() {
        assert_eq!(route_label("/w/{id}"), "/w/:id");
        assert_eq!(route_label("/i/{key}/{file}"), "/i/:key/:file");
        assert_eq!(route_label("/healthz"), "/healthz");
    }

    #[test]
    fn a_scrape_adds_up_every_threads_request_counts() {
        use axum::http::Method;
        let m = Metrics::default();
        let (one, two) = (m.request_counts(), m.request_counts());
        // Latencies a float adds up exactly: 2^-10 s (about 1 ms) and 2^-12 s.
        let (ms, quarter_ms) = (0.0009765625, 0.000244140625);
        one.count(Some("/w/{id}"), &Method::GET, 200, ms);
        one.count(Some("/w/{id}"), &Method::GET, 200, quarter_ms);
        two.count(Some("/w/{id}"), &Method::GET, 200, 2.0);
        two.count(Some("/w/{id}"), &Method::HEAD, 304, ms);
        two.count(None, &Method::POST, 404, 100.0);
        let text = m.encode(&Snapshot::default());
        for line in [
            "feedkeeper_http_requests_total{route=\"/w/:id\",method=\"GET\",status=\"200\"} 3",
            "feedkeeper_http_requests_total{route=\"/w/:id\",method=\"HEAD\",status=\"304\"} 1",
            "feedkeeper_http_requests_total{route=\"(none)\",method=\"POST\",status=\"404\"} 1",
            "feedkeeper_http_request_duration_seconds_count{route=\"/w/:id\"} 4",
            "feedkeeper_http_request_duration_seconds_sum{route=\"/w/:id\"} 2.002197265625",
            // Cumulative: the quarter millisecond in the first bucket, the two 1 ms answers
            // in the second, the 2 s one further up.
            "feedkeeper_http_request_duration_seconds_bucket{le=\"0.0005\",route=\"/w/:id\"} 1",
            "feedkeeper_http_request_duration_seconds_bucket{le=\"0.00125\",route=\"/w/:id\"} 3",
            "feedkeeper_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"/w/:id\"} 4",
            // Beyond the last bound (about a minute): only in +Inf.
            "feedkeeper_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"(none)\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(
            text.contains(
                "feedkeeper_http_request_duration_seconds_bucket{le=\"74.50580596923828\",route=\"(none)\"} 0"
            ),
            "{text}"
        );
        // Counts only grow: a second scrape sees the same, plus what came since.
        one.count(Some("/w/{id}"), &Method::GET, 200, ms);
        let again = m.encode(&Snapshot::default());
        assert!(
            again.contains(
                "feedkeeper_http_requests_total{route=\"/w/:id\",method=\"GET\",status=\"200\"} 4"
            ),
            "{again}"
        );
    }

    #[test]
    fn the_exposition_ends_as_openmetrics_requires_and_names_every_family() {
        let m = Metrics::default();
        m.request_counts()
            .count(Some("/w/{id}"), &axum::http::Method::GET, 200, 0.001);
        m.job_ended("sync", "finished");
        m.meta_call("graph.instagram.com", "ok");
        let text = m.encode(&Snapshot {
            version: "1.0.0",
            db: Some(DbSnapshot {
                connections: vec![("needs_reconnect".to_owned(), 0)],
                ..DbSnapshot::default()
            }),
            ..Snapshot::default()
        });
        assert!(text.ends_with("# EOF\n"), "{text}");
        for family in [
            "feedkeeper_http_requests_total{route=\"/w/:id\",method=\"GET\",status=\"200\"} 1",
            "feedkeeper_jobs_ended_total{kind=\"sync\",outcome=\"finished\"} 1",
            "feedkeeper_meta_calls_total{host=\"graph.instagram.com\",outcome=\"ok\"} 1",
            "feedkeeper_connections{status=\"needs_reconnect\"} 0",
            "feedkeeper_db_up 1",
        ] {
            assert!(text.contains(family), "{family} missing from\n{text}");
        }
        // Without the database's part: the node's own families, and db_up 0.
        let text = m.encode(&Snapshot::default());
        assert!(text.contains("feedkeeper_db_up 0"), "{text}");
        assert!(!text.contains("feedkeeper_connections"), "{text}");
        assert!(text.contains("feedkeeper_jobs_ended_total"), "{text}");
    }
}
