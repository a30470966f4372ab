//! feedkeeper's integration tests: one binary, modules per area, shared helpers.
//!
//! Database tests run on SQLite by default and on PostgreSQL when `TEST_DATABASE_URL` names a
//! server (each test gets its own fresh database there). Meta is always the simulator, over real
//! HTTP on loopback.

mod accounts;
mod api;
mod backup;
mod browser;
mod callbacks;
mod chaos;
mod cli;
mod connect_flows;
mod dashboard;
mod edge;
mod helpers;
mod images;
mod lifecycle;
mod lock_order;
mod mail;
mod mail_run;
mod meta_client;
mod meta_client_malformed;
mod operations;
mod races;
mod restart;
mod runner;
mod sim_login;
mod smtp_sink;
mod store;
mod sync;
mod web;
mod webhooks;
mod widgets;
