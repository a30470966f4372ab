//! Instagram accounts (business, creator or personal), the Facebook users behind accounts that
//! have a Facebook Page, and the public views of both.

use serde::{Deserialize, Serialize};

/// Kind of Instagram account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// Business account (`account_type` `BUSINESS`).
    #[default]
    Business,
    /// Creator account (`account_type` `MEDIA_CREATOR`).
    Creator,
    /// Personal account (`account_type` `PERSONAL`): no API access to media.
    Personal,
}

impl AccountKind {
    /// The `account_type` value `/me` reports.
    pub fn account_type(self) -> &'static str {
        match self {
            AccountKind::Business => "BUSINESS",
            AccountKind::Creator => "MEDIA_CREATOR",
            AccountKind::Personal => "PERSONAL",
        }
    }
}

/// Input of `create_account` / `POST /__sim/accounts`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewAccount {
    /// Instagram username (lowercase letters, digits, `.` and `_`, at most 30).
    pub username: String,
    /// Login password; default `sim-password`.
    pub password: Option<String>,
    /// Business (default), creator or personal.
    pub kind: AccountKind,
    /// Whether the account is linked to a Facebook Page (needed for Facebook Login).
    pub facebook_page: bool,
    /// Name of the Facebook user who manages the Page (default: the Instagram username).
    /// Several accounts may share one Facebook user; its password is the first account's.
    pub facebook_user: Option<String>,
    /// Name of the Facebook Page (default: the display name).
    pub page_name: Option<String>,
    /// How many seeded posts of mixed types to create.
    pub posts: u32,
    /// Display name (`name`); absent from `/me` when unset.
    pub name: Option<String>,
    /// `biography`; absent when unset.
    pub biography: Option<String>,
    /// `website`; absent when unset.
    pub website: Option<String>,
    /// `followers_count`; default seeded.
    pub followers_count: Option<u64>,
    /// `follows_count`; default seeded.
    pub follows_count: Option<u64>,
}

/// Public view of an account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Instagram username.
    pub username: String,
    /// Login password.
    pub password: String,
    /// Kind of account.
    pub kind: AccountKind,
    /// The 17841… professional-account id (`user_id` on graph.instagram.com, `id` on graph.facebook.com).
    pub ig_user_id: String,
    /// The app-scoped id (`id` on graph.instagram.com).
    pub app_scoped_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Biography.
    pub biography: Option<String>,
    /// Website.
    pub website: Option<String>,
    /// Followers.
    pub followers_count: u64,
    /// Follows.
    pub follows_count: u64,
    /// Number of live (not deleted) media.
    pub media_count: u64,
    /// The Facebook user managing the linked Page, if any.
    pub facebook_user: Option<String>,
    /// That Facebook user's id.
    pub facebook_user_id: Option<String>,
    /// Linked Facebook Page id, if any.
    pub page_id: Option<String>,
    /// Linked Facebook Page name, if any.
    pub page_name: Option<String>,
    /// Whether a suspicious-login checkpoint is pending (cleared by logging in).
    pub checkpointed: bool,
}

/// A Facebook Page linked to an account.
#[derive(Clone, Debug)]
pub(crate) struct PageLink {
    pub(crate) id: String,
    pub(crate) name: String,
}

/// An Instagram account.
#[derive(Clone, Debug)]
pub(crate) struct Account {
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) kind: AccountKind,
    pub(crate) ig_user_id: String,
    pub(crate) app_scoped_id: String,
    pub(crate) name: Option<String>,
    pub(crate) biography: Option<String>,
    pub(crate) website: Option<String>,
    pub(crate) followers_count: u64,
    pub(crate) follows_count: u64,
    pub(crate) facebook_user: Option<String>,
    pub(crate) page: Option<PageLink>,
    pub(crate) checkpointed: bool,
}

/// A Facebook user (the person behind one or more Pages).
#[derive(Clone, Debug)]
pub(crate) struct FacebookUser {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) password: String,
    pub(crate) checkpointed: bool,
}

/// Whether `username` is a plausible Instagram username.
pub(crate) fn valid_username(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= 30
        && username
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
}
