//! The rise/fall state machine: the only place that decides when a stream of probe results
//! becomes a health change. Pure, so it is tested exhaustively.

use crate::model::Health;

/// Hysteresis over probe results: `rise` consecutive successes make a probe Up, `fall`
/// consecutive failures make it Down. A fresh probe is Unknown until either threshold is
/// crossed, so a controller that just started never acts on a single result.
#[derive(Debug, Clone)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    state: Health,
    ok_streak: u32,
    fail_streak: u32,
}

impl RiseFall {
    pub fn new(rise: u32, fall: u32) -> Self {
        RiseFall {
            rise: rise.max(1),
            fall: fall.max(1),
            state: Health::Unknown,
            ok_streak: 0,
            fail_streak: 0,
        }
    }

    pub fn state(&self) -> Health {
        self.state
    }

    /// The last result points away from the current state but has not crossed the
    /// threshold yet (or nothing is decided yet).
    pub fn transitional(&self) -> bool {
        match self.state {
            Health::Unknown => true,
            Health::Up => self.fail_streak > 0,
            Health::Down => self.ok_streak > 0,
        }
    }

    /// Feed one result; returns the new state when it changed.
    pub fn record(&mut self, ok: bool) -> Option<Health> {
        if ok {
            self.ok_streak = self.ok_streak.saturating_add(1);
            self.fail_streak = 0;
            if self.state != Health::Up && self.ok_streak >= self.rise {
                self.state = Health::Up;
                return Some(Health::Up);
            }
        } else {
            self.fail_streak = self.fail_streak.saturating_add(1);
            self.ok_streak = 0;
            if self.state != Health::Down && self.fail_streak >= self.fall {
                self.state = Health::Down;
                return Some(Health::Down);
            }
        }
        None
    }
}

/// A target is Up when every probe is Up, Down when any probe is Down, else Unknown.
pub fn combine(states: impl IntoIterator<Item = Health>) -> Health {
    let mut all_up = true;
    let mut any = false;
    for s in states {
        any = true;
        match s {
            Health::Down => return Health::Down,
            Health::Unknown => all_up = false,
            Health::Up => {}
        }
    }
    if any && all_up {
        Health::Up
    } else {
        Health::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_unknown_and_rises_after_rise_successes() {
        let mut m = RiseFall::new(2, 3);
        assert_eq!(m.state(), Health::Unknown);
        assert_eq!(m.record(true), None);
        assert_eq!(m.record(true), Some(Health::Up));
        assert_eq!(m.record(true), None);
    }

    #[test]
    fn falls_only_after_fall_consecutive_failures() {
        let mut m = RiseFall::new(1, 3);
        m.record(true);
        assert_eq!(m.record(false), None);
        assert_eq!(m.record(false), None);
        assert_eq!(m.record(true), None, "a success resets the failure streak");
        assert_eq!(m.record(false), None);
        assert_eq!(m.record(false), None);
        assert_eq!(m.record(false), Some(Health::Down));
    }

    #[test]
    fn combine_rules() {
        use Health::*;
        assert_eq!(combine([Up, Up]), Up);
        assert_eq!(combine([Up, Unknown]), Unknown);
        assert_eq!(combine([Up, Down, Unknown]), Down);
        assert_eq!(combine([]), Unknown);
    }

    proptest! {
        /// A transition to Up is always preceded by exactly `rise` trailing successes, and
        /// to Down by `fall` trailing failures: no single result can flip a state.
        #[test]
        fn transitions_need_full_streaks(rise in 1u32..6, fall in 1u32..6, results in proptest::collection::vec(any::<bool>(), 0..200)) {
            let mut m = RiseFall::new(rise, fall);
            for (i, r) in results.iter().enumerate() {
                if let Some(new) = m.record(*r) {
                    let need = if new == Health::Up { rise } else { fall } as usize;
                    prop_assert!(i + 1 >= need);
                    let tail = &results[i + 1 - need..=i];
                    prop_assert!(tail.iter().all(|x| *x == (new == Health::Up)));
                }
            }
        }
    }
}
