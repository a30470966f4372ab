//! Cursor pagination: lists go by id, oldest first, `limit` at a time; `next_cursor` (opaque)
//! continues after the last item given, whatever was added or deleted meanwhile.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use utoipa::IntoParams;

use super::problem::ApiError;

/// Items per page unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;

/// `?limit=&cursor=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page (1–100, default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page; none for the first.
    pub cursor: Option<String>,
}

/// Where a page starts and how long it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageAt {
    /// Items with ids above this one.
    pub after: i64,
    pub limit: u32,
}

impl PageAt {
    /// Rows to ask the database for: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// Reads `limit` and `cursor` (shared by every list's query).
pub fn read(limit: Option<u32>, cursor: Option<&str>) -> Result<PageAt, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_LIMIT}."
        )));
    }
    let after = match cursor {
        None | Some("") => 0,
        Some(c) => decode(c).ok_or_else(|| {
            ApiError::BadRequest(
                "cursor is not one this API gave: pass next_cursor of the previous page as it is."
                    .to_owned(),
            )
        })?,
    };
    Ok(PageAt { after, limit })
}

impl PageParams {
    pub fn read(&self) -> Result<PageAt, ApiError> {
        read(self.limit, self.cursor.as_deref())
    }
}

fn encode(after: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("after:{after}"))
}

fn decode(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.strip_prefix("after:")?
        .parse()
        .ok()
        .filter(|id| *id >= 0)
}

/// The page out of `rows` (fetched with [`PageAt::fetch`], by id), and the cursor of the next
/// one if there is more.
pub fn finish<T>(
    mut rows: Vec<T>,
    at: &PageAt,
    id: impl Fn(&T) -> i64,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > at.limit as usize;
    rows.truncate(at.limit as usize);
    let next = if more {
        rows.last().map(|last| encode(id(last)))
    } else {
        None
    };
    (rows, next)
}

/// The page out of a whole (small, bounded) list, by id.
pub fn slice<T>(mut all: Vec<T>, at: &PageAt, id: impl Fn(&T) -> i64) -> (Vec<T>, Option<String>) {
    all.retain(|item| id(item) > at.after);
    all.sort_by_key(|item| id(item));
    all.truncate(at.fetch() as usize);
    finish(all, at, id)
}

/// A list type: one page of `$item` and the cursor of the next.
macro_rules! page_of {
    ($name:ident, $item:ty) => {
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        pub struct $name {
            pub data: Vec<$item>,
            /// Pass as `cursor` to get the next page; null on the last one.
            pub next_cursor: Option<String>,
        }

        impl $name {
            pub fn of((data, next_cursor): (Vec<$item>, Option<String>)) -> $name {
                $name { data, next_cursor }
            }
        }
    };
}
pub(crate) use page_of;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        let ids: Vec<i64> = (1..=7).collect();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let at = read(Some(3), cursor.as_deref()).unwrap();
            let (page, next) = slice(ids.clone(), &at, |i| *i);
            seen.extend(page);
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, ids);
    }

    #[test]
    fn bad_limits_and_cursors_are_refused() {
        assert!(read(Some(0), None).is_err());
        assert!(read(Some(101), None).is_err());
        assert!(read(None, Some("nonsense!")).is_err());
        assert!(read(None, Some(&URL_SAFE_NO_PAD.encode("after:-4"))).is_err());
        assert_eq!(
            read(None, None).unwrap(),
            PageAt {
                after: 0,
                limit: 50
            }
        );
    }
}
