//! Unix time as a calendar date and time in UTC (civil-from-days: no time
//! zone data needed), for the dates that logs and files show.

/// A moment in UTC, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// The year.
    pub year: i64,
    /// 1-12.
    pub month: i64,
    /// 1-31.
    pub day: i64,
    /// 0-23.
    pub hour: i64,
    /// 0-59.
    pub minute: i64,
    /// 0-59.
    pub second: i64,
    /// 0-999.
    pub millis: i64,
}

impl Civil {
    /// The UTC date and time of `ms` milliseconds after the Unix epoch.
    pub fn from_unix_ms(ms: i64) -> Civil {
        let secs = ms.div_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Civil {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            millis: ms.rem_euclid(1000),
        }
    }

    /// ISO 8601 with milliseconds: `2026-11-29T08:04:56.123Z`.
    pub fn iso8601(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Civil;

    #[test]
    fn known_moments() {
        assert_eq!(Civil::from_unix_ms(0).iso8601(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Civil::from_unix_ms(1_709_210_096_123).iso8601(),
            "2024-02-29T12:34:56.123Z"
        );
        assert_eq!(
            Civil::from_unix_ms(-1).iso8601(),
            "1969-12-31T23:59:59.999Z"
        );
    }
}
