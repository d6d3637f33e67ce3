//! Fence stamps stored as EC2 tags: `floatover:stamp[:<address>]` = `<epoch>/<reason>/<target>`.
//! One tag per float; the key carries the address when one resource (an ENI, a route table)
//! can hold several floats.

use crate::model::{Epoch, MoveStamp, Reason, TargetId};

pub const PREFIX: &str = "floatover:stamp";

/// Tag key for a float on a shared resource (`None`: the resource is the float itself).
pub fn key(sub: Option<&str>) -> String {
    match sub {
        Some(s) => format!("{PREFIX}:{s}"),
        None => PREFIX.to_string(),
    }
}

pub fn encode(s: &MoveStamp) -> String {
    format!("{}/{}/{}", s.epoch.0, s.reason.as_str(), s.target.0)
}

/// Parse a tag value; anything malformed is ignored (treated as no stamp) rather than
/// trusted.
pub fn decode(v: &str) -> Option<MoveStamp> {
    let mut parts = v.splitn(3, '/');
    let epoch = parts.next()?.parse::<u64>().ok()?;
    let reason = Reason::parse(parts.next()?)?;
    let target = parts.next().filter(|t| !t.is_empty())?;
    Some(MoveStamp {
        epoch: Epoch(epoch),
        reason,
        target: TargetId(target.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let s = MoveStamp {
            epoch: Epoch(42),
            reason: Reason::Switchover,
            target: TargetId("b-1".into()),
        };
        assert_eq!(decode(&encode(&s)), Some(s));
        for bad in ["", "x/failover/a", "1/sideways/a", "1/failover/", "1"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
