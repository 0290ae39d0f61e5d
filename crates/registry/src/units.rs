//! Exact parsers for the human-written quantities in the catalog: byte sizes and durations.
//!
//! Both parsers work on decimal text with integer arithmetic, so "1.5 GiB" is exactly
//! 1 610 612 736 bytes and never goes through a float that could round it.

use std::fmt;
use std::time::Duration;

/// Why a size or a duration could not be parsed; the text is added by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// Nothing but whitespace.
    #[error("it is empty")]
    Empty,
    /// A leading minus sign: sizes and durations cannot be negative.
    #[error("it is negative")]
    Negative,
    /// The number part is missing or malformed.
    #[error("`{0}` is not a decimal number")]
    BadNumber(String),
    /// The unit is missing or not one of the known units.
    #[error("unknown unit `{unit}` (expected one of {expected})")]
    BadUnit {
        /// The unit as written.
        unit: String,
        /// The units that are accepted, for the message.
        expected: &'static str,
    },
    /// The value does not fit the target type.
    #[error("it is too large")]
    Overflow,
    /// The value is not a whole number of the smallest unit (bytes or nanoseconds).
    #[error("it is not a whole number of {0}")]
    Fractional(&'static str),
}

/// The size units the catalog accepts; both decimal (kB, MB, GB) and binary (KiB, MiB, GiB).
const SIZE_UNITS: &[(&str, u128)] = &[
    ("B", 1),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("PB", 1_000_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
];

const SIZE_UNITS_TEXT: &str = "B, kB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB";

/// The duration units the catalog accepts, in nanoseconds.
const DURATION_UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    ("d", 86_400 * 1_000_000_000),
];

const DURATION_UNITS_TEXT: &str = "ns, us, ms, s, m, h, d";

/// A number of bytes, written in the catalog as "8GB", "512MiB" or "1.5 GiB".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses "8GB", "512 MiB", "1.5GiB" or a bare byte count; units are case-insensitive.
    pub fn parse(text: &str) -> Result<Self, UnitError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(UnitError::Empty);
        }
        if text.starts_with('-') {
            return Err(UnitError::Negative);
        }
        let (number, unit) = split_number(text);
        if number.is_empty() {
            return Err(UnitError::BadNumber(text.to_owned()));
        }
        let multiplier = if unit.is_empty() {
            1
        } else {
            lookup_unit(SIZE_UNITS, unit, SIZE_UNITS_TEXT)?
        };
        let bytes = scale(number, multiplier, "bytes")?;
        u64::try_from(bytes)
            .map(ByteSize)
            .map_err(|_| UnitError::Overflow)
    }

    /// The number of bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    /// Prints the unit (binary or decimal) that divides the size with the smallest quotient,
    /// so "800MB" stays "800MB", "128MiB" stays "128MiB", and the text parses back exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = u128::from(self.0);
        let (name, unit) = SIZE_UNITS
            .iter()
            .filter(|(_, unit)| bytes == 0 && *unit == 1 || bytes >= *unit && bytes % unit == 0)
            .min_by_key(|(_, unit)| bytes / unit)
            .copied()
            .unwrap_or(("B", 1));
        write!(f, "{}{name}", bytes / unit)
    }
}

/// Parses a duration: one or more `<number><unit>` parts, as in "10m", "1h30m", "2.5s", "5ms".
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UnitError::Empty);
    }
    if text.starts_with('-') {
        return Err(UnitError::Negative);
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (number, after) = split_number(rest);
        if number.is_empty() {
            return Err(UnitError::BadNumber(rest.to_owned()));
        }
        // The unit runs until the next digit, so "1h30m" splits into "1h" and "30m".
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.trim().is_empty() {
            return Err(UnitError::BadUnit {
                unit: String::new(),
                expected: DURATION_UNITS_TEXT,
            });
        }
        let multiplier = lookup_unit(DURATION_UNITS, unit.trim(), DURATION_UNITS_TEXT)?;
        total = total
            .checked_add(scale(number, multiplier, "nanoseconds")?)
            .ok_or(UnitError::Overflow)?;
        rest = next.trim_start();
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| UnitError::Overflow)?;
    // The remainder is below 10^9, so it always fits in u32.
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| UnitError::Overflow)?;
    Ok(Duration::new(secs, nanos))
}

/// Formats a duration in the catalog's syntax, choosing the largest unit that divides it.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    for (name, unit) in DURATION_UNITS.iter().rev() {
        if nanos.is_multiple_of(*unit) {
            return format!("{}{name}", nanos / unit);
        }
    }
    format!("{nanos}ns")
}

/// Splits "1.5 GiB" into ("1.5", "GiB"); the number is digits with at most one dot.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    (number, unit.trim())
}

fn lookup_unit(
    table: &[(&str, u128)],
    unit: &str,
    expected: &'static str,
) -> Result<u128, UnitError> {
    // Units are case-insensitive: "8gb" and "8GB" mean the same (no one sizes models in bits).
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        .map(|(_, multiplier)| *multiplier)
        .ok_or_else(|| UnitError::BadUnit {
            unit: unit.to_owned(),
            expected,
        })
}

/// Computes `number * multiplier` exactly, where `number` is decimal text such as "1.5".
fn scale(number: &str, multiplier: u128, smallest: &'static str) -> Result<u128, UnitError> {
    let bad = || UnitError::BadNumber(number.to_owned());
    let digits: String = number.chars().filter(|c| *c != '_').collect();
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (digits.as_str(), ""),
    };
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(bad());
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    // Trailing zeros in the fraction change nothing; dropping them keeps 10^k small.
    let fraction = fraction.trim_end_matches('0');
    let parse = |s: &str| -> Result<u128, UnitError> {
        if s.is_empty() {
            Ok(0)
        } else {
            s.parse::<u128>().map_err(|_| UnitError::Overflow)
        }
    };
    let whole_value = parse(whole)?;
    let fraction_value = parse(fraction)?;
    let denominator = u32::try_from(fraction.len())
        .ok()
        .and_then(|k| 10u128.checked_pow(k))
        .ok_or(UnitError::Overflow)?;
    let numerator = whole_value
        .checked_mul(denominator)
        .and_then(|v| v.checked_add(fraction_value))
        .and_then(|v| v.checked_mul(multiplier))
        .ok_or(UnitError::Overflow)?;
    if numerator % denominator != 0 {
        return Err(UnitError::Fractional(smallest));
    }
    Ok(numerator / denominator)
}
