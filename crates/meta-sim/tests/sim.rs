//! Integration tests of the Meta simulator over real HTTP on 127.0.0.1 (port 0), one module
//! per area. Each test gets its own simulator; `support` holds the login-flow helpers.

mod sim {
    pub mod cdn;
    pub mod control;
    pub mod events;
    pub mod facebook;
    pub mod ig_graph;
    pub mod ig_login;
    pub mod ig_tokens;
    pub mod outages;
    pub mod rate_limits;
    pub mod request_log;
    pub mod support;
}
