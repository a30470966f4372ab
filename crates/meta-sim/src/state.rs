//! Everything the simulated Meta knows, behind the simulator's one mutex: accounts, media,
//! grants, codes, tokens, logs, limits and settings, plus the synchronous operations on them.
//! Nothing here awaits; callers lock, call, and unlock.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::account::{Account, AccountInfo, FacebookUser, NewAccount, PageLink, valid_username};
use crate::app_config::AppConfig;
use crate::cdn::{self, Asset};
use crate::clock::Clock;
use crate::delivery::Delivery;
use crate::dice::Dice;
use crate::error::SimError;
use crate::event::EventRecord;
use crate::image::ImageSpec;
use crate::media::{Aspect, Child, ChildKind, Media, MediaInfo, MediaKind, NewMedia};
use crate::options::SimOptions;
use crate::outage::Outage;
use crate::rate_limit::RateLimiter;
use crate::request_log::RequestLog;
use crate::settings::Settings;
use crate::token::{AuthCode, AuthorizeRequest, Grant, LoginTicket, Platform, Token, TokenKind};

/// Default password of accounts created without one.
pub const DEFAULT_PASSWORD: &str = "sim-password";

/// Latest representable time we accept from the control API (year 9999).
pub(crate) const MAX_TIME: i64 = 253_402_300_799;

/// A post or a carousel child, found by id.
pub(crate) enum MediaRef<'a> {
    Post(&'a Media),
    Child(&'a Media, &'a Child),
}

impl MediaRef<'_> {
    pub(crate) fn parent(&self) -> &Media {
        match self {
            MediaRef::Post(m) | MediaRef::Child(m, _) => m,
        }
    }
}

pub(crate) struct State {
    pub(crate) options: SimOptions,
    pub(crate) settings: Settings,
    pub(crate) app: AppConfig,
    pub(crate) clock: Clock,
    pub(crate) dice: Dice,
    pub(crate) cdn_key: [u8; 32],
    pub(crate) accounts: BTreeMap<String, Account>,
    pub(crate) fb_users: BTreeMap<String, FacebookUser>,
    pub(crate) media: BTreeMap<String, Media>,
    child_parent: HashMap<String, String>,
    pub(crate) grants: BTreeMap<u64, Grant>,
    pub(crate) tokens: HashMap<String, Token>,
    /// (parent user token, page id) → Page token, so repeated `/me/accounts` calls agree.
    pub(crate) page_tokens: HashMap<(String, String), String>,
    pub(crate) codes: HashMap<String, AuthCode>,
    pub(crate) tickets: HashMap<String, LoginTicket>,
    used_ids: HashSet<String>,
    next_grant: u64,
    pub(crate) api_epoch: u64,
    pub(crate) limiter: RateLimiter,
    pub(crate) outage: Option<Outage>,
    pub(crate) requests: RequestLog,
    pub(crate) deliveries: Vec<Delivery>,
    pub(crate) events: Vec<EventRecord>,
    pub(crate) demo_accounts: Vec<crate::demo::DemoAccount>,
}

const CAPTIONS: [&str; 12] = [
    "Fresh out of the oven this morning 🥐",
    "Golden hour on the harbour #sunset #sea",
    "New season, new colours. Which one is your favourite?",
    "Behind the scenes of today's shoot",
    "Sunday market haul 🍅🥕 #local",
    "Trail run before the rain ⛰️",
    "We're open late this Friday — see you there!",
    "A little throwback to last summer",
    "Coffee first. Everything else later. ☕",
    "Three ways to style it →",
    "Thank you for 10k! 🎉",
    "Quiet corners of the city",
];

pub(crate) fn title_case(username: &str) -> String {
    username
        .split(['.', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl State {
    pub(crate) fn new(options: SimOptions) -> Self {
        let mut dice = Dice::new(options.seed);
        let cdn_key = dice.bytes32();
        Self {
            settings: options.settings.clone(),
            app: AppConfig::default(),
            clock: Clock::new(options.start_time, options.real_time),
            dice,
            cdn_key,
            accounts: BTreeMap::new(),
            fb_users: BTreeMap::new(),
            media: BTreeMap::new(),
            child_parent: HashMap::new(),
            grants: BTreeMap::new(),
            tokens: HashMap::new(),
            page_tokens: HashMap::new(),
            codes: HashMap::new(),
            tickets: HashMap::new(),
            used_ids: HashSet::new(),
            next_grant: 1,
            api_epoch: 0,
            limiter: RateLimiter::default(),
            outage: None,
            requests: RequestLog::default(),
            deliveries: Vec::new(),
            events: Vec::new(),
            demo_accounts: Vec::new(),
            options,
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A numeric id never handed out before.
    pub(crate) fn fresh_id(&mut self, prefix: &str, len: usize) -> String {
        loop {
            let id = self.dice.digits(prefix, len);
            if self.used_ids.insert(id.clone()) {
                return id;
            }
        }
    }

    /// A random string never handed out before.
    fn fresh_string(&mut self, prefix: &str, len: usize, urlsafe: bool) -> String {
        loop {
            let body = if urlsafe {
                self.dice.urlsafe(len)
            } else {
                self.dice.base62(len)
            };
            let s = format!("{prefix}{body}");
            if self.used_ids.insert(s.clone()) {
                return s;
            }
        }
    }

    /// An `fbtrace_id`-style value.
    pub(crate) fn trace_id(&mut self) -> String {
        self.dice.urlsafe(11)
    }

    // ----- accounts -----

    pub(crate) fn account(&self, username: &str) -> Result<&Account, SimError> {
        self.accounts
            .get(username)
            .ok_or_else(|| SimError::UnknownAccount(username.to_owned()))
    }

    pub(crate) fn media_count(&self, username: &str) -> u64 {
        self.media
            .values()
            .filter(|m| m.owner == username && !m.deleted)
            .count() as u64
    }

    pub(crate) fn account_info(&self, a: &Account) -> AccountInfo {
        AccountInfo {
            username: a.username.clone(),
            password: a.password.clone(),
            kind: a.kind,
            ig_user_id: a.ig_user_id.clone(),
            app_scoped_id: a.app_scoped_id.clone(),
            name: a.name.clone(),
            biography: a.biography.clone(),
            website: a.website.clone(),
            followers_count: a.followers_count,
            follows_count: a.follows_count,
            media_count: self.media_count(&a.username),
            facebook_user: a.facebook_user.clone(),
            facebook_user_id: a
                .facebook_user
                .as_ref()
                .and_then(|u| self.fb_users.get(u))
                .map(|u| u.id.clone()),
            page_id: a.page.as_ref().map(|p| p.id.clone()),
            page_name: a.page.as_ref().map(|p| p.name.clone()),
            checkpointed: a.checkpointed,
        }
    }

    pub(crate) fn create_account(&mut self, new: NewAccount) -> Result<AccountInfo, SimError> {
        if !valid_username(&new.username) {
            return Err(SimError::Invalid(format!(
                "username `{}` must be 1–30 lowercase letters, digits, '.' or '_'",
                new.username
            )));
        }
        if self.accounts.contains_key(&new.username) {
            return Err(SimError::AccountExists(new.username));
        }
        let password = new
            .password
            .clone()
            .unwrap_or_else(|| DEFAULT_PASSWORD.into());
        if password.is_empty() {
            return Err(SimError::Invalid("password must not be empty".into()));
        }
        if new.facebook_user.is_some() && !new.facebook_page {
            return Err(SimError::Invalid(
                "`facebook_user` needs `facebook_page: true`".into(),
            ));
        }
        if new.posts > 500 {
            return Err(SimError::Invalid("at most 500 seeded posts".into()));
        }
        let fb_name = new.facebook_page.then(|| {
            new.facebook_user
                .clone()
                .unwrap_or_else(|| new.username.clone())
        });
        if let Some(name) = &fb_name
            && (name.trim().is_empty() || name.len() > 50 || name.chars().any(char::is_control))
        {
            return Err(SimError::Invalid(
                "`facebook_user` must be 1–50 printable characters".into(),
            ));
        }
        let ig_user_id = self.fresh_id("17841", 17);
        let app_scoped_id = self.fresh_id("2", 17);
        let followers = new
            .followers_count
            .unwrap_or_else(|| self.dice.range(120, 25_000));
        let follows = new
            .follows_count
            .unwrap_or_else(|| self.dice.range(30, 900));
        let page = if new.facebook_page {
            let id = self.fresh_id("1", 15);
            let name = new
                .page_name
                .clone()
                .or_else(|| new.name.clone())
                .unwrap_or_else(|| title_case(&new.username));
            Some(PageLink { id, name })
        } else {
            None
        };
        if let Some(name) = &fb_name
            && !self.fb_users.contains_key(name)
        {
            let id = self.fresh_id("10", 17);
            self.fb_users.insert(
                name.clone(),
                FacebookUser {
                    name: name.clone(),
                    id,
                    password: password.clone(),
                    checkpointed: false,
                },
            );
        }
        let account = Account {
            username: new.username.clone(),
            password,
            kind: new.kind,
            ig_user_id,
            app_scoped_id,
            name: new.name,
            biography: new.biography,
            website: new.website,
            followers_count: followers,
            follows_count: follows,
            facebook_user: fb_name,
            page,
            checkpointed: false,
        };
        self.accounts.insert(new.username.clone(), account);
        self.seed_posts(&new.username, new.posts)?;
        let a = self.account(&new.username)?;
        Ok(self.account_info(a))
    }

    /// `n` posts of mixed types, oldest first, spread over the days before now.
    pub(crate) fn seed_posts(&mut self, username: &str, n: u32) -> Result<(), SimError> {
        let now = self.now();
        for i in 0..n {
            let age = i64::from(n - i) * 31_000 + self.dice.range(0, 9_000) as i64;
            let caption_ix = self.dice.range(0, CAPTIONS.len() as u64) as usize;
            let caption = if i % 7 == 5 {
                String::new()
            } else {
                CAPTIONS[caption_ix].to_owned()
            };
            let mut media = match i % 8 {
                0 | 4 => NewMedia::image(&caption),
                1 => NewMedia {
                    aspect: Aspect::Square,
                    ..NewMedia::image(&caption)
                },
                2 => NewMedia::carousel(&caption, 3),
                3 => NewMedia::reel(&caption),
                5 => NewMedia::video(&caption),
                6 => NewMedia {
                    children: vec![ChildKind::Image, ChildKind::Video],
                    ..NewMedia::carousel(&caption, 0)
                },
                _ => NewMedia {
                    aspect: Aspect::Portrait,
                    ..NewMedia::image(&caption)
                },
            };
            media.timestamp = Some(now - age);
            self.post_media(username, media)?;
        }
        Ok(())
    }

    // ----- media -----

    pub(crate) fn post_media(
        &mut self,
        username: &str,
        new: NewMedia,
    ) -> Result<MediaInfo, SimError> {
        self.account(username)?;
        let children = match (new.kind, new.children.len()) {
            (MediaKind::CarouselAlbum, 0) => vec![ChildKind::Image; 3],
            (MediaKind::CarouselAlbum, n) if n > 20 => {
                return Err(SimError::Invalid(
                    "a carousel has at most 20 children".into(),
                ));
            }
            (MediaKind::CarouselAlbum, _) => new.children.clone(),
            (_, 0) => Vec::new(),
            _ => {
                return Err(SimError::Invalid(
                    "only CAROUSEL_ALBUM posts have children".into(),
                ));
            }
        };
        let timestamp = new.timestamp.unwrap_or_else(|| self.now());
        if !(0..=MAX_TIME).contains(&timestamp) {
            return Err(SimError::Invalid("timestamp out of range".into()));
        }
        let id = self.fresh_id("18", 17);
        let shortcode = {
            let lead = if self.dice.unit() < 0.5 { "C" } else { "D" };
            self.fresh_string(lead, 10, true)
        };
        let portrait = match new.aspect {
            Aspect::Portrait => true,
            Aspect::Square => false,
            Aspect::Auto => self.dice.unit() < 0.6,
        };
        let like_count = new.like_count.unwrap_or_else(|| self.dice.range(3, 2_400));
        let comments_count = new
            .comments_count
            .unwrap_or_else(|| self.dice.range(0, 160));
        let children: Vec<Child> = children
            .into_iter()
            .map(|kind| Child {
                id: self.fresh_id("17", 17),
                kind,
            })
            .collect();
        for c in &children {
            self.child_parent.insert(c.id.clone(), id.clone());
        }
        let media = Media {
            id: id.clone(),
            owner: username.to_owned(),
            kind: new.kind,
            caption: new.caption,
            timestamp,
            shortcode,
            like_count,
            comments_count,
            alt_text: new.alt_text,
            copyrighted: new.copyrighted,
            portrait,
            children,
            deleted: false,
        };
        let info = media.info();
        self.media.insert(id, media);
        Ok(info)
    }

    /// A live post or child by id.
    pub(crate) fn find_media(&self, id: &str) -> Option<MediaRef<'_>> {
        if let Some(m) = self.media.get(id) {
            return (!m.deleted).then_some(MediaRef::Post(m));
        }
        let parent = self.media.get(self.child_parent.get(id)?)?;
        if parent.deleted {
            return None;
        }
        let child = parent.children.iter().find(|c| c.id == id)?;
        Some(MediaRef::Child(parent, child))
    }

    pub(crate) fn live_post(&self, id: &str) -> Result<&Media, SimError> {
        self.media
            .get(id)
            .filter(|m| !m.deleted)
            .ok_or_else(|| SimError::UnknownMedia(id.to_owned()))
    }

    pub(crate) fn delete_media(&mut self, id: &str) -> Result<(), SimError> {
        self.live_post(id)?;
        if let Some(m) = self.media.get_mut(id) {
            m.deleted = true;
        }
        Ok(())
    }

    pub(crate) fn edit_caption(
        &mut self,
        id: &str,
        caption: Option<String>,
    ) -> Result<MediaInfo, SimError> {
        self.live_post(id)?;
        let m = self
            .media
            .get_mut(id)
            .ok_or_else(|| SimError::UnknownMedia(id.to_owned()))?;
        m.caption = caption.filter(|c| !c.is_empty());
        Ok(m.info())
    }

    /// Live posts of `username`, newest first.
    pub(crate) fn posts_of(&self, username: &str) -> Vec<&Media> {
        let mut posts: Vec<&Media> = self
            .media
            .values()
            .filter(|m| m.owner == username && !m.deleted)
            .collect();
        posts.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(b.id.cmp(&a.id)));
        posts
    }

    // ----- credentials -----

    /// Records (or renews) the user's consent and returns the grant id.
    pub(crate) fn upsert_grant(
        &mut self,
        platform: Platform,
        subject: &str,
        scopes: Vec<String>,
        pages: Vec<String>,
    ) -> u64 {
        let now = self.now();
        if let Some(g) = self
            .grants
            .values_mut()
            .find(|g| g.platform == platform && g.subject == subject)
        {
            g.scopes = scopes;
            g.pages = pages;
            g.consented_at = now;
            g.removed = false;
            return g.id;
        }
        let id = self.next_grant;
        self.next_grant += 1;
        self.grants.insert(
            id,
            Grant {
                id,
                platform,
                subject: subject.to_owned(),
                scopes,
                pages,
                consented_at: now,
                removed: false,
            },
        );
        id
    }

    pub(crate) fn issue_token(
        &mut self,
        kind: TokenKind,
        grant: u64,
        account: Option<String>,
        page_id: Option<String>,
        ttl: Option<i64>,
    ) -> String {
        let now = self.now();
        let string = if kind.is_instagram() {
            self.fresh_string("IGAA", 150, false)
        } else {
            self.fresh_string("EAA", 170, false)
        };
        self.tokens.insert(
            string.clone(),
            Token {
                kind,
                grant,
                account,
                page_id,
                issued_at: now,
                refreshed_at: now,
                expires_at: ttl.map(|t| now.saturating_add(t)),
                revocation: None,
                epoch: self.api_epoch,
            },
        );
        string
    }

    pub(crate) fn issue_code(
        &mut self,
        platform: Platform,
        grant: u64,
        client_id: &str,
        redirect_uri: &str,
    ) -> String {
        let code = self.fresh_string("AQ", 126, true);
        let expires_at = self.now().saturating_add(self.settings.auth_code_ttl_secs);
        self.codes.insert(
            code.clone(),
            AuthCode {
                platform,
                grant,
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                expires_at,
                used: false,
            },
        );
        code
    }

    /// Spends a consent form's ticket: once, before it expires, on the platform that issued it.
    pub(crate) fn take_ticket(&mut self, platform: Platform, id: &str) -> Option<LoginTicket> {
        let now = self.now();
        match self.tickets.get_mut(id) {
            Some(t) if t.platform == platform && !t.used && now < t.expires_at => {
                t.used = true;
                Some(t.clone())
            }
            _ => None,
        }
    }

    pub(crate) fn issue_ticket(
        &mut self,
        platform: Platform,
        subject: &str,
        request: AuthorizeRequest,
    ) -> String {
        let ticket = self.fresh_string("", 40, false);
        let expires_at = self
            .now()
            .saturating_add(self.settings.login_ticket_ttl_secs);
        self.tickets.insert(
            ticket.clone(),
            LoginTicket {
                platform,
                subject: subject.to_owned(),
                request,
                expires_at,
                used: false,
            },
        );
        ticket
    }

    /// A long-lived Instagram token as the App Dashboard's "Generate token" button makes it.
    pub(crate) fn generate_token(&mut self, username: &str) -> Result<(String, i64), SimError> {
        self.account(username)?;
        let grant = self.upsert_grant(
            Platform::Instagram,
            username,
            vec!["instagram_business_basic".into()],
            Vec::new(),
        );
        let ttl = self.settings.ig_long_token_ttl_secs;
        let token = self.issue_token(
            TokenKind::IgLong,
            grant,
            Some(username.to_owned()),
            None,
            Some(ttl),
        );
        Ok((token, ttl))
    }

    /// Accounts with a Page managed by the Facebook user `name`.
    pub(crate) fn pages_of(&self, fb_user: &str) -> Vec<&Account> {
        self.accounts
            .values()
            .filter(|a| a.page.is_some() && a.facebook_user.as_deref() == Some(fb_user))
            .collect()
    }

    /// Renames an account everywhere it is referred to by name (its tokens, grants, posts,
    /// login tickets and throttles), as a rename on Instagram keeps everything working.
    pub(crate) fn rename_account(&mut self, old: &str, new: &str) -> Result<(), SimError> {
        if !crate::account::valid_username(new) {
            return Err(SimError::Invalid(format!(
                "username `{new}` must be 1–30 lowercase letters, digits, '.' or '_'"
            )));
        }
        if self.accounts.contains_key(new) {
            return Err(SimError::Invalid(format!("username `{new}` is taken")));
        }
        let mut account = self
            .accounts
            .remove(old)
            .ok_or_else(|| SimError::UnknownAccount(old.to_owned()))?;
        account.username = new.to_owned();
        self.accounts.insert(new.to_owned(), account);
        for g in self.grants.values_mut() {
            if g.platform == crate::token::Platform::Instagram && g.subject == old {
                g.subject = new.to_owned();
            }
        }
        for t in self.tokens.values_mut() {
            if t.account.as_deref() == Some(old) {
                t.account = Some(new.to_owned());
            }
        }
        for m in self.media.values_mut() {
            if m.owner == old {
                m.owner = new.to_owned();
            }
        }
        for t in self.tickets.values_mut() {
            if t.subject == old {
                t.subject = new.to_owned();
            }
        }
        for t in &mut self.limiter.throttles {
            if t.throttle.account.as_deref() == Some(old) {
                t.throttle.account = Some(new.to_owned());
            }
        }
        Ok(())
    }

    /// The account whose linked Page is `page_id`.
    pub(crate) fn account_by_page(&self, page_id: &str) -> Option<&Account> {
        self.accounts
            .values()
            .find(|a| a.page.as_ref().is_some_and(|p| p.id == page_id))
    }

    // ----- CDN -----

    /// A signed CDN URL for `asset`, identical for every call within one URL window.
    pub(crate) fn cdn_url(&self, base: &str, asset: &Asset) -> String {
        let window = self.settings.cdn_url_window_secs.max(1);
        let now = self.now();
        let start = now - now.rem_euclid(window);
        let path = cdn::signed_path(
            &self.cdn_key,
            asset,
            start,
            self.settings.cdn_url_lifetime_secs,
        );
        format!("{base}/{}{path}", cdn::CDN_HOST)
    }

    /// What to draw for an image asset, or `None` when its object is gone.
    pub(crate) fn image_spec(&self, asset: &Asset) -> Option<ImageSpec> {
        let seed = self.options.seed;
        let mixed = self.settings.cdn_mixed_formats;
        // Which pictures get the variety: a stable pick by the object's id.
        let pick = |id: &str, every: u64| {
            let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            mixed && h % every == 0
        };
        let spec = |key: String, width: u16, height: u16| {
            let webp = pick(&key, 3);
            ImageSpec {
                key: if webp { format!("{key}:webp") } else { key },
                width,
                height,
                seed,
                webp,
            }
        };
        match asset {
            Asset::Profile(id) => self
                .accounts
                .values()
                .find(|a| &a.ig_user_id == id)
                .map(|_| spec(format!("profile:{id}"), 320, 320)),
            Asset::Image(id) => {
                let found = self.find_media(id)?;
                let height = if found.parent().portrait {
                    1350
                } else if pick(&format!("wide:{id}"), 4) {
                    566
                } else {
                    1080
                };
                Some(spec(format!("image:{id}"), 1080, height))
            }
            Asset::Poster(id) => {
                let found = self.find_media(id)?;
                let height = match found {
                    MediaRef::Post(m) if m.kind == MediaKind::Reels => 1920,
                    _ => 1350,
                };
                Some(spec(format!("poster:{id}"), 1080, height))
            }
            Asset::Video(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(SimOptions::default())
    }

    #[test]
    fn accounts_get_distinct_ids_and_seeded_posts() {
        let mut st = state();
        let a = st
            .create_account(NewAccount {
                username: "cafe".into(),
                posts: 9,
                ..NewAccount::default()
            })
            .expect("created");
        assert!(a.ig_user_id.starts_with("17841"));
        assert_ne!(a.ig_user_id, a.app_scoped_id);
        assert_eq!(a.media_count, 9);
        let posts = st.posts_of("cafe");
        assert!(posts.windows(2).all(|w| w[0].timestamp >= w[1].timestamp));
        assert!(posts.iter().any(|m| m.kind == MediaKind::CarouselAlbum));
        assert!(posts.iter().any(|m| m.kind == MediaKind::Reels));
        assert_eq!(
            st.create_account(NewAccount {
                username: "cafe".into(),
                ..NewAccount::default()
            }),
            Err(SimError::AccountExists("cafe".into()))
        );
        assert!(matches!(
            st.create_account(NewAccount {
                username: "Bad Name".into(),
                ..NewAccount::default()
            }),
            Err(SimError::Invalid(_))
        ));
    }

    #[test]
    fn facebook_users_are_shared_between_pages() {
        let mut st = state();
        for u in ["one", "two"] {
            st.create_account(NewAccount {
                username: u.into(),
                facebook_page: true,
                facebook_user: Some("owner".into()),
                ..NewAccount::default()
            })
            .expect("created");
        }
        assert_eq!(st.fb_users.len(), 1);
        assert_eq!(st.pages_of("owner").len(), 2);
    }

    #[test]
    fn deleted_media_and_children_disappear() {
        let mut st = state();
        st.create_account(NewAccount {
            username: "cafe".into(),
            ..NewAccount::default()
        })
        .expect("created");
        let m = st
            .post_media("cafe", NewMedia::carousel("x", 2))
            .expect("posted");
        let child = m.children[0].id.clone();
        assert!(st.find_media(&child).is_some());
        st.delete_media(&m.id).expect("deleted");
        assert!(st.find_media(&m.id).is_none());
        assert!(st.find_media(&child).is_none());
        assert_eq!(st.delete_media(&m.id), Err(SimError::UnknownMedia(m.id)));
    }
}
