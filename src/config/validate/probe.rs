//! Probe rules: timing ranges (shared with `probe_defaults`) and the three probe kinds.

use super::Issues;
use crate::config::Dur;
use crate::config::spec::{ProbeKind, ProbeSpec, RawProbe, RawProbeDefaults};
use std::time::Duration;

pub(super) fn check_probe_defaults(d: &RawProbeDefaults, is: &mut Issues) {
    check_timing("probe_defaults", d.interval, d.timeout, d.rise, d.fall, is);
}

fn check_timing(p: &str, interval: Dur, timeout: Dur, rise: u32, fall: u32, is: &mut Issues) {
    if interval.0 < Duration::from_millis(10) {
        is.add(format!("{p}.interval"), "must be at least 10ms");
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
    // An inherited timeout never exceeds this probe's own interval.
    let timeout = pr.timeout.unwrap_or(d.timeout.min(interval));
    let rise = pr.rise.unwrap_or(d.rise);
    let fall = pr.fall.unwrap_or(d.fall);
    check_timing(pp, interval, timeout, rise, fall, is);
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
        let ok = t
            .address
            .rsplit_once(':')
            .map(|(h, port)| !h.is_empty() && port.parse::<u16>().map(|p| p > 0).unwrap_or(false))
            .unwrap_or(false);
        if !ok {
            is.add(
                format!("{pp}.tcp.address"),
                format!("{:?} is not host:port", t.address),
            );
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
        timeout: timeout.0,
        rise,
        fall,
    })
}
