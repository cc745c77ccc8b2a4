//! Quiet hours: a person's nightly (or any) span, in their own time zone, during which pushes
//! are held — their due time moved to the span's end — rather than dropped. Urgent events are
//! pushed anyway. The time zone is an IANA name (`chrono-tz`, DST included).

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use parkmate_db::QuietHours;

/// The time zone of `q`, if it names one (the API checked it; a later tz database could drop one).
pub fn zone(q: &QuietHours) -> Option<Tz> {
    q.time_zone.parse().ok()
}

/// When the quiet hours covering `now` end; `None` when `now` is outside them (or the zone is
/// unknown: then nothing is held).
pub fn held_until(q: &QuietHours, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tz = zone(q)?;
    let local = now.with_timezone(&tz);
    let minute = i64::from(local.hour() * 60 + local.minute());
    let (start, end) = (q.start_minute, q.end_minute);
    let inside = if start < end {
        (start..end).contains(&minute)
    } else {
        minute >= start || minute < end
    };
    if !inside {
        return None;
    }
    // The end is today if it is still ahead, else tomorrow (a span wrapping past midnight).
    let mut day = local.date_naive();
    if minute >= end {
        day = day.succ_opt()?;
    }
    let end_time = NaiveTime::from_hms_opt(
        u32::try_from(end / 60).ok()?,
        u32::try_from(end % 60).ok()?,
        0,
    )?;
    let naive = day.and_time(end_time);
    // A local time skipped by a DST change ends the hold an hour later, never never.
    let at = tz.from_local_datetime(&naive).earliest().or_else(|| {
        tz.from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
    })?;
    Some(at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(tz: &str, start: i64, end: i64) -> QuietHours {
        QuietHours {
            time_zone: tz.into(),
            start_minute: start,
            end_minute: end,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_night_span_wraps_past_midnight_in_the_persons_zone() {
        // 22:00–07:00 in Paris (UTC+1 in January).
        let q = quiet("Europe/Paris", 22 * 60, 7 * 60);
        // 23:30 Paris: held until 07:00 Paris the next morning.
        assert_eq!(
            held_until(&q, utc("2026-01-10T22:30:00Z")),
            Some(utc("2026-01-11T06:00:00Z"))
        );
        // 05:00 Paris: held until 07:00 the same morning.
        assert_eq!(
            held_until(&q, utc("2026-01-11T04:00:00Z")),
            Some(utc("2026-01-11T06:00:00Z"))
        );
        // 12:00 Paris: not quiet.
        assert_eq!(held_until(&q, utc("2026-01-11T11:00:00Z")), None);
        // Summer time moves it by the offset (UTC+2).
        assert_eq!(
            held_until(&q, utc("2026-07-10T21:00:00Z")),
            Some(utc("2026-07-11T05:00:00Z"))
        );
    }

    #[test]
    fn a_day_span_and_an_unknown_zone() {
        let q = quiet("UTC", 9 * 60, 17 * 60);
        assert_eq!(
            held_until(&q, utc("2026-03-02T10:00:00Z")),
            Some(utc("2026-03-02T17:00:00Z"))
        );
        assert_eq!(held_until(&q, utc("2026-03-02T17:00:00Z")), None);
        assert_eq!(
            held_until(&quiet("Mars/Olympus", 0, 60), utc("2026-03-02T00:30:00Z")),
            None
        );
    }
}
