//! Go `time.Duration` strings, as the gateway writes them in
//! `GATEWAY_CONNECTION_READY` (`"10s"`, `"1m0s"`, `"250ms"`, `"0s"`).
//!
//! Parsing follows Go's `time.ParseDuration` grammar: an optional sign, then
//! one or more `<decimal><unit>` terms, units `ns us µs μs ms s m h`; the bare
//! `"0"` is allowed. A negative duration is an error here, because every
//! duration on this wire is an interval.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Go duration {input:?}: {reason}")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

/// Parse a Go duration string.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError { input: input.to_owned(), reason };
    let mut s = input;
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    } else if let Some(rest) = s.strip_prefix('-') {
        if rest == "0" || rest.trim_start_matches(['0', '.']).is_empty() {
            return Ok(Duration::ZERO);
        }
        s = rest;
        if !s.is_empty() {
            return Err(err("negative durations are not intervals"));
        }
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err("empty"));
    }
    let mut total_ns: u128 = 0;
    while !s.is_empty() {
        let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int_part, rest) = s.split_at(int_end);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                r.split_at(end)
            }
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("expected a number"));
        }
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let (unit, rest) = rest.split_at(unit_end);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        let int: u128 =
            if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| err("number too large"))? };
        let mut term = int.checked_mul(unit_ns).ok_or_else(|| err("overflow"))?;
        // Fractions: Go keeps as many digits as fit; nanosecond precision is plenty.
        let mut scale = unit_ns;
        for d in frac_part.bytes().take(30) {
            scale /= 10;
            term += u128::from(d - b'0') * scale;
        }
        total_ns = total_ns.checked_add(term).ok_or_else(|| err("overflow"))?;
        s = rest;
    }
    // Go's Duration is an int64 of nanoseconds.
    if total_ns > i64::MAX as u128 {
        return Err(err("overflow"));
    }
    Ok(Duration::from_nanos(total_ns as u64))
}

/// Format like Go's `Duration.String()`: `"0s"`, `"250ms"`, `"1.5s"`, `"1m30s"`, `"1h0m0s"`.
pub fn format_go_duration(d: Duration) -> String {
    let ns = d.as_nanos().min(i64::MAX as u128) as u64;
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, div) = if ns < 1_000 {
            ("ns", 1)
        } else if ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", frac(ns, div));
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s = frac(ns % 60_000_000_000, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// `n / div` as a decimal with trailing zeros trimmed.
fn frac(n: u64, div: u64) -> String {
    let whole = n / div;
    let rem = n % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_gateway_sends() {
        let cases = [
            ("10s", Duration::from_secs(10)),
            ("30s", Duration::from_secs(30)),
            ("0s", Duration::ZERO),
            ("0", Duration::ZERO),
            ("1m0s", Duration::from_secs(60)),
            ("1.5s", Duration::from_millis(1500)),
            ("250ms", Duration::from_millis(250)),
            ("1h2m3.5s", Duration::from_millis(3_723_500)),
            ("100us", Duration::from_micros(100)),
            ("100µs", Duration::from_micros(100)),
            ("7ns", Duration::from_nanos(7)),
            (".5s", Duration::from_millis(500)),
            ("2h", Duration::from_secs(7200)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn refuses_anything_else_with_a_reason() {
        for input in ["", "10", "s", "10x", "1.s.5", "-5s", "ten seconds", "9999999999999h", "1e3s"] {
            let e = parse_go_duration(input).expect_err(input);
            assert_eq!(e.input, input);
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(3_723_500), "1h2m3.5s"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(5), "5ns"),
        ];
        for (d, want) in cases {
            assert_eq!(format_go_duration(d), want);
            assert_eq!(parse_go_duration(want), Ok(d), "round trip {want}");
        }
    }
}
