//! Probe rules: timing ranges (shared with `probe_defaults`) and the three probe kinds.

use super::Issues;
use crate::config::Dur;
use crate::config::raw::{RawProbe, RawProbeDefaults};
use crate::config::spec::{ProbeKind, ProbeSpec};
use std::time::Duration;

pub(super) fn check_probe_defaults(d: &RawProbeDefaults, is: &mut Issues) {
    let fast = d.fast_interval.unwrap_or(d.interval);
    check_timing(
        "probe_defaults",
        d.interval,
        fast,
        d.timeout,
        d.rise,
        d.fall,
        is,
    );
}

const MAX_INTERVAL: Duration = Duration::from_secs(3600);

fn check_timing(
    p: &str,
    interval: Dur,
    fast: Dur,
    timeout: Dur,
    rise: u32,
    fall: u32,
    is: &mut Issues,
) {
    if interval.0 < Duration::from_millis(10) {
        is.add(format!("{p}.interval"), "must be at least 10ms");
    } else if interval.0 > MAX_INTERVAL {
        is.add(format!("{p}.interval"), "must be at most 1h");
    }
    if fast.0 < Duration::from_millis(10) {
        is.add(format!("{p}.fast_interval"), "must be at least 10ms");
    } else if fast.0 > interval.0 {
        is.add(
            format!("{p}.fast_interval"),
            "must not exceed the interval (it is the faster re-probe after a failure)",
        );
    }
    if timeout.0.is_zero() {
        is.add(format!("{p}.timeout"), "must be greater than 0");
    } else if timeout.0 > interval.0 {
        is.add(format!("{p}.timeout"), "must not exceed the interval");
    }
    if !(1..=100).contains(&rise) {
        is.add(format!("{p}.rise"), "must be between 1 and 100");
    }
    if !(1..=100).contains(&fall) {
        is.add(format!("{p}.fall"), "must be between 1 and 100");
    }
}

pub(super) fn resolve_probe(
    pr: &RawProbe,
    pp: &str,
    d: &RawProbeDefaults,
    is: &mut Issues,
) -> Option<ProbeSpec> {
    let interval = pr.interval.unwrap_or(d.interval);
    // An inherited timeout or fast interval never exceeds this probe's own interval.
    let timeout = pr.timeout.unwrap_or(d.timeout.min(interval));
    let fast = pr
        .fast_interval
        .unwrap_or(d.fast_interval.unwrap_or(interval).min(interval));
    let rise = pr.rise.unwrap_or(d.rise);
    let fall = pr.fall.unwrap_or(d.fall);
    check_timing(pp, interval, fast, timeout, rise, fall, is);
    let set = [pr.http.is_some(), pr.tcp.is_some(), pr.exec.is_some()];
    if set.iter().filter(|x| **x).count() != 1 {
        is.add(pp, "exactly one of http, tcp, exec must be set");
        return None;
    }
    let kind = if let Some(h) = &pr.http {
        match reqwest::Url::parse(&h.url) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {}
            _ => is.add(
                format!("{pp}.http.url"),
                format!("{:?} is not an http(s) URL with a host", h.url),
            ),
        }
        for (si, s) in h.expect_status.iter().enumerate() {
            if !(100..=599).contains(s) {
                is.add(
                    format!("{pp}.http.expect_status[{si}]"),
                    format!("{s} is not an HTTP status code (100-599)"),
                );
            }
        }
        ProbeKind::Http {
            url: h.url.clone(),
            expect_status: h.expect_status.clone(),
            body_contains: h.body_contains.clone(),
            insecure: h.insecure,
        }
    } else if let Some(t) = &pr.tcp {
        if let Err(why) = check_host_port(&t.address) {
            is.add(format!("{pp}.tcp.address"), why.to_string());
        }
        ProbeKind::Tcp {
            address: t.address.clone(),
        }
    } else if let Some(e) = &pr.exec {
        if e.command
            .first()
            .map(|c| c.trim().is_empty())
            .unwrap_or(true)
        {
            is.add(
                format!("{pp}.exec.command"),
                "must name a program: [\"/path/prog\", \"arg\", …]",
            );
        }
        ProbeKind::Exec {
            command: e.command.clone(),
        }
    } else {
        return None;
    };
    Some(ProbeSpec {
        kind,
        interval: interval.0,
        fast_interval: fast.0,
        timeout: timeout.0,
        rise,
        fall,
    })
}

/// Why a probe address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum AddressError {
    #[error("{0:?} is not [IPv6]:port, e.g. [2001:db8::1]:80")]
    NotBracketed(String),
    #[error("{0:?} is ambiguous: write an IPv6 address in brackets, e.g. [2001:db8::1]:80")]
    Ambiguous(String),
    #[error("{0:?} is not host:port, e.g. 10.0.0.5:443")]
    NotHostPort(String),
}

/// `host:port`, `1.2.3.4:port` or `[v6]:port`. A bare IPv6 address with a port is
/// ambiguous (`2001:db8::1:80`), so it is refused with the bracketed form to use.
pub(super) fn check_host_port(a: &str) -> Result<(), AddressError> {
    let port_ok = |p: &str| p.parse::<u16>().map(|p| p > 0).unwrap_or(false);
    if let Some(rest) = a.strip_prefix('[') {
        return match rest.split_once("]:") {
            Some((ip, port)) if ip.parse::<std::net::Ipv6Addr>().is_ok() && port_ok(port) => Ok(()),
            _ => Err(AddressError::NotBracketed(a.into())),
        };
    }
    match a.rsplit_once(':') {
        Some((h, _)) if h.contains(':') => Err(AddressError::Ambiguous(a.into())),
        Some((h, p)) if !h.trim().is_empty() && port_ok(p) => Ok(()),
        _ => Err(AddressError::NotHostPort(a.into())),
    }
}

/// A launched instance's probe (`sites[i].launch.probe`): its placeholders must be known;
/// its shape is checked with sample values filled in; the template itself is kept.
pub(super) fn resolve_template_probe(
    pr: &RawProbe,
    pp: &str,
    d: &RawProbeDefaults,
    is: &mut Issues,
) -> Option<ProbeSpec> {
    use crate::config::site::template::{PLACEHOLDERS, render, sample, unknown};
    let mut texts: Vec<(String, &str)> = Vec::new();
    if let Some(h) = &pr.http {
        texts.push((format!("{pp}.http.url"), &h.url));
    }
    if let Some(t) = &pr.tcp {
        texts.push((format!("{pp}.tcp.address"), &t.address));
    }
    if let Some(e) = &pr.exec {
        for (i, c) in e.command.iter().enumerate() {
            texts.push((format!("{pp}.exec.command[{i}]"), c));
        }
    }
    let mut bad = false;
    for (path, t) in &texts {
        let u = unknown(t);
        if !u.is_empty() {
            bad = true;
            is.add(
                path.clone(),
                format!(
                    "unknown placeholder(s) {}; use {}",
                    u.join(", "),
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                ),
            );
        }
    }
    if bad {
        return None;
    }
    let v = sample();
    let mut filled = pr.clone();
    if let Some(h) = filled.http.as_mut() {
        h.url = render(&h.url, &v).unwrap_or_default();
    }
    if let Some(t) = filled.tcp.as_mut() {
        t.address = render(&t.address, &v).unwrap_or_default();
    }
    let checked = resolve_probe(&filled, pp, d, is)?;
    // The timing is the checked one, the kind keeps the placeholders.
    let kind = match (&pr.http, &pr.tcp, &pr.exec) {
        (Some(h), _, _) => ProbeKind::Http {
            url: h.url.clone(),
            expect_status: h.expect_status.clone(),
            body_contains: h.body_contains.clone(),
            insecure: h.insecure,
        },
        (_, Some(t), _) => ProbeKind::Tcp {
            address: t.address.clone(),
        },
        (_, _, Some(e)) => ProbeKind::Exec {
            command: e.command.clone(),
        },
        _ => return None,
    };
    Some(ProbeSpec { kind, ..checked })
}

#[cfg(test)]
mod tests {
    use super::check_host_port;

    #[test]
    fn tcp_addresses() {
        for ok in [
            "10.0.0.5:80",
            "db.internal:5432",
            "[2001:db8::1]:80",
            "[::1]:9",
        ] {
            assert_eq!(check_host_port(ok), Ok(()), "{ok}");
        }
        for bad in [
            "2001:db8::1:80",
            "[2001:db8::1]",
            "[nope]:80",
            ":80",
            "host:0",
            "host",
            "host:99999",
            "",
        ] {
            assert!(check_host_port(bad).is_err(), "{bad}");
        }
        assert!(
            check_host_port("2001:db8::1:80")
                .unwrap_err()
                .to_string()
                .contains("brackets")
        );
    }
}
