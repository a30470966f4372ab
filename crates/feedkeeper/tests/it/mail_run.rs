//! Mail over a simulated half year: 1 000 accounts of 20 owners (some with their clients'
//! addresses, some with extra recipients), revocations of every kind on most days, fifty
//! accounts breaking at once, a Meta outage, the SMTP server down for a day, reconnects
//! early and late and never. What the SMTP server received is compared with what the
//! incidents call for, computed here from the rules (first notice after the hold, reminders
//! after 1, 3 and 7 days while open, one "working again" for whoever was told): one mail line
//! per incident, recipient and step, nothing missing, nothing twice. The figures are printed
//! (docs/benchmarks.md records them). `MAIL_RUN_ACCOUNTS` sets the number of accounts.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use feedkeeper::config::SmtpSecurity;
use feedkeeper::db::connections::Connection;
use feedkeeper::db::{incidents, mail as store};
use feedkeeper::ids::UserId;
use meta_sim::{AccountEvent, Outage};

use crate::lifecycle::{DAY, World};
use crate::smtp_sink::SmtpSink;

const STEP: i64 = DAY;
const DAYS: i64 = 180;
const OWNERS: usize = 20;
const HOLD: i64 = 60;
const REMINDER_DAYS: [i64; 3] = [1, 3, 7];

/// 60 accounts by default (a minute on a laptop in a debug build); CI runs 1 000 once
/// (`MAIL_RUN_ACCOUNTS=1000` in `.ci/run`), which takes about ten minutes there.
fn accounts() -> usize {
    std::env::var("MAIL_RUN_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
        .max(OWNERS * 3)
}

/// A tiny deterministic generator, so a failure can be run again.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What one mail line says about one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Said {
    First,
    Reminder,
    Restored,
}

fn said(headline: &str) -> Option<Said> {
    match headline {
        "needs reconnecting" => Some(Said::First),
        "still needs reconnecting" => Some(Said::Reminder),
        "is working again" => Some(Said::Restored),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_over_half_a_year_of_many_accounts_is_exactly_what_the_incidents_call_for() {
    let started = Instant::now();
    let sink = SmtpSink::start().await;
    let port = sink.port;
    let w = World::with(move |c| {
        c.lifecycle.probe_interval_minutes = 24 * 60;
        c.sync.interval_secs = 7 * 86_400;
        c.mail.smtp_host = "127.0.0.1".into();
        c.mail.smtp_port = port;
        c.mail.smtp_security = SmtpSecurity::None;
        c.mail.group_secs = HOLD as u64;
        c.mail.from = "alerts@feedkeeper.test".into();
    })
    .await;
    let total = accounts();
    let mut dice = Dice(0x5eed_f00d);
    let mut owners: Vec<UserId> = Vec::new();
    for o in 0..OWNERS {
        owners.push(w.user(&format!("owner{o}@agency.test")).await);
    }
    // Accounts, their owners, and who hears about each.
    let mut conns: Vec<Connection> = Vec::new();
    let mut who: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..total {
        let o = i % OWNERS;
        let name = format!("acct_{i:04}");
        let c = w.connect_instagram(owners[o], &name).await;
        let mut told = vec![format!("owner{o}@agency.test")];
        if i % 5 == 1 {
            let client = format!("client{i}@shop.test");
            set_client_email(&w, &c, &client).await;
            told.push(client);
        }
        if i % 10 == 3 {
            store::set_connection_settings(&w.state.db, c.id, true, "colleague@agency.test")
                .await
                .unwrap();
            told.push("colleague@agency.test".into());
        }
        who.insert(name, told);
        conns.push(c);
    }
    let connected_in = started.elapsed();

    // The plan: which account breaks on which day, and when (if ever) it is reconnected.
    let kinds = [
        AccountEvent::PasswordChanged,
        AccountEvent::TwoFactorEnabled,
        AccountEvent::SuspiciousLogin,
        AccountEvent::AppRemoved,
        AccountEvent::TokenInvalidated,
        AccountEvent::PermissionRevoked {
            scope: "instagram_business_basic".into(),
        },
    ];
    // day -> accounts breaking; day -> accounts reconnecting.
    let mut breaks: BTreeMap<i64, Vec<(usize, AccountEvent)>> = BTreeMap::new();
    let mut reconnects: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    // Owner 0's fifty (or all its) accounts break together on day 10, and are all reconnected
    // on day 13.
    let owner0: Vec<usize> = (0..total).filter(|i| i % OWNERS == 0).take(50).collect();
    for &i in &owner0 {
        breaks
            .entry(10)
            .or_default()
            .push((i, AccountEvent::PasswordChanged));
        reconnects.entry(13).or_default().push(i);
    }
    // From day 20, three accounts a day break; most are reconnected 0 to 12 days later; one in
    // five never is. An account breaks at most once every 30 days.
    let mut free_from = vec![0i64; total];
    for &i in &owner0 {
        free_from[i] = 45;
    }
    for day in 20..(DAYS - 15) {
        for _ in 0..3 {
            let i = dice.below(total as u64) as usize;
            if free_from[i] > day {
                continue;
            }
            let kind = kinds[dice.below(kinds.len() as u64) as usize].clone();
            breaks.entry(day).or_default().push((i, kind));
            let never = dice.below(5) == 0;
            if never {
                free_from[i] = i64::MAX;
            } else {
                let mut back = day + dice.below(13) as i64;
                // Nobody reconnects while the mail server is down (days 100 and 101).
                if (99..=102).contains(&back) {
                    back = 103;
                }
                reconnects.entry(back).or_default().push(i);
                free_from[i] = back + 30;
            }
        }
    }

    // The run, a pass a day; what arrives is noted with the pass it arrived in.
    let mut arrived: Vec<(i64, crate::smtp_sink::Received)> = Vec::new();
    let mut passes: Vec<i64> = Vec::new();
    let steps_per_day = DAY / STEP;
    for step in 1..=(DAYS * steps_per_day) {
        w.advance(STEP);
        let day = step / steps_per_day;
        let day_start = step % steps_per_day == 0;
        if day_start {
            if let Some(list) = breaks.get(&day) {
                for (i, event) in list {
                    w.sim
                        .apply_event(&conns[*i].username, event.clone())
                        .await
                        .unwrap();
                }
            }
            if let Some(list) = reconnects.get(&day) {
                for &i in list {
                    let c = &conns[i];
                    let again = w.connect_instagram(c.owner_id, &c.username).await;
                    assert_eq!(again.id, c.id);
                }
            }
            // A Meta outage for one pass on day 60: checks fail, nothing is mailed.
            if day == 60 {
                w.sim
                    .set_outage(Outage {
                        error_rate: 1.0,
                        ..Default::default()
                    })
                    .unwrap();
            }
            if day == 100 {
                sink.stop();
            }
            if day == 102 {
                sink.restart().await;
            }
        }
        let t = Instant::now();
        let report = w.pass().await;
        if std::env::var("MAIL_RUN_PROFILE").is_ok() {
            eprintln!(
                "day {day}: {:?} lifecycle {} sync {} fetch {} compose {} send {}",
                t.elapsed(),
                report.lifecycle.finished,
                report.sync.finished,
                report.image_fetch.finished,
                report.mail_compose.finished,
                report.mail_send.finished
            );
        }
        passes.push(w.clock.now());
        if day_start && day == 60 {
            w.sim.clear_outage();
        }
        let before = arrived.len();
        for m in sink.received().into_iter().skip(before) {
            arrived.push((w.clock.now(), m));
        }
    }
    // The last "working again" mails go out.
    for _ in 0..4 {
        w.advance(STEP);
        w.pass().await;
        passes.push(w.clock.now());
        let before = arrived.len();
        for m in sink.received().into_iter().skip(before) {
            arrived.push((w.clock.now(), m));
        }
    }

    // What the incidents call for, per (recipient, account, what is said).
    let mut expected: BTreeMap<(String, String, Said), usize> = BTreeMap::new();
    let mut incident_count = 0;
    let first_pass_from = |t: i64| passes.iter().copied().find(|p| *p >= t);
    for c in &conns {
        for incident in incidents::list(&w.state.db, c.id).await.unwrap() {
            assert_eq!(incident.kind, "reconnect_needed", "{incident:?}");
            incident_count += 1;
            let open_until = |p: i64| incident.closed_at.is_none_or(|closed| closed > p);
            let Some(first) = first_pass_from(incident.opened_at + HOLD) else {
                continue;
            };
            if !open_until(first) {
                continue; // fixed before anyone was told
            }
            for recipient in &who[&c.username] {
                let key = |s| (recipient.clone(), c.username.clone(), s);
                *expected.entry(key(Said::First)).or_default() += 1;
                for day in REMINDER_DAYS {
                    let Some(p) = first_pass_from(incident.opened_at + day * DAY) else {
                        continue;
                    };
                    // Due in the same pass as the first notice: folded into it.
                    if p > first && open_until(p) {
                        *expected.entry(key(Said::Reminder)).or_default() += 1;
                    }
                }
                if incident.closed_at.is_some() {
                    *expected.entry(key(Said::Restored)).or_default() += 1;
                }
            }
        }
    }
    // What arrived, line by line.
    let mut received: BTreeMap<(String, String, Said), usize> = BTreeMap::new();
    let mut message_ids: HashMap<String, usize> = HashMap::new();
    let mut grouped_max = 0;
    for (_, m) in &arrived {
        *message_ids
            .entry(m.header("Message-ID").unwrap())
            .or_default() += 1;
        let text = m.decoded();
        let mut lines_here = 0;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix('@') else {
                continue;
            };
            let Some((name, headline)) = rest.split_once(": ") else {
                continue;
            };
            let Some(s) = said(headline.trim()) else {
                continue;
            };
            lines_here += 1;
            for to in &m.to {
                *received
                    .entry((to.clone(), name.to_owned(), s))
                    .or_default() += 1;
            }
        }
        grouped_max = grouped_max.max(lines_here);
    }
    let duplicates: usize = message_ids.values().map(|n| n - 1).sum();
    let expected_lines: usize = expected.values().sum();
    let received_lines: usize = received.values().sum();
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for (key, n) in &expected {
        let got = received.get(key).copied().unwrap_or(0);
        if got < *n {
            missing.push(format!("{key:?}: {got} of {n}"));
        }
    }
    for (key, n) in &received {
        let want = expected.get(key).copied().unwrap_or(0);
        if *n > want {
            extra.push(format!("{key:?}: {n}, expected {want}"));
        }
    }
    let counts = store::count_by_status(&w.state.db).await.unwrap();
    eprintln!(
        "mail run: {total} accounts, {OWNERS} owners, {DAYS} days in {} passes; {incident_count} \
         incidents; {expected_lines} mail lines expected, {received_lines} received, in {} \
         messages ({duplicates} duplicates, largest {grouped_max} accounts); outbox {counts:?}; \
         connecting took {:.1} s, the whole run {:.1} s",
        passes.len(),
        arrived.len(),
        connected_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing:\n{}\nextra:\n{}",
        missing.join("\n"),
        extra.join("\n")
    );
    assert_eq!(duplicates, 0);
    assert!(
        counts.iter().all(|(status, _)| status == "sent"),
        "{counts:?}"
    );
    // The fifty that broke together came as one message to their owner.
    assert!(
        grouped_max >= owner0.len(),
        "largest message: {grouped_max}"
    );
    assert!(
        incident_count >= total / 4,
        "{incident_count} incidents for {total} accounts"
    );
}

async fn set_client_email(w: &World, c: &Connection, email: &str) {
    let sql = "UPDATE connections SET client_email = $1 WHERE id = $2";
    match &w.state.db {
        feedkeeper::db::Db::Sqlite(p) => {
            sqlx::query(sql)
                .bind(email)
                .bind(c.id)
                .execute(p)
                .await
                .unwrap();
        }
        feedkeeper::db::Db::Postgres(p) => {
            sqlx::query(sql)
                .bind(email)
                .bind(c.id)
                .execute(p)
                .await
                .unwrap();
        }
    }
}
