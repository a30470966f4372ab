//! Captions are untrusted text shown on other people's websites. They are split here into plain
//! text, `#hashtags` and `@mentions`; renderers escape the text and make links only from those
//! two, to Instagram. Nothing else in a caption ever becomes markup or a link.

/// A piece of a caption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    /// The tag without its `#`.
    Hashtag(String),
    /// The username without its `@`.
    Mention(String),
}

impl Segment {
    /// Instagram's page for a hashtag or a username; `None` for text.
    pub fn link(&self) -> Option<String> {
        match self {
            Segment::Text(_) => None,
            Segment::Hashtag(tag) => Some(format!(
                "https://www.instagram.com/explore/tags/{}/",
                url::form_urlencoded::byte_serialize(tag.as_bytes()).collect::<String>()
            )),
            Segment::Mention(user) => Some(format!("https://www.instagram.com/{user}/")),
        }
    }

    /// The text as shown (`#tag`, `@user`, or the text itself).
    pub fn shown(&self) -> String {
        match self {
            Segment::Text(t) => t.clone(),
            Segment::Hashtag(tag) => format!("#{tag}"),
            Segment::Mention(user) => format!("@{user}"),
        }
    }
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Splits a caption into text, hashtags and mentions. A `#` or `@` inside a word (an email
/// address, `a#b`) stays text.
pub fn segments(caption: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut text = String::new();
    let chars: Vec<char> = caption.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_word = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if (c == '#' || c == '@') && starts_word {
            let valid = if c == '#' { is_tag_char } else { is_user_char };
            let mut j = i + 1;
            while j < chars.len() && valid(chars[j]) {
                j += 1;
            }
            let mut word: String = chars[i + 1..j].iter().collect();
            if c == '@' {
                // Usernames do not end with a dot ("Thanks @shop." ends a sentence).
                while word.ends_with('.') {
                    word.pop();
                    j -= 1;
                }
            }
            let ok = match c {
                '#' => !word.is_empty() && !word.chars().all(|ch| ch.is_ascii_digit()),
                _ => !word.is_empty() && word.len() <= 30,
            };
            if ok {
                if !text.is_empty() {
                    out.push(Segment::Text(std::mem::take(&mut text)));
                }
                out.push(if c == '#' {
                    Segment::Hashtag(word)
                } else {
                    Segment::Mention(word)
                });
                i = j;
                continue;
            }
        }
        text.push(c);
        i += 1;
    }
    if !text.is_empty() {
        out.push(Segment::Text(text));
    }
    out
}

/// The hashtags of a caption, without `#`, in order, each once.
pub fn hashtags(caption: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for s in segments(caption) {
        if let Segment::Hashtag(tag) = s
            && !tags.iter().any(|t| t.eq_ignore_ascii_case(&tag))
        {
            tags.push(tag);
        }
    }
    tags
}

/// The mentioned usernames, without `@`, in order, each once.
pub fn mentions(caption: &str) -> Vec<String> {
    let mut users: Vec<String> = Vec::new();
    for s in segments(caption) {
        if let Segment::Mention(user) = s
            && !users.contains(&user)
        {
            users.push(user);
        }
    }
    users
}

/// The caption without the block of hashtags many posts end with.
pub fn without_trailing_hashtags(caption: &str) -> String {
    let mut parts = segments(caption);
    while let Some(last) = parts.last() {
        match last {
            Segment::Hashtag(_) => {
                parts.pop();
            }
            Segment::Text(t) if t.chars().all(|c| c.is_whitespace() || c == '.' || c == '·') => {
                parts.pop();
            }
            _ => break,
        }
    }
    parts
        .iter()
        .map(Segment::shown)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// Whether a caption passes a widget's word filters (matched without case; a filter word
/// starting with `#` matches that hashtag).
pub fn passes(caption: Option<&str>, include: &[String], exclude: &[String]) -> bool {
    let lower = caption.unwrap_or_default().to_lowercase();
    let has = |word: &String| lower.contains(word.as_str());
    (include.is_empty() || include.iter().any(has)) && !exclude.iter().any(has)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_mentions_are_found_where_instagram_finds_them() {
        let caption = "Fresh bread by @the.baker. #Bakery #bread mail me@x.com a#b #123 @";
        assert_eq!(hashtags(caption), ["Bakery", "bread"]);
        assert_eq!(mentions(caption), ["the.baker"]);
        let segs = segments("hi @shop.");
        assert_eq!(
            segs,
            [
                Segment::Text("hi ".into()),
                Segment::Mention("shop".into()),
                Segment::Text(".".into())
            ]
        );
    }

    #[test]
    fn trailing_hashtags_are_stripped_and_the_rest_kept() {
        assert_eq!(
            without_trailing_hashtags("Sunday #market haul.\n\n#local #food #fresh"),
            "Sunday #market haul."
        );
        assert_eq!(without_trailing_hashtags("#only #tags"), "");
        assert_eq!(without_trailing_hashtags("no tags"), "no tags");
    }

    #[test]
    fn links_go_to_instagram_only_and_are_encoded() {
        assert_eq!(
            Segment::Hashtag("café".into()).link().unwrap(),
            "https://www.instagram.com/explore/tags/caf%C3%A9/"
        );
        assert_eq!(
            Segment::Mention("a.b".into()).link().unwrap(),
            "https://www.instagram.com/a.b/"
        );
        // Markup is text: the renderer escapes it.
        assert_eq!(
            segments("<img src=x onerror=alert(1)>"),
            [Segment::Text("<img src=x onerror=alert(1)>".into())]
        );
    }

    #[test]
    fn filters_match_words_and_hashtags() {
        let include = vec!["#sale".to_owned()];
        assert!(passes(Some("Big #SALE today"), &include, &[]));
        assert!(!passes(Some("nothing"), &include, &[]));
        assert!(!passes(Some("spam here"), &[], &["spam".to_owned()]));
        assert!(passes(None, &[], &["spam".to_owned()]));
    }
}
