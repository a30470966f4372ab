//! Time wordings Meta uses: Graph timestamps (`2019-04-05T07:56:32+0000`) and the Pacific-time
//! dates inside "Session has expired on …" errors (PDT in summer, PST in winter).

use time::{Date, Month, OffsetDateTime, Weekday};

fn datetime(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2019-04-05T07:56:32` followed by `zone`.
fn utc_with_zone(unix: i64, zone: &str) -> String {
    let dt = datetime(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// `2019-04-05T07:56:32+0000` (note `+0000`, not `Z`).
pub(crate) fn graph_timestamp(unix: i64) -> String {
    utc_with_zone(unix, "+0000")
}

/// RFC 3339 in UTC, for the control API.
pub(crate) fn iso(unix: i64) -> String {
    utc_with_zone(unix, "Z")
}

/// The unix second of 02:00 local on the `nth` Sunday of `month`, given the UTC offset in hours
/// that is in force just before the switch.
fn switch_instant(year: i32, month: Month, nth: u8, utc_offset_hours: i64) -> Option<i64> {
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
    let day = 1 + to_sunday + 7 * (nth - 1);
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let midnight_utc = date.midnight().assume_utc().unix_timestamp();
    Some(midnight_utc + 2 * 3600 - utc_offset_hours * 3600)
}

/// Whether US Pacific daylight time is in force at `unix`.
fn pacific_daylight(unix: i64) -> bool {
    let year = datetime(unix).year();
    match (
        switch_instant(year, Month::March, 2, -8),
        switch_instant(year, Month::November, 1, -7),
    ) {
        (Some(start), Some(end)) => unix >= start && unix < end,
        _ => false,
    }
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

fn month_abbrev(month: Month) -> &'static str {
    match month {
        Month::January => "Jan",
        Month::February => "Feb",
        Month::March => "Mar",
        Month::April => "Apr",
        Month::May => "May",
        Month::June => "Jun",
        Month::July => "Jul",
        Month::August => "Aug",
        Month::September => "Sep",
        Month::October => "Oct",
        Month::November => "Nov",
        Month::December => "Dec",
    }
}

/// `Monday, 24-Oct-16 21:00:00 PDT`: the wording of Meta's 190/463 messages.
pub(crate) fn pacific_wording(unix: i64) -> String {
    let daylight = pacific_daylight(unix);
    let (offset, zone) = if daylight { (-7, "PDT") } else { (-8, "PST") };
    let local = datetime(unix.saturating_add(offset * 3600));
    format!(
        "{}, {:02}-{}-{:02} {:02}:{:02}:{:02} {}",
        weekday_name(local.weekday()),
        local.day(),
        month_abbrev(local.month()),
        local.year().rem_euclid(100),
        local.hour(),
        local.minute(),
        local.second(),
        zone
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_timestamp_uses_plus_zero() {
        assert_eq!(graph_timestamp(1_554_450_992), "2019-04-05T07:56:32+0000");
    }

    #[test]
    fn pacific_wording_matches_meta_sample() {
        // Meta's own sample: "Monday, 24-Oct-16 21:00:00 PDT" is 2016-10-25T04:00:00Z.
        assert_eq!(
            pacific_wording(1_477_368_000),
            "Monday, 24-Oct-16 21:00:00 PDT"
        );
    }

    #[test]
    fn winter_is_pst() {
        // 2026-01-01T00:00:00Z is 2025-12-31 16:00 PST.
        assert_eq!(
            pacific_wording(1_767_225_600),
            "Wednesday, 31-Dec-25 16:00:00 PST"
        );
    }
}
