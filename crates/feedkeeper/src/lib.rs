//! feedkeeper: shows a site owner's Instagram posts in an embeddable widget and keeps it alive.
//!
//! A map of the modules:
//! - [`cli`]: the `feedkeeper` command (serve, demo, migrate, print-config, simulate-meta).
//! - [`config`]: defaults -> TOML -> environment, validated once.
//! - [`state`]: what every part shares (config, db, Meta client, cipher, clock);
//!   [`app`]: the router with its edge layers, the workers, graceful shutdown;
//!   [`http`]: the routes, per audience.
//! - [`db`]: SQLite or PostgreSQL behind one set of queries; [`db::jobs`] is the lease queue
//!   every background worker claims from.
//! - [`connections`]: connecting accounts, and their lifecycle (refresh, probe, status,
//!   incidents, audit); [`jobs`]: the one job runner and the workers plugged into it.
//! - [`meta`]: the Meta client, with every failure classified into an action.
//! - [`feeds`]: what each account shows, kept by the sync worker; [`images`]: feedkeeper's own
//!   copy of every picture (fetched once, resized, served from its store); [`widgets`]: the
//!   public output; [`mail`]: who is told when a connection needs them, and the outbox;
//!   [`webhooks`]: the same news for users' own systems, signed.
//! - [`crypto`]: tokens at rest (AES-256-GCM, named keys for rotation); [`backup`]: a
//!   consistent copy of the embedded database, and putting one back.
//! - [`clock`]: the only source of "now"; [`error`]: the only place that knows HTTP statuses.

pub mod accounts;
pub mod app;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connections;
pub mod crypto;
pub mod db;
pub mod doctor;
pub mod error;
pub mod failpoint;
pub mod feeds;
pub mod http;
pub mod ids;
pub mod images;
pub mod jobs;
pub mod keys;
pub mod mail;
pub mod meta;
pub mod metrics;
pub mod outbound;
pub mod state;
pub mod telemetry;
pub mod webhooks;
pub mod widgets;
pub mod zero_copy;
