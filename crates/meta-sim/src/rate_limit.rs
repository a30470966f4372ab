//! Rate limits: the per-app hourly budget (`X-App-Usage`), the per-Instagram-account 24-hour
//! BUC budget (`X-Business-Use-Case-Usage`), and forced throttles. Rejected calls still count,
//! so calling while throttled keeps the block alive.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::graph::GraphError;

/// Which throttle a forced block simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleScope {
    /// Code 4 `Application request limit reached` on every Graph call.
    App,
    /// Code 17 `User request limit reached` on calls by the account's person.
    User,
    /// Code 32 on calls with Page tokens.
    Page,
    /// Code 613 `Calls to this api have exceeded the rate limit.`
    Custom,
    /// Code 80002 (subcode 2446079) on calls about the Instagram account.
    Account,
}

impl ThrottleScope {
    /// The Graph error code this scope produces.
    pub fn code(self) -> u32 {
        match self {
            ThrottleScope::App => 4,
            ThrottleScope::User => 17,
            ThrottleScope::Page => 32,
            ThrottleScope::Custom => 613,
            ThrottleScope::Account => 80_002,
        }
    }

    fn error(self) -> GraphError {
        let e = match self {
            ThrottleScope::App => GraphError::new(4, "(#4) Application request limit reached"),
            ThrottleScope::User => GraphError::new(17, "(#17) User request limit reached"),
            ThrottleScope::Page => GraphError::new(32, "(#32) Page request limit reached"),
            ThrottleScope::Custom => GraphError::new(
                613,
                "(#613) Calls to this api have exceeded the rate limit.",
            ),
            ThrottleScope::Account => GraphError::new(
                80_002,
                "There have been too many calls to this Instagram account. Wait a bit and try again.",
            )
            .with_subcode(2_446_079),
        };
        e.transient(true)
    }
}

/// A forced block: `throttle {scope, account?, secs}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Which limit to simulate.
    pub scope: ThrottleScope,
    /// Limit the block to calls about this username (all calls when absent).
    #[serde(default)]
    pub account: Option<String>,
    /// Block length; each call made while blocked restarts it.
    pub secs: i64,
}

/// A forced block in force.
#[derive(Clone, Debug, Serialize)]
pub struct ActiveThrottle {
    /// The block.
    #[serde(flatten)]
    pub throttle: Throttle,
    /// Unix time it lifts (pushed forward by calls made while blocked).
    pub until: i64,
}

/// Which budget a call counts against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Regime {
    /// App/user tokens on graph.facebook.com.
    App,
    /// Instagram tokens and Page tokens: the account's BUC budget.
    Account { ig_user_id: String },
}

/// Who is calling, for matching forced throttles.
pub(crate) struct CallContext {
    pub(crate) regime: Regime,
    /// Usernames of the accounts the call is about / made by.
    pub(crate) accounts: Vec<String>,
    pub(crate) page_token: bool,
}

/// The verdict on one call: an error to return instead, and usage headers to attach.
pub(crate) struct RateVerdict {
    pub(crate) error: Option<GraphError>,
    pub(crate) headers: Vec<(&'static str, String)>,
}

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Call windows and forced blocks.
#[derive(Default)]
pub(crate) struct RateLimiter {
    app_calls: VecDeque<i64>,
    account_calls: HashMap<String, VecDeque<i64>>,
    pub(crate) throttles: Vec<ActiveThrottle>,
}

fn prune(calls: &mut VecDeque<i64>, now: i64, window: i64) {
    while calls.front().is_some_and(|&t| t <= now - window) {
        calls.pop_front();
    }
}

fn percent(count: usize, budget: u32) -> u64 {
    (count as u64).saturating_mul(100) / u64::from(budget.max(1))
}

/// Minutes until the window holds fewer than `budget` calls again.
fn minutes_to_regain(calls: &VecDeque<i64>, now: i64, window: i64, budget: u32) -> i64 {
    let budget = budget as usize;
    if calls.len() < budget {
        return 0;
    }
    let idx = calls.len() - budget;
    let frees_at = calls.get(idx).copied().unwrap_or(now) + window;
    ((frees_at - now).max(0) + 59) / 60
}

impl RateLimiter {
    pub(crate) fn add_throttle(&mut self, throttle: Throttle, now: i64) {
        self.throttles.retain(|t| {
            !(t.throttle.scope == throttle.scope && t.throttle.account == throttle.account)
        });
        let until = now.saturating_add(throttle.secs);
        self.throttles.push(ActiveThrottle { throttle, until });
    }

    fn forced(&mut self, ctx: &CallContext, now: i64) -> Option<(ThrottleScope, i64)> {
        self.throttles.retain(|t| t.until > now);
        let t = self.throttles.iter_mut().find(|t| {
            let who = t
                .throttle
                .account
                .as_ref()
                .is_none_or(|a| ctx.accounts.iter().any(|c| c == a));
            who && match t.throttle.scope {
                ThrottleScope::App | ThrottleScope::Custom | ThrottleScope::User => true,
                ThrottleScope::Page => ctx.page_token,
                ThrottleScope::Account => matches!(ctx.regime, Regime::Account { .. }),
            }
        })?;
        // Calling while blocked restarts the block.
        t.until = now.saturating_add(t.throttle.secs);
        Some((t.throttle.scope, t.until))
    }

    /// Counts the call and decides whether it is throttled.
    pub(crate) fn record(
        &mut self,
        ctx: &CallContext,
        now: i64,
        app_budget: u32,
        account_budget: u32,
    ) -> RateVerdict {
        let forced = self.forced(ctx, now);
        let mut headers = Vec::new();
        let mut error = forced.map(|(scope, _)| scope.error());
        match &ctx.regime {
            Regime::App => {
                prune(&mut self.app_calls, now, HOUR);
                self.app_calls.push_back(now);
                let pct = percent(self.app_calls.len(), app_budget);
                if pct >= 1 {
                    let usage =
                        json!({"call_count": pct, "total_time": pct / 2, "total_cputime": pct / 3});
                    headers.push(("x-app-usage", usage.to_string()));
                }
                if error.is_none() && self.app_calls.len() > app_budget as usize {
                    error = Some(ThrottleScope::App.error());
                }
            }
            Regime::Account { ig_user_id } => {
                let calls = self.account_calls.entry(ig_user_id.clone()).or_default();
                prune(calls, now, DAY);
                calls.push_back(now);
                let mut pct = percent(calls.len(), account_budget);
                let mut eta = if calls.len() > account_budget as usize {
                    minutes_to_regain(calls, now, DAY, account_budget)
                } else {
                    0
                };
                if let Some((ThrottleScope::Account, until)) = forced {
                    pct = pct.max(100);
                    eta = eta.max(((until - now).max(0) + 59) / 60);
                }
                if pct >= 1 {
                    let usage = json!({ ig_user_id.as_str(): [{
                        "type": "instagram",
                        "call_count": pct,
                        "total_cputime": pct / 3,
                        "total_time": pct / 2,
                        "estimated_time_to_regain_access": eta,
                    }]});
                    headers.push(("x-business-use-case-usage", usage.to_string()));
                }
                if error.is_none() && calls.len() > account_budget as usize {
                    error = Some(ThrottleScope::Account.error());
                }
            }
        }
        RateVerdict { error, headers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(accounts: &[&str]) -> CallContext {
        CallContext {
            regime: Regime::Account {
                ig_user_id: "17841".into(),
            },
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            page_token: false,
        }
    }

    #[test]
    fn budget_then_block_then_window_frees() {
        let mut r = RateLimiter::default();
        for i in 0..4 {
            let v = r.record(&ig(&["a"]), 1_000 + i, 10, 4);
            assert!(v.error.is_none(), "call {i}");
        }
        let v = r.record(&ig(&["a"]), 1_010, 10, 4);
        assert_eq!(v.error.map(|e| e.code), Some(80_002));
        // Still blocked an hour later because calls keep counting.
        assert!(r.record(&ig(&["a"]), 4_600, 10, 4).error.is_some());
        // A day after the last calls, free again.
        assert!(r.record(&ig(&["a"]), 4_600 + DAY, 10, 4).error.is_none());
    }

    #[test]
    fn forced_block_extends_while_called() {
        let mut r = RateLimiter::default();
        r.add_throttle(
            Throttle {
                scope: ThrottleScope::User,
                account: Some("a".into()),
                secs: 100,
            },
            0,
        );
        assert!(r.record(&ig(&["b"]), 50, 10, 100).error.is_none());
        assert_eq!(
            r.record(&ig(&["a"]), 90, 10, 100).error.map(|e| e.code),
            Some(17)
        );
        // The call at 90 pushed the end to 190.
        assert!(r.record(&ig(&["a"]), 150, 10, 100).error.is_some());
        assert!(r.record(&ig(&["a"]), 251, 10, 100).error.is_none());
    }
}
