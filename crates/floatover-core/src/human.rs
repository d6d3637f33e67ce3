//! Durations written for a person: `250ms`, `1.2s`, `5s`, `2m 5s`, `1day` (not
//! `1s 234ms 567us 8ns`, which is what a debug print of an elapsed time gives).

use std::time::Duration;

/// `d` rounded for a reader: milliseconds below a second, a tenth of a second below a
/// minute (whole seconds without the tenth), whole seconds above.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        return if ms.is_multiple_of(1_000) {
            format!("{}s", ms / 1_000)
        } else {
            format!("{:.1}s", d.as_secs_f64())
        };
    }
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "day"),
        (secs % 86_400 / 3_600, "h"),
        (secs % 3_600 / 60, "m"),
        (secs % 60, "s"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| match (*unit, *n) {
            ("day", 1) => "1day".to_string(),
            ("day", n) => format!("{n}days"),
            (u, n) => format!("{n}{u}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_person_writes_them() {
        let ms = Duration::from_millis;
        assert_eq!(duration(ms(388)), "388ms");
        assert_eq!(duration(Duration::from_nanos(388_268_917)), "388ms");
        assert_eq!(duration(ms(2_500)), "2.5s");
        assert_eq!(duration(ms(5_000)), "5s");
        assert_eq!(duration(ms(60_000)), "1m");
        assert_eq!(duration(ms(125_400)), "2m 5s");
        assert_eq!(duration(Duration::from_secs(3_600)), "1h");
        assert_eq!(duration(Duration::from_secs(86_400)), "1day");
        assert_eq!(duration(Duration::from_secs(2 * 86_400 + 60)), "2days 1m");
    }
}
