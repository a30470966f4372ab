//! The demo data set: a business account with a dozen posts of every type, a creator, a
//! personal account, and a business account with a Facebook Page, with known passwords.

use serde::{Deserialize, Serialize};

use crate::account::{AccountKind, NewAccount};
use crate::error::SimError;
use crate::media::{Aspect, ChildKind, NewMedia};
use crate::state::State;

/// A demo login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoAccount {
    /// Instagram username.
    pub username: String,
    /// Password (for both Instagram and, where there is one, Facebook Login).
    pub password: String,
    /// Kind of account.
    pub kind: AccountKind,
    /// Facebook user for Facebook Login, if the account has a Page.
    pub facebook_user: Option<String>,
    /// One line for humans.
    pub description: String,
}

fn bakery_posts(now: i64) -> Vec<NewMedia> {
    let hour = 3_600;
    let posts = vec![
        NewMedia {
            aspect: Aspect::Portrait,
            alt_text: Some("A tray of golden croissants on a marble counter".into()),
            ..NewMedia::image("Fresh out of the oven this morning 🥐 #croissant #bakery")
        },
        NewMedia {
            aspect: Aspect::Square,
            ..NewMedia::image("")
        },
        NewMedia::carousel("Three ways to enjoy our seasonal plum tart →", 3),
        NewMedia::reel("How we laminate croissant dough, start to finish"),
        NewMedia::reel("Friday vibes 🎶 (with licensed music, so no media_url)").copyrighted(),
        NewMedia::video("Our morning bake in 30 seconds"),
        NewMedia {
            children: vec![ChildKind::Image, ChildKind::Video, ChildKind::Image],
            ..NewMedia::carousel("Behind the counter: a day at Sunny Bakery", 0)
        },
        NewMedia {
            aspect: Aspect::Square,
            ..NewMedia::image("Sunday special: cardamom buns 🌀")
        },
        NewMedia::image("We're hiring a morning baker! Link in bio."),
        NewMedia::carousel("Our new café corner is open 🪴", 5),
        NewMedia {
            aspect: Aspect::Portrait,
            ..NewMedia::image("Sourdough, 36 hours in the making")
        },
        NewMedia::image("Thank you for 10k followers! 🎉"),
    ];
    let count = posts.len() as i64;
    posts
        .into_iter()
        .enumerate()
        .map(|(i, m)| m.at(now - (count - i as i64) * 19 * hour))
        .collect()
}

pub(crate) fn seed(st: &mut State) -> Result<Vec<DemoAccount>, SimError> {
    let mut out = Vec::new();

    st.create_account(NewAccount {
        username: "sunny.bakery".into(),
        password: Some("bakery-demo".into()),
        kind: AccountKind::Business,
        name: Some("Sunny Bakery".into()),
        biography: Some("Sourdough, croissants and good mornings. Open daily 7–15.".into()),
        website: Some("https://sunny-bakery.example".into()),
        followers_count: Some(10_412),
        follows_count: Some(318),
        ..NewAccount::default()
    })?;
    let now = st.now();
    for m in bakery_posts(now) {
        st.post_media("sunny.bakery", m)?;
    }
    out.push(DemoAccount {
        username: "sunny.bakery".into(),
        password: "bakery-demo".into(),
        kind: AccountKind::Business,
        facebook_user: None,
        description: "business account, 12 posts of every type (carousels, reels, a copyrighted reel)".into(),
    });

    st.create_account(NewAccount {
        username: "trail.jo".into(),
        password: Some("trail-demo".into()),
        kind: AccountKind::Creator,
        name: Some("Jo on the trails".into()),
        biography: Some("Running, mountains, coffee.".into()),
        posts: 8,
        ..NewAccount::default()
    })?;
    out.push(DemoAccount {
        username: "trail.jo".into(),
        password: "trail-demo".into(),
        kind: AccountKind::Creator,
        facebook_user: None,
        description: "creator account, 8 posts".into(),
    });

    st.create_account(NewAccount {
        username: "just.me.personal".into(),
        password: Some("personal-demo".into()),
        kind: AccountKind::Personal,
        posts: 4,
        ..NewAccount::default()
    })?;
    out.push(DemoAccount {
        username: "just.me.personal".into(),
        password: "personal-demo".into(),
        kind: AccountKind::Personal,
        facebook_user: None,
        description: "personal account: logs in, but the API refuses its media".into(),
    });

    st.create_account(NewAccount {
        username: "harbor.cafe".into(),
        password: Some("harbor-demo".into()),
        kind: AccountKind::Business,
        facebook_page: true,
        facebook_user: Some("harbor.owner".into()),
        page_name: Some("Harbor Café".into()),
        name: Some("Harbor Café".into()),
        website: Some("https://harbor-cafe.example".into()),
        posts: 6,
        ..NewAccount::default()
    })?;
    out.push(DemoAccount {
        username: "harbor.cafe".into(),
        password: "harbor-demo".into(),
        kind: AccountKind::Business,
        facebook_user: Some("harbor.owner".into()),
        description: "business account with a Facebook Page (Facebook Login as harbor.owner / harbor-demo), 6 posts".into(),
    });

    st.demo_accounts = out.clone();
    Ok(out)
}
