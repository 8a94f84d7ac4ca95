//! ISO dates, MJD and the current UTC time, on the `time` crate.
//!
//! Input dates are UTC, as the JWST DATE-OBS/TIME-OBS (or DATE-END/TIME-END) keywords are, and the
//! MJD is the one astropy's `Time(..., format='isot', scale='utc').mjd` gives for ordinary times
//! (the crate's `UPSTREAM.md`, "Dates"): whole days since 1858-11-17 plus the fraction of an
//! 86400 s day. Fractions of a second are read to the nanosecond (further digits are dropped).
//!
//! Leap seconds: `23:59:60` is refused, with an error that says why. astropy accepts it on a day
//! that ends in a leap second, and then spreads that whole day over 86401 s, which moves every
//! time of the day by up to a second; to do the same, mkrefs would need a table of leap seconds
//! (the `time` crate has none). No JWST exposure needs one: the last leap second was inserted at
//! the end of 2016, five years before JWST's launch, and none has been announced since.

use time::error::{Parse, ParseFromDescription, TryFromParsed};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

/// Julian day number of MJD 0 (1858-11-17).
const JD_OF_MJD0: i32 = 2_400_001;

const DATE: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");
const TIME: &[BorrowedFormatItem<'_>] =
    format_description!("[hour]:[minute]:[second][optional [.[subsecond]]]");
const ISO_MILLIS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]");

/// An error message for `text` (a `what`, expected in `form`) that `time` could not parse.
fn explain(what: &str, text: &str, form: &str, e: Parse) -> String {
    match e {
        Parse::TryFromParsed(TryFromParsed::ComponentRange(r)) => {
            format!("{what} {text:?} is out of range: {r}")
        }
        Parse::ParseFromDescription(ParseFromDescription::InvalidComponent(c)) => {
            format!("{what} {text:?} has an invalid {c}; expected {form}")
        }
        _ => format!("{what} {text:?} is not of the form {form}"),
    }
}

fn parse_time(time: &str) -> Result<Time, String> {
    let form = "hh:mm:ss[.fff]";
    if time.get(6..8) == Some("60") {
        return Err(format!(
            "time {time:?} is a leap second, which mkrefs does not take (none has occurred \
             since JWST's launch); expected {form} with ss 00-59"
        ));
    }
    Time::parse(time, TIME).map_err(|e| explain("time", time, form, e))
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
    let day = Date::parse(d, DATE).map_err(|e| explain("date", d, "YYYY-MM-DD", e))?;
    let secs = match t {
        Some(t) => {
            let (h, m, s, ns) = parse_time(t)?.as_hms_nano();
            // Whole minutes, then the seconds with their fraction, as before the `time` crate.
            f64::from(u32::from(h) * 3600 + u32::from(m) * 60)
                + (f64::from(s) + f64::from(ns) / 1e9)
        }
        None => 0.0,
    };
    Ok(f64::from(day.to_julian_day() - JD_OF_MJD0) + secs / 86_400.0)
}

/// `YYYY-MM-DDThh:mm:ss.sss` of a count of milliseconds since MJD 0, clamped to the years
/// -9999..=9999 that `time` represents.
fn iso_from_millis_since_mjd0(ms: i64) -> String {
    let day = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let jd = (day + i64::from(JD_OF_MJD0)).clamp(
        i64::from(Date::MIN.to_julian_day()),
        i64::from(Date::MAX.to_julian_day()),
    );
    let date = Date::from_julian_day(jd as i32).expect("clamped to the representable days");
    let (h, rem) = (rem / 3_600_000, rem % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, milli) = (rem / 1000, rem % 1000);
    let time = Time::from_hms_milli(h as u8, m as u8, s as u8, milli as u16)
        .expect("a time of day from a remainder of one day");
    PrimitiveDateTime::new(date, time)
        .format(ISO_MILLIS)
        .expect("a date, a time and literals always format")
}

/// `YYYY-MM-DDThh:mm:ss.sss` (UTC) of an MJD, rounded to the nearest millisecond (a rounding that
/// reaches midnight rolls over to the next day).
pub fn mjd_to_iso(mjd: f64) -> String {
    iso_from_millis_since_mjd0((mjd * 86_400_000.0).round() as i64)
}

/// The current UTC time as `YYYY-MM-DDThh:mm:ss.sss`, from the system clock (truncated to the
/// millisecond).
pub fn now_utc_iso() -> String {
    OffsetDateTime::now_utc()
        .format(ISO_MILLIS)
        .expect("a date, a time and literals always format")
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
        assert_eq!(
            iso_to_mjd(" 2016-01-02 ", Some(" 12:00:00.123456789 ")).unwrap(),
            57389.0 + (43_200.0 + 0.123456789) / 86_400.0
        );
        assert_eq!(
            iso_to_mjd("2016-01-02T12:00:00.1234567899", None).unwrap(),
            iso_to_mjd("2016-01-02T12:00:00.123456789", None).unwrap()
        );
    }

    #[test]
    fn bad_inputs_say_what_was_expected() {
        let e = iso_to_mjd("2016/01/02", None).unwrap_err();
        assert!(e.contains("YYYY-MM-DD"), "{e}");
        let e = iso_to_mjd("2016-01-02", Some("3:04:05")).unwrap_err();
        assert!(e.contains("hh:mm:ss"), "{e}");
        assert!(iso_to_mjd("2016-01-02T03:04:05", Some("03:04:05")).is_err());
        let e = iso_to_mjd("2023-02-29", None).unwrap_err();
        assert!(e.contains("out of range") && e.contains("day"), "{e}");
        assert!(iso_to_mjd("2016-13-01", None).is_err());
        assert!(iso_to_mjd("16-01-02", None).is_err());
        assert!(iso_to_mjd("2016-01-02T24:00:00", None).is_err());
        assert!(iso_to_mjd("2016-01-02T23:60:00", None).is_err());
        assert!(iso_to_mjd("2016-01-02T23:59:5x", None).is_err());
        assert!(iso_to_mjd("2016-01-02T23:59:59.", None).is_err());
    }

    #[test]
    fn leap_seconds_are_refused_with_the_reason() {
        for s in ["2016-12-31T23:59:60", "2016-01-02T23:59:60.5"] {
            let e = iso_to_mjd(s, None).unwrap_err();
            assert!(e.contains("leap second"), "{e}");
        }
    }

    #[test]
    fn mjd_to_iso_known_values_and_rollover() {
        assert_eq!(mjd_to_iso(51544.0), "2000-01-01T00:00:00.000");
        assert_eq!(mjd_to_iso(57389.12783564815), "2016-01-02T03:04:05.000");
        assert_eq!(mjd_to_iso(0.0), "1858-11-17T00:00:00.000");
        assert_eq!(mjd_to_iso(-1.0), "1858-11-16T00:00:00.000");
        // 0.4 ms before midnight rounds up into the next day.
        assert_eq!(
            mjd_to_iso(51544.0 - 0.4e-3 / 86_400.0),
            "2000-01-01T00:00:00.000"
        );
        let s = "2024-02-29T23:59:59.999";
        assert_eq!(mjd_to_iso(iso_to_mjd(s, None).unwrap()), s);
        assert_eq!(mjd_to_iso(1.0e8), "9999-12-31T00:00:00.000");
    }

    #[test]
    fn milliseconds_are_formatted_exactly() {
        let unix0 = 40_587 * 86_400_000;
        assert_eq!(iso_from_millis_since_mjd0(unix0), "1970-01-01T00:00:00.000");
        assert_eq!(
            iso_from_millis_since_mjd0(unix0 + 951_782_400_000 + 3_723_456),
            "2000-02-29T01:02:03.456"
        );
        assert_eq!(
            iso_from_millis_since_mjd0(unix0 + 1_798_761_599_999),
            "2026-12-31T23:59:59.999"
        );
    }

    #[test]
    fn whole_days_round_trip_over_centuries() {
        for day in (-200_000..200_000).step_by(7) {
            let iso = mjd_to_iso(f64::from(day));
            assert_eq!(iso_to_mjd(&iso, None).unwrap(), f64::from(day), "{iso}");
        }
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
