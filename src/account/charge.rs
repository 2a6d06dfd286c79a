//! Charging policies: how an object's resident bytes are divided among processes.

use crate::model::{Object, Pid, Via};
use std::collections::BTreeMap;

/// How an object's resident bytes are divided among processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Whole object to its owner (SysV creator, else the holder that started first).
    Owner,
    /// Resident bytes divided equally among the processes holding it.
    Split,
    /// Each mapper its PSS of the object (the kernel's proportional view, read from smaps);
    /// the part no live process maps goes to the owner.
    Touched,
}

impl Policy {
    /// Every policy, in declaration order: tests and views that cover all policies iterate
    /// this, so a new policy is added here next to its variant and nowhere else.
    pub const ALL: [Policy; 3] = [Policy::Owner, Policy::Split, Policy::Touched];

    /// The name on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Owner => "owner",
            Policy::Split => "split",
            Policy::Touched => "touched",
        }
    }

    /// Whether the policy needs smaps (a page-table walk).
    pub fn needs_smaps(self) -> bool {
        self == Policy::Touched
    }
}

/// The charges for one object. Empty when nobody holds it. The charges always sum to the
/// object's resident bytes otherwise.
pub fn charge(obj: &Object, owner: Option<Pid>, policy: Policy) -> Vec<(Pid, u64)> {
    let Some(owner) = owner else {
        return Vec::new();
    };
    let total = obj.resident_bytes;
    match policy {
        Policy::Owner => vec![(owner, total)],
        Policy::Split => {
            let pids = obj.holder_pids();
            if pids.is_empty() {
                return vec![(owner, total)];
            }
            let n = pids.len() as u64;
            let (base, rem) = (total / n, total % n);
            // The first `rem` holders get one byte more, so the sum is exact.
            pids.into_iter()
                .enumerate()
                .map(|(i, pid)| (pid, base + u64::from((i as u64) < rem)))
                .collect()
        }
        Policy::Touched => {
            let mut pss: BTreeMap<Pid, u64> = BTreeMap::new();
            for h in &obj.holders {
                if let Via::Map {
                    pss_bytes: Some(b), ..
                } = h.via
                {
                    let e = pss.entry(h.pid).or_default();
                    *e = e.saturating_add(b);
                }
            }
            let mut left = total;
            let mut out = Vec::with_capacity(pss.len() + 1);
            for (pid, b) in pss {
                // smaps and st_blocks are read moments apart; never hand out more than exists.
                let b = b.min(left);
                left -= b;
                if pid == owner {
                    continue;
                }
                out.push((pid, b));
            }
            let owner_share = total.saturating_sub(crate::size::sum_bytes(out.iter().map(|c| c.1)));
            out.push((owner, owner_share));
            out.sort_unstable();
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::object;

    /// A new policy does not compile here until it is given a position, which is a reminder
    /// that ALL must hold it there.
    #[test]
    fn all_lists_every_policy_once() {
        let position = |p: Policy| match p {
            Policy::Owner => 0,
            Policy::Split => 1,
            Policy::Touched => 2,
        };
        for (i, &p) in Policy::ALL.iter().enumerate() {
            assert_eq!(position(p), i, "{p:?}");
        }
    }

    #[test]
    fn split_remainder_is_exact() {
        let o = object(1, 10, &[3, 1, 2]);
        let c = charge(&o, Some(1), Policy::Split);
        assert_eq!(c, vec![(1, 4), (2, 3), (3, 3)]);
    }

    #[test]
    fn touched_gives_unmapped_part_to_owner() {
        let mut o = object(1, 1000, &[1, 2, 3]);
        for (h, pss) in o.holders.iter_mut().zip([0u64, 250, 500]) {
            if let Via::Map { pss_bytes, .. } = &mut h.via {
                *pss_bytes = Some(pss);
            }
        }
        let c = charge(&o, Some(1), Policy::Touched);
        assert_eq!(c, vec![(1, 250), (2, 250), (3, 500)]);
    }

    #[test]
    fn touched_never_exceeds_resident() {
        let mut o = object(1, 100, &[1, 2]);
        for h in o.holders.iter_mut() {
            if let Via::Map { pss_bytes, .. } = &mut h.via {
                *pss_bytes = Some(80);
            }
        }
        let c = charge(&o, Some(1), Policy::Touched);
        assert_eq!(c.iter().map(|c| c.1).sum::<u64>(), 100);
    }
}
