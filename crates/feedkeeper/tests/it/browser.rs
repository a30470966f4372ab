//! A very small "browser" for tests: reads the forms of an HTML page and submits them, without
//! following redirects, so tests can drive the simulator's login pages (and later our own pages)
//! the way a person would, and inspect where they are sent.

use url::Url;

/// One `<form>` of a page: where it posts and the values it would send.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: Url,
    pub fields: Vec<(String, String)>,
}

impl Form {
    /// Sets (or adds) a field.
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        self.fields.retain(|(n, _)| n != name);
        self.fields.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Submits the form; the reply is returned as is (no redirect is followed).
    pub async fn submit(&self, http: &reqwest::Client) -> reqwest::Response {
        http.post(self.action.clone())
            .form(&self.fields)
            .send()
            .await
            .expect("form submission")
    }
}

/// A client that never follows redirects (tests look at `Location`).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Every form on `html`, with `page` as the base for relative actions. Text, hidden and password
/// inputs contribute their value; checkboxes only when `checked`; buttons are left out (add the
/// one you "click" with [`Form::set`]).
pub fn forms(page: &Url, html: &str) -> Vec<Form> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        let body_end = rest[start..]
            .find("</form>")
            .map_or(rest.len(), |i| start + i);
        let form_html = &rest[start..body_end];
        let tag_end = form_html.find('>').unwrap_or(form_html.len());
        let action = attr(&form_html[..tag_end], "action")
            .map(|a| page.join(&a).expect("form action is a URL"))
            .unwrap_or_else(|| page.clone());
        let mut fields = Vec::new();
        let mut inputs = form_html;
        while let Some(i) = inputs.find("<input") {
            let end = inputs[i..].find('>').map_or(inputs.len(), |e| i + e);
            let tag = &inputs[i..end];
            let kind = attr(tag, "type").unwrap_or_else(|| "text".into());
            if let Some(name) = attr(tag, "name") {
                let value = attr(tag, "value").unwrap_or_default();
                let include = match kind.as_str() {
                    "checkbox" | "radio" => tag.contains(" checked"),
                    "submit" | "button" | "image" => false,
                    _ => true,
                };
                if include {
                    fields.push((name, value));
                }
            }
            inputs = &inputs[end..];
        }
        out.push(Form { action, fields });
        rest = &rest[body_end..];
    }
    out
}

/// The only form on the page (panics with the page if there is not exactly one).
pub fn only_form(page: &Url, html: &str) -> Form {
    let mut all = forms(page, html);
    assert_eq!(all.len(), 1, "expected one form on {page}: {html}");
    all.remove(0)
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&amp;", "&")
}
