//! meta-sim: a faithful stand-in for Meta's Instagram and Facebook hosts (Instagram Login,
//! Facebook Login, both Graph hosts, the CDN, callbacks, rate limits and outages), served
//! under path prefixes on one listener and driven by a control API under `/__sim/`.
//!
//! Map: [`Simulator`] (handle, every control action) → `state` (all data, one mutex) →
//! `http` (router: control API + one module per Meta host) → `graph` (tokens, fields,
//! rendering) → `cdn`/`image` (signed URLs, JPEGs) → `event`/`delivery` (revocations, callbacks).

mod account;
mod app_config;
pub mod cdn;
mod clock;
mod delivery;
mod demo;
mod dice;
mod error;
mod event;
mod graph;
mod http;
mod image;
mod media;
mod options;
mod outage;
mod rate_limit;
mod request_log;
mod server;
pub mod settings;
pub mod signed_request;
mod simulator;
mod state;
mod timestamp;
mod token;

pub use account::{AccountInfo, AccountKind, NewAccount};
pub use app_config::{AppConfig, AppMode};
pub use delivery::{CallbackKind, Delivery};
pub use demo::DemoAccount;
pub use error::SimError;
pub use event::{AccountEvent, EventOutcome, EventRecord, GlobalEvent};
pub use image::sample_jpeg;
pub use media::{Aspect, ChildInfo, ChildKind, MediaInfo, MediaKind, NewMedia};
pub use options::{DEFAULT_START_TIME, SimOptions};
pub use outage::Outage;
pub use rate_limit::{ActiveThrottle, Throttle, ThrottleScope};
pub use request_log::RequestRecord;
pub use server::{MetaUrls, RunningSim, serve, start};
pub use settings::Settings;
pub use simulator::{GeneratedToken, Simulator};
pub use state::DEFAULT_PASSWORD;
