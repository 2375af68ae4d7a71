//! Sizes as people write them (`10GB`, `500M`, `2GiB`, `123456`), for `local-max-size` and
//! `prune --max-size`, and as `entries` prints them.

/// The units understood: decimal (`K`, `M`, `G`, `T`, with or without `B`) and binary (`KiB`…).
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("B", 1),
    ("K", 1_000),
    ("KB", 1_000),
    ("KIB", 1 << 10),
    ("M", 1_000_000),
    ("MB", 1_000_000),
    ("MIB", 1 << 20),
    ("G", 1_000_000_000),
    ("GB", 1_000_000_000),
    ("GIB", 1 << 30),
    ("T", 1_000_000_000_000),
    ("TB", 1_000_000_000_000),
    ("TIB", 1 << 40),
];

/// What a size may look like, for error messages.
pub const FORMS: &str = "a number of bytes with an optional unit: 500MB, 10GB, 2GiB, 1.5G";

/// `text` in bytes; `None` when it is not a size.
pub fn parse(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim().to_ascii_uppercase();
    let (_, factor) = UNITS.iter().find(|(name, _)| *name == unit)?;
    if number.is_empty() || number.starts_with('.') {
        return None;
    }
    match number.split_once('.') {
        None => number.parse::<u64>().ok()?.checked_mul(*factor),
        Some((whole, fraction)) => {
            let value: f64 = format!("{whole}.{fraction}").parse().ok()?;
            let bytes = value * *factor as f64;
            (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
        }
    }
}

/// `bytes` for people: `1.2 GB`, `340 kB`, `12 B`.
pub fn format(bytes: u64) -> String {
    const STEPS: [(&str, f64); 4] = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    for (unit, size) in STEPS {
        if bytes as f64 >= size {
            return format!("{:.1} {unit}", bytes as f64 / size);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_as_written() {
        assert_eq!(parse("123"), Some(123));
        assert_eq!(parse("10GB"), Some(10_000_000_000));
        assert_eq!(parse("10 gb"), Some(10_000_000_000));
        assert_eq!(parse("2GiB"), Some(2 << 30));
        assert_eq!(parse("1.5G"), Some(1_500_000_000));
        assert_eq!(parse("500m"), Some(500_000_000));
        for bad in ["", "GB", "ten", "-1", "1.2.3G", "5 parsecs", ".5G"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(format(1_234_567_890), "1.2 GB");
        assert_eq!(format(12), "12 B");
    }
}
