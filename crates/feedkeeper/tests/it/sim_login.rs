//! Logging in to the simulated Instagram and Facebook the way a person does: open the dialog,
//! fill the login form, allow (or cancel) on the consent page, and see where Meta redirects.

use feedkeeper::meta::MetaClient;
use url::Url;

use crate::browser;

/// Logs in through the page at `dialog` with the given form fields; returns the redirect.
pub async fn through_dialog(dialog: Url, credentials: &[(&str, &str)], allow: bool) -> String {
    let http = browser::client();
    let page = http
        .get(dialog.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut login = browser::only_form(&dialog, &page);
    for (name, value) in credentials {
        login.set(name, value);
    }
    let reply = login.submit(&http).await;
    let consent_url = reply.url().clone();
    let consent_page = reply.text().await.unwrap();
    let mut consent = browser::only_form(&consent_url, &consent_page);
    consent.set("action", if allow { "allow" } else { "cancel" });
    let redirect = consent.submit(&http).await;
    assert_eq!(
        redirect.status(),
        302,
        "consent did not redirect: {consent_page}"
    );
    redirect.headers()["location"].to_str().unwrap().to_owned()
}

/// Instagram Login for `username`; returns where Meta redirects.
pub async fn instagram(
    client: &MetaClient,
    redirect_uri: &str,
    state: &str,
    username: &str,
    password: &str,
    allow: bool,
) -> String {
    let dialog = client.instagram_authorize_url(redirect_uri, state, false);
    through_dialog(
        dialog,
        &[("username", username), ("password", password)],
        allow,
    )
    .await
}

/// Facebook Login for the Facebook user `fb_user`; returns where Meta redirects.
pub async fn facebook(
    client: &MetaClient,
    redirect_uri: &str,
    state: &str,
    fb_user: &str,
    password: &str,
) -> String {
    let dialog = client.facebook_dialog_url(redirect_uri, state);
    through_dialog(dialog, &[("email", fb_user), ("pass", password)], true).await
}
