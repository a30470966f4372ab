//! Configuration: defaults -> TOML file -> `FEEDKEEPER_*` environment variables.
//!
//! Loaded and validated once at start; a bad value is reported with its key and what is wrong.
//! Secrets are wrapped in [`Secret`] so they never reach a log line through `Debug`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

/// The commented example configuration, printed by `feedkeeper print-config`.
pub const EXAMPLE: &str = include_str!("../config.example.toml");

/// Prefix of the environment variables that override the file (`FEEDKEEPER_META__INSTAGRAM_APP_ID`).
pub const ENV_PREFIX: &str = "FEEDKEEPER_";

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub meta: MetaConfig,
    pub security: SecurityConfig,
    pub accounts: AccountsConfig,
    pub lifecycle: LifecycleConfig,
    pub workers: WorkersConfig,
    pub sync: SyncConfig,
    pub widgets: WidgetsConfig,
    pub images: ImagesConfig,
    pub mail: MailConfig,
    pub webhooks: WebhooksConfig,
    pub api: ApiConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

/// The header trusted proxies add the client's address to (`server.client_address_header`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardingHeader {
    /// `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`, Caddy, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

/// An entry of `server.trusted_proxies`: an address (`10.0.0.7`) or a network (`10.0.0.0/8`).
pub fn parse_network(entry: &str) -> Result<ipnet::IpNet, String> {
    let entry = entry.trim();
    entry
        .parse::<ipnet::IpNet>()
        .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{entry:?} is not an IP address or network (CIDR)"))
}

/// How widgets are kept and served (see `widgets::cache`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WidgetsConfig {
    /// Memory for rendered widgets on each node, in bytes; the least recently used go first.
    pub cache_bytes: u64,
    /// Widgets one dashboard user may have (deleted ones do not count).
    pub max_per_user: u64,
    /// Widgets rendered at once on a node (CPU work: the document and its compression).
    pub max_concurrent_renderings: u64,
    /// Public requests that may use the database at once on a node (a widget not in memory
    /// yet); more wait, up to `public_db_timeout_ms`, then get 503 with Retry-After.
    pub public_db_concurrency: u64,
    pub public_db_timeout_ms: u64,
    /// How often each node reads the log of widget changes, in milliseconds.
    pub poll_interval_ms: u64,
    /// A node that could not read that log for this long trusts nothing in memory (it asks the
    /// database, and drops its renderings) until it can again.
    pub poll_stale_secs: u64,
}

impl Default for WidgetsConfig {
    fn default() -> Self {
        WidgetsConfig {
            cache_bytes: 256 * 1024 * 1024,
            max_per_user: 200,
            max_concurrent_renderings: 2,
            public_db_concurrency: 4,
            public_db_timeout_ms: 2000,
            poll_interval_ms: 1000,
            poll_stale_secs: 30,
        }
    }
}

/// Where feedkeeper keeps its copies of Instagram's images, and the bounds on fetching, making
/// and serving them (see `images`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    /// Empty: a folder `images` in `storage.data_dir` (one node). `s3://bucket` or
    /// `s3://bucket/prefix`: an S3-compatible bucket (several nodes share it).
    pub store: String,
    /// The S3 endpoint for a service other than AWS (MinIO, Ceph, R2...); empty for AWS.
    pub s3_endpoint: String,
    /// Empty: `AWS_REGION` / `AWS_DEFAULT_REGION`, else us-east-1.
    pub s3_region: String,
    /// Empty: the standard `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (or the instance's role).
    pub s3_access_key_id: String,
    pub s3_secret_access_key: Secret,
    /// Allow an `http://` endpoint (a bucket on the same private network or this machine).
    pub s3_allow_http: bool,
    /// The largest original fetched, in bytes.
    pub max_bytes: u64,
    /// The most pixels an original may have (width × height), checked before decoding.
    pub max_pixels: u64,
    /// How long one fetch of an original may take, in seconds, from connecting to the last byte.
    pub fetch_timeout_secs: u64,
    /// Originals fetched at once by one job.
    pub fetch_concurrency: u64,
    /// Images whose variants are made at once on a node (each holds about four bytes per pixel
    /// of its original, on low-priority threads of their own).
    pub process_concurrency: u64,
    /// Memory for the variants this node serves most, in bytes.
    pub cache_bytes: u64,
    /// Reads of the store at once for variants not in memory; more wait up to
    /// `serve_timeout_ms`, then get 503 with Retry-After.
    pub serve_concurrency: u64,
    pub serve_timeout_ms: u64,
    /// Encoding qualities (1-100).
    pub jpeg_quality: u64,
    pub webp_quality: u64,
    pub avif_quality: u64,
    /// libaom's speed preset for AVIF (through libavif), 4 (slowest, smallest) to 10 (fastest).
    pub avif_speed: u64,
    /// Images no picture uses any more are removed this long after (caches may still show them).
    pub unused_grace_secs: u64,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            store: String::new(),
            s3_endpoint: String::new(),
            s3_region: String::new(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: Secret::default(),
            s3_allow_http: false,
            max_bytes: 20 * 1024 * 1024,
            max_pixels: 16 * 1024 * 1024,
            fetch_timeout_secs: 30,
            fetch_concurrency: 4,
            process_concurrency: 1,
            cache_bytes: 128 * 1024 * 1024,
            serve_concurrency: 16,
            serve_timeout_ms: 2000,
            jpeg_quality: 80,
            webp_quality: 75,
            avif_quality: 60,
            avif_speed: 8,
            unused_grace_secs: 86_400,
        }
    }
}

/// Where images are kept (`images.store`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageStoreLocation {
    /// The folder `images` in the data directory.
    DataDir,
    /// An S3-compatible bucket, under an optional prefix.
    S3 { bucket: String, prefix: String },
}

impl ImageStoreLocation {
    pub fn parse(raw: &str) -> Result<ImageStoreLocation, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(ImageStoreLocation::DataDir);
        }
        let Some(rest) = raw.strip_prefix("s3://") else {
            return Err(format!(
                "{raw:?} is neither empty (a folder in storage.data_dir) nor s3://bucket[/prefix]"
            ));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !valid_bucket {
            return Err(format!("{bucket:?} is not an S3 bucket name"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..")
            || prefix.chars().any(|c| c.is_control())
        {
            return Err(format!("{prefix:?} is not a usable key prefix"));
        }
        Ok(ImageStoreLocation::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl ImagesConfig {
    /// Where images are kept (validated at start).
    pub fn location(&self) -> ImageStoreLocation {
        ImageStoreLocation::parse(&self.store).unwrap_or(ImageStoreLocation::DataDir)
    }
}

/// How the sync worker keeps each account's posts fresh (see `feeds::sync`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// A connection that a widget shows is synced this often.
    pub widget_interval_secs: u64,
    /// Other connections are synced this often.
    pub interval_secs: u64,
    /// The newest posts kept per account (what widgets can show at most).
    pub max_posts: u64,
    /// Posts asked for per call to Meta (Meta's maximum is 100).
    pub page_size: u64,
    /// Instagram's image URLs stop working at their `oe` expiry: sync again this long before.
    pub url_renew_margin_secs: u64,
    /// When Meta's usage headers report this percentage of the allowance used (or more), syncs
    /// slow down (four times the interval) so Meta never has to throttle us.
    pub slow_down_at_percent: u64,
    /// Syncs in flight at once on this node.
    pub concurrency: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            widget_interval_secs: 600,
            interval_secs: 3600,
            max_posts: 50,
            page_size: 50,
            url_renew_margin_secs: 6 * 3600,
            slow_down_at_percent: 75,
            concurrency: 4,
        }
    }
}

/// How webhook deliveries are made (see `webhooks`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Let endpoints be on private, loopback or link-local addresses (this network, this
    /// machine). Off by default: a user's endpoint must not reach the operator's network.
    pub allow_private_addresses: bool,
    /// One delivery attempt may take this long, connecting included.
    pub timeout_secs: u64,
    /// Deliveries in flight at once on this node.
    pub concurrency: u64,
    /// Endpoints a user may have.
    pub max_per_user: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_private_addresses: false,
            timeout_secs: 10,
            concurrency: 8,
            max_per_user: 10,
        }
    }
}

/// The developer API (`/api/v1`, see `http::api`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Requests one key may make per minute, per node (a token bucket: a burst of this many,
    /// refilled evenly over the minute).
    pub requests_per_minute: u64,
    /// Live keys a user may have.
    pub max_keys_per_user: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            requests_per_minute: 600,
            max_keys_per_user: 20,
        }
    }
}

/// `/metrics` for Prometheus (see `metrics`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// When set, a scrape must send `Authorization: Bearer <token>`. Empty: anyone who reaches
    /// the listener may read the metrics (counts, never secrets or names).
    pub token: Secret,
}

/// How mail leaves (see `mail`). With no `smtp_host`, messages are only kept in the dashboard's
/// mailbox page (the demo does this): nothing is lost, nothing is sent.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// The SMTP server (a name or an address); empty: keep mail in the mailbox page only.
    pub smtp_host: String,
    /// 0 means the usual port for `smtp_security`: 587 (STARTTLS), 465 (TLS), 25 (none).
    pub smtp_port: u16,
    pub smtp_security: SmtpSecurity,
    /// Log in to the server when set (with `smtp_password`).
    pub smtp_username: String,
    pub smtp_password: Secret,
    /// The sender's address; the display name is the owner's organisation name, or
    /// "feedkeeper".
    pub from: String,
    /// A new incident's first notice waits this long, so that many connections breaking at
    /// once (a change at Meta) make one message per recipient.
    pub group_secs: u64,
    /// Messages sent at once on this node.
    pub send_concurrency: u64,
    /// One delivery attempt may take this long.
    pub send_timeout_secs: u64,
    /// A message the server keeps answering with a temporary failure (or that cannot be
    /// delivered because the server is down) is given up after this long.
    pub give_up_after_hours: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp_host: String::new(),
            smtp_port: 0,
            smtp_security: SmtpSecurity::default(),
            smtp_username: String::new(),
            smtp_password: Secret::default(),
            from: "feedkeeper@localhost".to_owned(),
            group_secs: 60,
            send_concurrency: 4,
            send_timeout_secs: 30,
            give_up_after_hours: 72,
        }
    }
}

impl MailConfig {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        match (self.smtp_port, self.smtp_security) {
            (0, SmtpSecurity::Starttls) => 587,
            (0, SmtpSecurity::Tls) => 465,
            (0, SmtpSecurity::None) => 25,
            (port, _) => port,
        }
    }
}

/// How the connection to the SMTP server is protected (`mail.smtp_security`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or network.
    None,
}

/// How this node runs background jobs (see `jobs::runner`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// This node's name in leases, logs and the status page; empty means the host name plus a
    /// random suffix (so two processes on one host never share a name).
    pub node_name: String,
    /// A claimed job is this node's for this long, renewed while it runs; after a crash, another
    /// node takes the job over once it runs out.
    pub lease_secs: u64,
    /// On shutdown, wait this long for running jobs before handing them back.
    pub shutdown_grace_secs: u64,
    /// Lifecycle checks in flight at once on this node.
    pub lifecycle_concurrency: u64,
    /// A job that fails (not a Meta error: a crash, a database error) this many times in a row
    /// stops and waits for an operator (`feedkeeper jobs retry`).
    pub max_attempts: u64,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            node_name: String::new(),
            lease_secs: 60,
            shutdown_grace_secs: 20,
            lifecycle_concurrency: 8,
            max_attempts: 10,
        }
    }
}

/// Who may create a dashboard account.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsConfig {
    /// Anyone who reaches the server may sign up. Off by default: the first account (the
    /// operator's) can always be created, later ones only while this is on.
    pub open_signup: bool,
}

/// How the lifecycle worker keeps tokens alive and when it asks a person to act.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Refresh Instagram Login tokens this often (never before they are 24 h old).
    pub refresh_interval_hours: u64,
    /// Check every connection's token at least this often (revocations show up here).
    pub probe_interval_minutes: u64,
    /// Spread scheduled work by up to this percentage, so connections do not move in lockstep.
    pub jitter_percent: u64,
    /// Open an incident when a connection stays degraded this long.
    pub degraded_incident_after_hours: u64,
    /// Open an incident when a token is this close to expiry and refreshing keeps failing.
    pub expiry_warning_days: u64,
    /// Open an incident this long before a Facebook connection's data access runs out.
    pub data_access_warning_days: u64,
    /// Delete a deauthorized connection's data this long after Meta told us, unless reconnected.
    pub deauthorized_grace_days: u64,
    /// How often a node looks for due work.
    pub worker_poll_secs: u64,
    /// Probe connections that need a reconnect again this often: when Meta accepts the token
    /// after all (a false alarm), the connection heals by itself.
    pub reconnect_reprobe_hours: u64,
    /// "Check now" (dashboard or CLI) runs at most once per connection in this many seconds.
    pub manual_check_cooldown_secs: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            refresh_interval_hours: 72,
            probe_interval_minutes: 60,
            jitter_percent: 10,
            degraded_incident_after_hours: 24,
            expiry_warning_days: 7,
            data_access_warning_days: 14,
            deauthorized_grace_days: 30,
            worker_poll_secs: 15,
            reconnect_reprobe_hours: 12,
            manual_check_cooldown_secs: 60,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Keys that encrypt tokens at rest, `<id>:<base64 of 32 bytes>`. The first seals new
    /// values; the others only open old ones (rotation).
    #[serde(deserialize_with = "list_or_string")]
    pub token_keys: Vec<Secret>,
}

impl SecurityConfig {
    /// The parsed keys (validated at load, so this only fails on a config built by hand).
    pub fn keys(&self) -> Result<Vec<crate::crypto::NamedKey>, ConfigError> {
        self.token_keys
            .iter()
            .map(|k| {
                crate::crypto::NamedKey::parse(k.expose())
                    .map_err(|problem| invalid("security.token_keys", problem))
            })
            .collect()
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Public base URL; empty means `http://<listen>`.
    pub public_url: String,
    /// A request (headers, body and the answer) must be done within this long.
    pub request_timeout_secs: u64,
    /// A client must send a request's headers within this long (slow clients cannot hold
    /// connections open); on a kept-alive connection, counted from when the answer before
    /// was handed to the socket.
    pub header_read_timeout_secs: u64,
    /// Largest request body accepted (forms and callbacks are small).
    pub max_body_bytes: u64,
    /// Requests handled at once; more wait their turn (within the request timeout).
    pub max_concurrent_requests: u64,
    /// Threads that accept and serve connections; 0 means one per CPU core.
    pub threads: u64,
    /// Open connections a node accepts at once; more are closed as they arrive.
    pub max_connections: u64,
    /// Open connections from one client address (an IPv6 /64 counts as one) at once; the
    /// trusted proxies are exempt (they carry everyone's requests).
    pub max_connections_per_address: u64,
    /// The largest request head (request line and headers) read; a larger one gets 431.
    pub max_header_bytes: u64,
    /// A request body must keep arriving: no more than this many seconds between its bytes
    /// (and all of it within `request_timeout_secs`), or the request gets 408.
    pub body_read_timeout_secs: u64,
    /// Request bodies held by a node at once, in bytes, all requests together (each is read
    /// whole before it is handled); beyond it a request gets 503.
    pub max_buffered_body_bytes: u64,
    /// A connection with nothing to read for this long is closed (idle keep-alive, or a
    /// client gone silent).
    pub idle_timeout_secs: u64,
    /// A connection whose client reads nothing of an answer for this long is closed.
    pub write_timeout_secs: u64,
    /// The reverse proxies in front (addresses or CIDR networks): only their `Forwarded` /
    /// `X-Forwarded-For` headers are believed for the client's address.
    pub trusted_proxies: Vec<String>,
    /// The one header those proxies add the client's address to: `x-forwarded-for` or
    /// `forwarded` (the other is ignored: proxies pass it on as the client sent it).
    pub client_address_header: ForwardingHeader,
    /// On SIGTERM, keep serving this long (with `/readyz` answering 503 and every answer
    /// closing its connection) so load balancers move traffic away, then stop accepting.
    pub shutdown_drain_secs: u64,
    /// Large answers (16 KB and more, such as a widget's uncompressed document) are also
    /// written to unnamed files in `storage.data_dir` and sent from there with `sendfile`, as
    /// nginx sends files, instead of copied into each connection. Costs disk space and page
    /// cache up to what those answers hold (about `widgets.cache_bytes`, plus answers still
    /// being sent); the files vanish with their answer. Not on a filesystem kept in memory
    /// (tmpfs), nor while it has less than 1 GiB or 5 % free: there answers are copied
    /// (logged). false: always copied.
    pub send_from_files: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: String::new(),
            request_timeout_secs: 30,
            header_read_timeout_secs: 10,
            max_body_bytes: 1024 * 1024,
            max_concurrent_requests: 1024,
            threads: 0,
            max_connections: 10_000,
            max_connections_per_address: 256,
            max_header_bytes: 16 * 1024,
            body_read_timeout_secs: 10,
            max_buffered_body_bytes: 64 * 1024 * 1024,
            idle_timeout_secs: 75,
            write_timeout_secs: 30,
            trusted_proxies: Vec::new(),
            client_address_header: Default::default(),
            shutdown_drain_secs: 3,
            send_from_files: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Folder for the SQLite database and stored images.
    pub data_dir: PathBuf,
    /// Empty means SQLite in `data_dir`.
    pub database_url: String,
    /// Database connections of the background workers (and the widget change poller) on a
    /// node, opened on the main runtime.
    pub pool_size: u64,
    /// Database connections of each HTTP serving thread, opened on that thread. A node holds at
    /// most `pool_size + server.threads × http_pool_size` (PostgreSQL's default limit is 100
    /// for all nodes together).
    pub http_pool_size: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./feedkeeper-data"),
            database_url: String::new(),
            pool_size: 16,
            http_pool_size: 6,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetaConfig {
    pub instagram_oauth_url: Url,
    pub instagram_api_url: Url,
    pub instagram_graph_url: Url,
    pub facebook_www_url: Url,
    pub facebook_graph_url: Url,
    pub graph_api_version: String,
    #[serde(deserialize_with = "string_or_number")]
    pub instagram_app_id: String,
    pub instagram_app_secret: Secret,
    #[serde(deserialize_with = "string_or_number")]
    pub facebook_app_id: String,
    pub facebook_app_secret: Secret,
    pub cdn_hosts: Vec<String>,
    pub request_timeout_secs: u64,
    pub connect_timeout_secs: u64,
}

impl Default for MetaConfig {
    fn default() -> Self {
        let url = |s: &str| Url::parse(s).expect("default Meta URLs are valid");
        MetaConfig {
            instagram_oauth_url: url("https://www.instagram.com/oauth/authorize"),
            instagram_api_url: url("https://api.instagram.com"),
            instagram_graph_url: url("https://graph.instagram.com"),
            facebook_www_url: url("https://www.facebook.com"),
            facebook_graph_url: url("https://graph.facebook.com"),
            graph_api_version: "v23.0".into(),
            instagram_app_id: String::new(),
            instagram_app_secret: Secret::default(),
            facebook_app_id: String::new(),
            facebook_app_secret: Secret::default(),
            cdn_hosts: vec!["*.cdninstagram.com".into(), "*.fbcdn.net".into()],
            request_timeout_secs: 20,
            connect_timeout_secs: 5,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter directive.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Pretty,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A configuration value that must never be printed (app secrets, keys).
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(#[serde(deserialize_with = "string_or_number")] String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    /// Wipes the value from memory, so a later heap dump or swap does not hold it.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "[redacted]"
        })
    }
}

/// A configuration problem, named by its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("{0}")]
    Parse(String),
    #[error("{key}: {problem}")]
    Invalid { key: &'static str, problem: String },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl Config {
    /// Loads defaults, then `file` (if given), then the environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, Env::prefixed(ENV_PREFIX).split("__"))
    }

    /// Like [`Config::load`] with an explicit environment provider (tests pass a fake one).
    pub fn load_with_env(file: Option<&Path>, env: Env) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file(path));
        }
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Parse(describe_figment_error(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML string on top of the defaults (no environment); for tests and `print-config`.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Parse(describe_figment_error(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.server.public_url.is_empty() {
            let url = Url::parse(&self.server.public_url)
                .map_err(|e| invalid("server.public_url", format!("not a URL ({e})")))?;
            check_http_scheme("server.public_url", &url)?;
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return Err(invalid("storage.data_dir", "must not be empty"));
        }
        if !self.storage.database_url.is_empty() {
            database_kind(&self.storage.database_url)?;
        }
        let meta = &self.meta;
        for (key, url) in [
            ("meta.instagram_oauth_url", &meta.instagram_oauth_url),
            ("meta.instagram_api_url", &meta.instagram_api_url),
            ("meta.instagram_graph_url", &meta.instagram_graph_url),
            ("meta.facebook_www_url", &meta.facebook_www_url),
            ("meta.facebook_graph_url", &meta.facebook_graph_url),
        ] {
            check_http_scheme(key, url)?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(invalid(key, "must not carry a query or fragment"));
            }
        }
        if !is_graph_version(&meta.graph_api_version) {
            return Err(invalid(
                "meta.graph_api_version",
                format!(
                    "{:?} is not a Graph API version like \"v23.0\"",
                    meta.graph_api_version
                ),
            ));
        }
        for (key, id) in [
            ("meta.instagram_app_id", &meta.instagram_app_id),
            ("meta.facebook_app_id", &meta.facebook_app_id),
        ] {
            if !id.chars().all(|c| c.is_ascii_digit()) {
                return Err(invalid(key, format!("{id:?} is not a numeric app id")));
            }
        }
        if meta.cdn_hosts.is_empty() {
            return Err(invalid("meta.cdn_hosts", "must list at least one host"));
        }
        for pattern in &meta.cdn_hosts {
            if let Err(problem) = HostPattern::parse(pattern) {
                return Err(invalid("meta.cdn_hosts", problem));
            }
        }
        for (key, secs) in [
            ("meta.request_timeout_secs", meta.request_timeout_secs),
            ("meta.connect_timeout_secs", meta.connect_timeout_secs),
        ] {
            if !(1..=600).contains(&secs) {
                return Err(invalid(key, format!("{secs} is not between 1 and 600")));
            }
        }
        let l = &self.lifecycle;
        for (key, value, range) in [
            (
                "lifecycle.refresh_interval_hours",
                l.refresh_interval_hours,
                25..=24 * 50,
            ),
            (
                "lifecycle.probe_interval_minutes",
                l.probe_interval_minutes,
                5..=24 * 60,
            ),
            ("lifecycle.jitter_percent", l.jitter_percent, 0..=50),
            (
                "lifecycle.degraded_incident_after_hours",
                l.degraded_incident_after_hours,
                1..=24 * 30,
            ),
            (
                "lifecycle.expiry_warning_days",
                l.expiry_warning_days,
                1..=30,
            ),
            (
                "lifecycle.data_access_warning_days",
                l.data_access_warning_days,
                1..=60,
            ),
            (
                "lifecycle.deauthorized_grace_days",
                l.deauthorized_grace_days,
                0..=365,
            ),
            ("lifecycle.worker_poll_secs", l.worker_poll_secs, 1..=3600),
            (
                "lifecycle.reconnect_reprobe_hours",
                l.reconnect_reprobe_hours,
                1..=24 * 30,
            ),
            (
                "lifecycle.manual_check_cooldown_secs",
                l.manual_check_cooldown_secs,
                0..=3600,
            ),
            ("workers.lease_secs", self.workers.lease_secs, 1..=3600),
            (
                "server.request_timeout_secs",
                self.server.request_timeout_secs,
                1..=600,
            ),
            (
                "server.shutdown_drain_secs",
                self.server.shutdown_drain_secs,
                0..=300,
            ),
            (
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs,
                1..=300,
            ),
            (
                "server.max_body_bytes",
                self.server.max_body_bytes,
                1024..=64 * 1024 * 1024,
            ),
            (
                "server.max_concurrent_requests",
                self.server.max_concurrent_requests,
                1..=100_000,
            ),
            ("server.threads", self.server.threads, 0..=256),
            (
                "server.max_connections",
                self.server.max_connections,
                1..=1_000_000,
            ),
            (
                "server.max_connections_per_address",
                self.server.max_connections_per_address,
                1..=1_000_000,
            ),
            (
                "server.max_header_bytes",
                self.server.max_header_bytes,
                8192..=1024 * 1024,
            ),
            (
                "server.body_read_timeout_secs",
                self.server.body_read_timeout_secs,
                1..=600,
            ),
            (
                "server.idle_timeout_secs",
                self.server.idle_timeout_secs,
                1..=3600,
            ),
            (
                "server.write_timeout_secs",
                self.server.write_timeout_secs,
                1..=3600,
            ),
            (
                "workers.shutdown_grace_secs",
                self.workers.shutdown_grace_secs,
                0..=600,
            ),
            (
                "workers.lifecycle_concurrency",
                self.workers.lifecycle_concurrency,
                1..=256,
            ),
            ("workers.max_attempts", self.workers.max_attempts, 1..=1000),
            (
                "sync.widget_interval_secs",
                self.sync.widget_interval_secs,
                60..=86_400,
            ),
            (
                "sync.interval_secs",
                self.sync.interval_secs,
                60..=7 * 86_400,
            ),
            ("sync.max_posts", self.sync.max_posts, 1..=500),
            ("sync.page_size", self.sync.page_size, 1..=100),
            (
                "sync.url_renew_margin_secs",
                self.sync.url_renew_margin_secs,
                600..=2 * 86_400,
            ),
            (
                "sync.slow_down_at_percent",
                self.sync.slow_down_at_percent,
                1..=100,
            ),
            ("sync.concurrency", self.sync.concurrency, 1..=256),
            ("storage.pool_size", self.storage.pool_size, 2..=1000),
            (
                "storage.http_pool_size",
                self.storage.http_pool_size,
                1..=1000,
            ),
            (
                "widgets.cache_bytes",
                self.widgets.cache_bytes,
                1024 * 1024..=1024 * 1024 * 1024 * 1024,
            ),
            (
                "widgets.max_per_user",
                self.widgets.max_per_user,
                1..=100_000,
            ),
            (
                "widgets.max_concurrent_renderings",
                self.widgets.max_concurrent_renderings,
                1..=256,
            ),
            (
                "widgets.public_db_concurrency",
                self.widgets.public_db_concurrency,
                1..=256,
            ),
            (
                "widgets.public_db_timeout_ms",
                self.widgets.public_db_timeout_ms,
                50..=60_000,
            ),
            (
                "widgets.poll_interval_ms",
                self.widgets.poll_interval_ms,
                50..=60_000,
            ),
            (
                "widgets.poll_stale_secs",
                self.widgets.poll_stale_secs,
                1..=3600,
            ),
            (
                "images.max_bytes",
                self.images.max_bytes,
                64 * 1024..=1024 * 1024 * 1024,
            ),
            (
                "images.max_pixels",
                self.images.max_pixels,
                320 * 320..=1024 * 1024 * 1024,
            ),
            (
                "images.fetch_timeout_secs",
                self.images.fetch_timeout_secs,
                1..=600,
            ),
            (
                "images.fetch_concurrency",
                self.images.fetch_concurrency,
                1..=64,
            ),
            (
                "images.process_concurrency",
                self.images.process_concurrency,
                1..=64,
            ),
            (
                "images.cache_bytes",
                self.images.cache_bytes,
                1024 * 1024..=1024 * 1024 * 1024 * 1024,
            ),
            (
                "images.serve_concurrency",
                self.images.serve_concurrency,
                1..=1024,
            ),
            (
                "images.serve_timeout_ms",
                self.images.serve_timeout_ms,
                50..=60_000,
            ),
            ("images.jpeg_quality", self.images.jpeg_quality, 1..=100),
            ("images.webp_quality", self.images.webp_quality, 1..=100),
            ("images.avif_quality", self.images.avif_quality, 1..=100),
            // Below 4, an encode takes seconds to minutes: a restart would cut it off.
            ("images.avif_speed", self.images.avif_speed, 4..=10),
            (
                "images.unused_grace_secs",
                self.images.unused_grace_secs,
                0..=365 * 86_400,
            ),
            ("mail.group_secs", self.mail.group_secs, 0..=3600),
            ("webhooks.timeout_secs", self.webhooks.timeout_secs, 1..=60),
            ("webhooks.concurrency", self.webhooks.concurrency, 1..=64),
            ("webhooks.max_per_user", self.webhooks.max_per_user, 1..=100),
            (
                "api.requests_per_minute",
                self.api.requests_per_minute,
                1..=1_000_000,
            ),
            (
                "api.max_keys_per_user",
                self.api.max_keys_per_user,
                1..=1000,
            ),
            ("mail.send_concurrency", self.mail.send_concurrency, 1..=64),
            (
                "mail.send_timeout_secs",
                self.mail.send_timeout_secs,
                1..=600,
            ),
            (
                "mail.give_up_after_hours",
                self.mail.give_up_after_hours,
                1..=24 * 30,
            ),
        ] {
            if !range.contains(&value) {
                return Err(invalid(
                    key,
                    format!(
                        "{value} is not between {} and {}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        if self.mail.from.parse::<lettre::Address>().is_err() {
            return Err(invalid(
                "mail.from",
                format!("{:?} is not an email address", self.mail.from),
            ));
        }
        if self.mail.smtp_host.trim() != self.mail.smtp_host
            || self.mail.smtp_host.contains(['/', ' ', '@'])
        {
            return Err(invalid(
                "mail.smtp_host",
                format!("{:?} is not a host name or address", self.mail.smtp_host),
            ));
        }
        if !self.mail.smtp_host.is_empty() {
            if self.mail.from == MailConfig::default().from {
                return Err(invalid(
                    "mail.from",
                    "set the sender's address (the default, feedkeeper@localhost, is refused \
                     by most mail servers)",
                ));
            }
            let loopback = matches!(
                self.mail.smtp_host.as_str(),
                "localhost" | "127.0.0.1" | "::1"
            );
            if self.mail.smtp_security == SmtpSecurity::None
                && !self.mail.smtp_password.is_empty()
                && !loopback
            {
                return Err(invalid(
                    "mail.smtp_security",
                    "\"none\" would send mail.smtp_password unencrypted; use \"starttls\" or \"tls\"",
                ));
            }
        }
        if self.mail.smtp_username.is_empty() != self.mail.smtp_password.is_empty() {
            return Err(invalid(
                "mail.smtp_username",
                "set both mail.smtp_username and mail.smtp_password, or neither",
            ));
        }
        for entry in &self.server.trusted_proxies {
            if let Err(problem) = parse_network(entry) {
                return Err(invalid("server.trusted_proxies", problem));
            }
        }
        if self.server.max_buffered_body_bytes < self.server.max_body_bytes {
            return Err(invalid(
                "server.max_buffered_body_bytes",
                "must be at least server.max_body_bytes (one largest body must fit)",
            ));
        }
        if self.server.idle_timeout_secs <= self.server.request_timeout_secs {
            return Err(invalid(
                "server.idle_timeout_secs",
                "must be longer than server.request_timeout_secs (a request being answered \
                 reads nothing meanwhile)",
            ));
        }
        if !self.images.store.is_empty() {
            ImageStoreLocation::parse(&self.images.store)
                .map_err(|problem| invalid("images.store", problem))?;
        }
        if !self.images.s3_endpoint.is_empty() {
            let url = Url::parse(&self.images.s3_endpoint)
                .map_err(|e| invalid("images.s3_endpoint", format!("not a URL ({e})")))?;
            check_http_scheme("images.s3_endpoint", &url)?;
            if url.scheme() == "http" && !self.images.s3_allow_http {
                return Err(invalid(
                    "images.s3_endpoint",
                    "is http: set images.s3_allow_http = true to allow it",
                ));
            }
        }
        if self.widgets.poll_stale_secs * 1000 < 2 * self.widgets.poll_interval_ms {
            return Err(invalid(
                "widgets.poll_stale_secs",
                "must be at least two widgets.poll_interval_ms",
            ));
        }
        let name = &self.workers.node_name;
        if name.len() > 100 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid(
                "workers.node_name",
                "must be at most 100 characters, without spaces",
            ));
        }
        let keys = self.security.keys()?;
        let mut ids = std::collections::HashSet::new();
        for key in &keys {
            if !ids.insert(&key.id) {
                return Err(invalid(
                    "security.token_keys",
                    format!("key id {:?} appears twice", key.id),
                ));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                format!("{:?} is not a log filter like \"info\"", self.log.level),
            ));
        }
        Ok(())
    }

    /// The database URL in effect: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        if self.storage.database_url.is_empty() {
            format!(
                "sqlite://{}",
                self.storage.data_dir.join("feedkeeper.db").display()
            )
        } else {
            self.storage.database_url.clone()
        }
    }

    /// The public base URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", self.server.listen)
        } else {
            self.server.public_url.trim_end_matches('/').to_owned()
        }
    }
}

/// Which backend a database URL selects; anything else is a config error.
pub fn database_kind(url: &str) -> Result<DatabaseKind, ConfigError> {
    if url.starts_with("sqlite:") {
        Ok(DatabaseKind::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DatabaseKind::Postgres)
    } else {
        Err(invalid(
            "storage.database_url",
            "must start with sqlite: or postgres:// (or be empty for SQLite in storage.data_dir)",
        ))
    }
}

fn check_http_scheme(key: &'static str, url: &Url) -> Result<(), ConfigError> {
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(()),
        "http" | "https" => Err(invalid(key, format!("{url} has no host"))),
        other => Err(invalid(
            key,
            format!("scheme {other:?} is not http or https"),
        )),
    }
}

fn is_graph_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let mut parts = rest.splitn(2, '.');
    let major = parts.next().unwrap_or("");
    let minor = parts.next().unwrap_or("");
    !major.is_empty()
        && !minor.is_empty()
        && major.chars().all(|c| c.is_ascii_digit())
        && minor.chars().all(|c| c.is_ascii_digit())
}

/// Figment's messages name the key and where the value came from; keep them, minus its
/// "default." profile prefix, which means nothing to a user.
fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| lowercase_key(&e.to_string().replace("key \"default.", "key \"")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Environment keys arrive upper-case (`META.INSTAGRAM_APP_ID`); name them as the file does.
fn lowercase_key(message: &str) -> String {
    match message.find("key \"") {
        Some(start) => {
            let key_start = start + 5;
            let key_end = message[key_start..]
                .find('"')
                .map_or(message.len(), |i| key_start + i);
            format!(
                "{}{}{}",
                &message[..key_start],
                message[key_start..key_end].to_ascii_lowercase(),
                &message[key_end..]
            )
        }
        None => message.to_owned(),
    }
}

/// A list from the file, or one comma-separated string from the environment.
fn list_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        One(String),
    }
    let items = match Raw::deserialize(d)? {
        Raw::List(list) => list,
        Raw::One(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(Secret)
        .collect())
}

/// Ids and secrets set through the environment arrive as numbers when they are all digits.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        U(u64),
        I(i64),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::S(s) => s,
        Raw::U(n) => n.to_string(),
        Raw::I(n) => n.to_string(),
    })
}

/// A host allow-list entry: `host.example` or `*.example` (any subdomain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    AnySubdomainOf(String),
}

impl HostPattern {
    pub fn parse(pattern: &str) -> Result<HostPattern, String> {
        let lower = pattern.trim().to_ascii_lowercase();
        let (wildcard, host) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, lower.clone()),
        };
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        let is_ip = host.parse::<std::net::IpAddr>().is_ok()
            || host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
        if host.is_empty() || (!is_ip && !host.split('.').all(valid_label)) {
            return Err(format!(
                "{pattern:?} is not a host name or \"*.domain\" pattern"
            ));
        }
        if wildcard && is_ip {
            return Err(format!(
                "{pattern:?}: a wildcard cannot apply to an IP address"
            ));
        }
        Ok(if wildcard {
            HostPattern::AnySubdomainOf(host)
        } else {
            HostPattern::Exact(host)
        })
    }

    /// Whether `host` (as in a URL) is allowed by this pattern.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self {
            HostPattern::Exact(h) => host == *h,
            HostPattern::AnySubdomainOf(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_exactly_the_defaults() {
        let parsed = Config::from_toml(EXAMPLE).expect("example parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[meta]\ninstagram_app_id = \"111\"\nfacebook_app_id = \"222\"\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("FKTEST_META__INSTAGRAM_APP_ID", "333");
            jail.set_env("FKTEST_SERVER__LISTEN", "0.0.0.0:9000");
            let config =
                Config::load_with_env(Some(&file), Env::prefixed("FKTEST_").split("__")).unwrap();
            assert_eq!(config.meta.instagram_app_id, "333");
            assert_eq!(config.meta.facebook_app_id, "222");
            assert_eq!(config.server.listen.port(), 9000);
            Ok(())
        });
    }

    fn error_of(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[server]\nlisten = \"nowhere\"", "server.listen"),
            ("[server]\npublic_url = \"ftp://x\"", "server.public_url"),
            (
                "[meta]\ninstagram_graph_url = \"not a url\"",
                "meta.instagram_graph_url",
            ),
            (
                "[meta]\nfacebook_graph_url = \"file:///etc\"",
                "meta.facebook_graph_url",
            ),
            (
                "[meta]\ngraph_api_version = \"23\"",
                "meta.graph_api_version",
            ),
            (
                "[meta]\ninstagram_app_id = \"abc\"",
                "meta.instagram_app_id",
            ),
            ("[meta]\ncdn_hosts = [\"bad host!\"]", "meta.cdn_hosts"),
            ("[meta]\ncdn_hosts = []", "meta.cdn_hosts"),
            ("[images]\nstore = \"ftp://bucket\"", "images.store"),
            ("[images]\nstore = \"s3://UPPER_case\"", "images.store"),
            ("[images]\nstore = \"s3://bucket/../up\"", "images.store"),
            (
                "[images]\ns3_endpoint = \"http://minio:9000\"",
                "images.s3_endpoint",
            ),
            ("[images]\nmax_pixels = 1", "images.max_pixels"),
            ("[images]\nwebp_quality = 0", "images.webp_quality"),
            (
                "[meta]\nrequest_timeout_secs = 0",
                "meta.request_timeout_secs",
            ),
            (
                "[meta]\nrequest_timeout_secs = \"soon\"",
                "meta.request_timeout_secs",
            ),
            (
                "[storage]\ndatabase_url = \"mysql://x\"",
                "storage.database_url",
            ),
            ("[log]\nformat = \"xml\"", "log.format"),
            (
                "[security]\ntoken_keys = [\"k1:short\"]",
                "security.token_keys",
            ),
            (
                "[security]\ntoken_keys = [\"nocolon\"]",
                "security.token_keys",
            ),
            ("[meta]\nno_such_key = 1", "no_such_key"),
            (
                "[lifecycle]\nrefresh_interval_hours = 24",
                "lifecycle.refresh_interval_hours",
            ),
            (
                "[lifecycle]\njitter_percent = 90",
                "lifecycle.jitter_percent",
            ),
        ];
        for (toml, key) in cases {
            let message = error_of(toml);
            assert!(message.contains(key), "{toml:?} gave {message:?}");
        }
    }

    #[test]
    fn token_keys_come_as_a_list_or_one_env_string() {
        let a = crate::crypto::NamedKey::generate("a").to_config_string();
        let b = crate::crypto::NamedKey::generate("b").to_config_string();
        let from_file =
            Config::from_toml(&format!("[security]\ntoken_keys = [\"{a}\", \"{b}\"]")).unwrap();
        assert_eq!(from_file.security.keys().unwrap().len(), 2);
        figment::Jail::expect_with(|jail| {
            jail.set_env("FKTEST_SECURITY__TOKEN_KEYS", format!("{a},{b}"));
            let config = Config::load_with_env(None, Env::prefixed("FKTEST_").split("__")).unwrap();
            assert_eq!(config.security.keys().unwrap()[1].id, "b");
            Ok(())
        });
        let dup = Config::from_toml(&format!("[security]\ntoken_keys = [\"{a}\", \"{a}\"]"));
        assert!(dup.unwrap_err().to_string().contains("appears twice"));
    }

    #[test]
    fn a_missing_config_file_is_an_error_not_silence() {
        let err =
            Config::load_with_env(Some(Path::new("/nonexistent/fk.toml")), Env::raw()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/fk.toml"));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let mut config = Config::default();
        config.meta.instagram_app_secret = Secret::new("s3cr3t-value");
        assert!(!format!("{config:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn database_url_defaults_to_sqlite_in_the_data_dir() {
        let config = Config::default();
        assert_eq!(
            config.database_url(),
            "sqlite://./feedkeeper-data/feedkeeper.db"
        );
        assert_eq!(
            database_kind("postgres://localhost/x").unwrap(),
            DatabaseKind::Postgres
        );
    }

    #[test]
    fn host_patterns_match_subdomains_only() {
        let any = HostPattern::parse("*.cdninstagram.com").unwrap();
        assert!(any.matches("scontent-iad3-1.cdninstagram.com"));
        assert!(any.matches("SCONTENT.cdninstagram.com"));
        assert!(!any.matches("cdninstagram.com"));
        assert!(!any.matches("evilcdninstagram.com"));
        assert!(!any.matches("cdninstagram.com.evil.net"));
        let exact = HostPattern::parse("127.0.0.1").unwrap();
        assert!(exact.matches("127.0.0.1"));
        assert!(HostPattern::parse("*.127.0.0.1").is_err());
    }
}
