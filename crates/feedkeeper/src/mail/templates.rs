//! The mail's words: a connection alert (one or many accounts) and a plain letter (a reset, an
//! invitation, a test), each as plain text and HTML from askama templates. Every value shown
//! comes from our own rows; usernames and organisation names are escaped in the HTML like any
//! page.

use askama::Template;

use super::Body;

/// One account in an alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertItem {
    pub username: String,
    /// What is the matter, after "@name: ".
    pub headline: String,
    /// Why, and what happens meanwhile.
    pub detail: Option<String>,
    /// The button's words ("Reconnect @name").
    pub action: String,
    /// The one-click reconnect link, when there is something to do.
    pub link: Option<String>,
    pub link_expires: String,
    /// Broken now (not only about to run out, or fixed).
    pub broken: bool,
}

#[derive(Template)]
#[template(path = "mail/alerts.txt")]
struct AlertsText<'a> {
    intro: &'a str,
    items: &'a [AlertItem],
    sender: &'a str,
    recipient: &'a str,
    dashboard_url: &'a str,
    unsubscribe_url: &'a str,
}

#[derive(Template)]
#[template(path = "mail/alerts.html")]
struct AlertsHtml<'a> {
    subject: &'a str,
    intro: &'a str,
    items: &'a [AlertItem],
    sender: &'a str,
    recipient: &'a str,
    dashboard_url: &'a str,
    unsubscribe_url: &'a str,
}

/// An alert about `items`.
pub struct Alert<'a> {
    pub subject: &'a str,
    pub intro: &'a str,
    pub items: &'a [AlertItem],
    /// The organisation name (or "feedkeeper").
    pub sender: &'a str,
    pub recipient: &'a str,
    pub dashboard_url: &'a str,
    pub unsubscribe_url: &'a str,
}

pub fn alert(a: &Alert<'_>) -> Result<Body, askama::Error> {
    let text = AlertsText {
        intro: a.intro,
        items: a.items,
        sender: a.sender,
        recipient: a.recipient,
        dashboard_url: a.dashboard_url,
        unsubscribe_url: a.unsubscribe_url,
    }
    .render()?;
    let html = AlertsHtml {
        subject: a.subject,
        intro: a.intro,
        items: a.items,
        sender: a.sender,
        recipient: a.recipient,
        dashboard_url: a.dashboard_url,
        unsubscribe_url: a.unsubscribe_url,
    }
    .render()?;
    Ok(Body { text, html })
}

#[derive(Template)]
#[template(path = "mail/letter.txt")]
struct LetterText<'a> {
    paragraphs: &'a [String],
    link: Option<&'a str>,
    link_label: &'a str,
    after: &'a [String],
    sender: &'a str,
}

#[derive(Template)]
#[template(path = "mail/letter.html")]
struct LetterHtml<'a> {
    subject: &'a str,
    paragraphs: &'a [String],
    link: Option<&'a str>,
    link_label: &'a str,
    after: &'a [String],
    sender: &'a str,
}

/// A plain letter: paragraphs, an optional button, more paragraphs.
pub struct Letter<'a> {
    pub subject: &'a str,
    pub paragraphs: &'a [String],
    pub link: Option<&'a str>,
    pub link_label: &'a str,
    pub after: &'a [String],
    pub sender: &'a str,
}

pub fn letter(l: &Letter<'_>) -> Result<Body, askama::Error> {
    let text = LetterText {
        paragraphs: l.paragraphs,
        link: l.link,
        link_label: l.link_label,
        after: l.after,
        sender: l.sender,
    }
    .render()?;
    let html = LetterHtml {
        subject: l.subject,
        paragraphs: l.paragraphs,
        link: l.link,
        link_label: l.link_label,
        after: l.after,
        sender: l.sender,
    }
    .render()?;
    Ok(Body { text, html })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_in_html_and_plain_in_text() {
        let items = vec![AlertItem {
            username: "a<b>".into(),
            headline: "needs reconnecting".into(),
            detail: Some("the password was changed".into()),
            action: "Reconnect @a<b>".into(),
            link: Some("https://x.test/l/abc".into()),
            link_expires: "2026-01-01".into(),
            broken: true,
        }];
        let body = alert(&Alert {
            subject: "s",
            intro: "Hello",
            items: &items,
            sender: "Acme & Co <script>",
            recipient: "o@example.com",
            dashboard_url: "https://x.test/connections",
            unsubscribe_url: "https://x.test/mail/unsubscribe/t",
        })
        .unwrap();
        assert!(body.html.contains("@a&#60;b&#62;") || body.html.contains("@a&lt;b&gt;"));
        assert!(!body.html.contains("<script>"));
        assert!(body.text.contains("@a<b>: needs reconnecting"));
        assert!(body.text.contains("Reconnect @a<b>: https://x.test/l/abc"));
        assert!(
            body.text
                .contains("Stop these messages: https://x.test/mail/unsubscribe/t")
        );
    }
}
