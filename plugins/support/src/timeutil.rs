//! ISO dates, MJD and the current UTC time, without a date crate.
//!
//! Input dates are UTC, as the JWST DATE-OBS/TIME-OBS (or DATE-END/TIME-END) keywords are, and the
//! MJD is computed the way astropy's `Time(..., format='isot', scale='utc').mjd` does for ordinary
//! times (framework.md §3.3): whole days since 1858-11-17 plus the fraction of an 86400 s day.
//! Leap seconds (`23:59:60`) are rejected rather than given astropy's stretched-day treatment.

use std::time::{SystemTime, UNIX_EPOCH};

/// MJD of 1970-01-01, the Unix epoch.
const MJD_UNIX_EPOCH: i64 = 40_587;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

fn digits(s: &str, what: &str, full: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} {s:?} in {full:?}"));
    }
    s.parse()
        .map_err(|_| format!("bad {what} {s:?} in {full:?}"))
}

fn parse_date(date: &str) -> Result<(i64, u32, u32), String> {
    let expected = || format!("date {date:?} is not of the form YYYY-MM-DD");
    let parts: Vec<&str> = date.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err(expected());
    }
    let y = i64::from(digits(parts[0], "year", date).map_err(|_| expected())?);
    let m = digits(parts[1], "month", date).map_err(|_| expected())?;
    let d = digits(parts[2], "day", date).map_err(|_| expected())?;
    if !(1..=12).contains(&m) {
        return Err(format!("month {m} out of range 1-12 in {date:?}"));
    }
    if d < 1 || d > days_in_month(y, m) {
        return Err(format!(
            "day {d} out of range for {y:04}-{m:02} in {date:?}"
        ));
    }
    Ok((y, m, d))
}

/// Seconds since midnight of `hh:mm:ss[.fff]`.
fn parse_time(time: &str) -> Result<f64, String> {
    let expected = || format!("time {time:?} is not of the form hh:mm:ss[.fff]");
    let parts: Vec<&str> = time.split(':').collect();
    if parts.len() != 3 || parts[0].len() != 2 || parts[1].len() != 2 {
        return Err(expected());
    }
    let h = digits(parts[0], "hour", time).map_err(|_| expected())?;
    let mi = digits(parts[1], "minute", time).map_err(|_| expected())?;
    let (whole, frac) = match parts[2].split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (parts[2], None),
    };
    if whole.len() != 2 {
        return Err(expected());
    }
    let s = digits(whole, "second", time).map_err(|_| expected())?;
    let mut sec = f64::from(s);
    if let Some(f) = frac {
        digits(f, "fraction of a second", time).map_err(|_| expected())?;
        let f: f64 = format!("0.{f}").parse().map_err(|_| expected())?;
        sec += f;
    }
    if h > 23 || mi > 59 || s > 59 {
        return Err(format!(
            "time {time:?} out of range (hh 00-23, mm 00-59, ss 00-59)"
        ));
    }
    Ok(f64::from(h * 3600 + mi * 60) + sec)
}

/// MJD (UTC) of `YYYY-MM-DD`, `YYYY-MM-DDThh:mm:ss[.fff]`, or a date plus a separate
/// `hh:mm:ss[.fff]` time (DATE-OBS and TIME-OBS). A date alone means midnight.
pub fn iso_to_mjd(date: &str, time: Option<&str>) -> Result<f64, String> {
    let date = date.trim();
    let (d, t) = match date.split_once('T') {
        Some((d, t)) => {
            if time.is_some() {
                return Err(format!(
                    "{date:?} already carries a time; expected YYYY-MM-DD with a separate time"
                ));
            }
            (d, Some(t))
        }
        None => (date, time.map(str::trim)),
    };
    let (y, m, dd) = parse_date(d)?;
    let secs = match t {
        Some(t) => parse_time(t)?,
        None => 0.0,
    };
    let days = days_from_civil(y, m, dd) + MJD_UNIX_EPOCH;
    Ok(days as f64 + secs / 86_400.0)
}

/// Format a count of milliseconds since MJD 0 as `YYYY-MM-DDThh:mm:ss.sss`.
fn iso_from_millis_since_mjd0(ms: i64) -> String {
    let day = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(day - MJD_UNIX_EPOCH);
    let (h, rem) = (rem / 3_600_000, rem % 3_600_000);
    let (mi, rem) = (rem / 60_000, rem % 60_000);
    let (s, milli) = (rem / 1000, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}")
}

/// `YYYY-MM-DDThh:mm:ss.sss` (UTC) of an MJD, rounded to the nearest millisecond (a rounding that
/// reaches midnight rolls over to the next day).
pub fn mjd_to_iso(mjd: f64) -> String {
    iso_from_millis_since_mjd0((mjd * 86_400_000.0).round() as i64)
}

/// The current UTC time as `YYYY-MM-DDThh:mm:ss.sss`, from the system clock.
pub fn now_utc_iso() -> String {
    let ms = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    };
    iso_from_millis_since_mjd0(ms + MJD_UNIX_EPOCH * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_mjds_from_astropy() {
        // astropy Time(s, format='isot', scale='utc').mjd
        let cases = [
            ("2000-01-01T00:00:00", 51544.0),
            ("2016-01-02T03:04:05", 57389.12783564815),
            ("1858-11-17T00:00:00", 0.0),
            ("2024-02-29T23:59:59.999", 60369.999999988424),
            ("1999-12-31T12:00:00.5", 51543.500005787035),
        ];
        for (s, want) in cases {
            let got = iso_to_mjd(s, None).unwrap();
            assert!((got - want).abs() < 1e-10, "{s}: {got} vs {want}");
        }
    }

    #[test]
    fn date_only_and_separate_time() {
        assert_eq!(iso_to_mjd("2000-01-01", None).unwrap(), 51544.0);
        let a = iso_to_mjd("2016-01-02", Some("03:04:05")).unwrap();
        assert_eq!(a, iso_to_mjd("2016-01-02T03:04:05", None).unwrap());
        assert_eq!(iso_to_mjd("1858-11-16", None).unwrap(), -1.0);
    }

    #[test]
    fn bad_inputs_say_what_was_expected() {
        let e = iso_to_mjd("2016/01/02", None).unwrap_err();
        assert!(e.contains("YYYY-MM-DD"), "{e}");
        let e = iso_to_mjd("2016-01-02", Some("3:04:05")).unwrap_err();
        assert!(e.contains("hh:mm:ss"), "{e}");
        assert!(iso_to_mjd("2016-01-02T03:04:05", Some("03:04:05")).is_err());
        assert!(
            iso_to_mjd("2023-02-29", None)
                .unwrap_err()
                .contains("out of range")
        );
        assert!(iso_to_mjd("2016-13-01", None).is_err());
        assert!(iso_to_mjd("2016-01-02T24:00:00", None).is_err());
        assert!(iso_to_mjd("2016-01-02T23:59:60", None).is_err());
        assert!(iso_to_mjd("2016-01-02T23:59:5x", None).is_err());
        assert!(iso_to_mjd("2016-01-02T23:59:59.", None).is_err());
    }

    #[test]
    fn civil_round_trip_over_four_centuries() {
        for z in -200_000..200_000i64 {
            let (y, m, d) = civil_from_days(z);
            assert!(d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn mjd_to_iso_known_values_and_rollover() {
        assert_eq!(mjd_to_iso(51544.0), "2000-01-01T00:00:00.000");
        assert_eq!(mjd_to_iso(57389.12783564815), "2016-01-02T03:04:05.000");
        assert_eq!(mjd_to_iso(0.0), "1858-11-17T00:00:00.000");
        // 0.4 ms before midnight rounds up into the next day.
        assert_eq!(
            mjd_to_iso(51544.0 - 0.4e-3 / 86_400.0),
            "2000-01-01T00:00:00.000"
        );
        let s = "2024-02-29T23:59:59.999";
        assert_eq!(mjd_to_iso(iso_to_mjd(s, None).unwrap()), s);
    }

    #[test]
    fn now_is_well_formed_and_recent() {
        let now = now_utc_iso();
        assert_eq!(now.len(), 23, "{now}");
        let mjd = iso_to_mjd(&now, None).unwrap();
        // After 2025-01-01 (MJD 60676) and before 2200.
        assert!(mjd > 60_676.0 && mjd < 124_000.0, "{now}");
    }
}
