//! guard::tree: the process tree and the scope rule: which processes are the
//! sandbox's. The guard watches the descendants of its own parent (Lambda's init in
//! the cloud, tandem-emulator locally: the same rule in both places), except itself
//! and anything it started. In Lambda that is every process; locally the host's
//! processes are never in scope, so nothing of the host is ever reported.
//!
//! Depth 1 (the parent's children) are the processes the platform started: the runtime
//! and the extensions. Deeper ones were started by them: what the exec policy judges.
//! Pure: built from parsed `stat` rows.

use std::collections::{BTreeMap, HashMap};

/// One process in scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Its parent's pid.
    pub ppid: u32,
    /// 1 for a process the platform started (the runtime, an extension), more for the
    /// processes they started.
    pub depth: u32,
}

/// The processes in scope, by pid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    members: BTreeMap<u32, Member>,
}

impl Scope {
    /// The descendants of `root` among `(pid, ppid)` pairs, without `me` and its own
    /// descendants. A cycle or a pid listed twice (a racy read of /proc) cannot loop:
    /// each pid is placed once.
    pub fn build(processes: impl IntoIterator<Item = (u32, u32)>, root: u32, me: u32) -> Scope {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (pid, ppid) in processes {
            if pid != ppid {
                children.entry(ppid).or_default().push(pid);
            }
        }
        let mut members = BTreeMap::new();
        let mut stack: Vec<(u32, u32, u32)> = Vec::new();
        for &c in children.get(&root).into_iter().flatten() {
            stack.push((c, root, 1));
        }
        while let Some((pid, ppid, depth)) = stack.pop() {
            if pid == me || pid == root || members.contains_key(&pid) {
                continue;
            }
            members.insert(pid, Member { ppid, depth });
            for &c in children.get(&pid).into_iter().flatten() {
                stack.push((c, pid, depth + 1));
            }
        }
        Scope { members }
    }

    /// The member `pid`, if in scope.
    pub fn get(&self, pid: u32) -> Option<Member> {
        self.members.get(&pid).copied()
    }

    /// Every member, by pid.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Member)> + '_ {
        self.members.iter().map(|(&p, &m)| (p, m))
    }

    /// How many processes are in scope.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no process is in scope.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// `pid`'s ancestors in scope, nearest first, up to the platform-started one.
    pub fn ancestors(&self, pid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = self.get(pid);
        while let Some(m) = at {
            if !self.members.contains_key(&m.ppid) || out.len() > self.members.len() {
                break;
            }
            out.push(m.ppid);
            at = self.get(m.ppid);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The emulator on a host: 1 init, 500 the host's shell, 900 the emulator (the
    // guard's parent) with the runtime 901 (which started 910 and 911, 911 started 912)
    // and tandem 902 (which, hypothetically, started 903); another extension 904.
    const TREE: &[(u32, u32)] = &[
        (1, 0),
        (500, 1),
        (501, 500),
        (900, 500),
        (901, 900),
        (902, 900),
        (903, 902),
        (904, 900),
        (910, 901),
        (911, 901),
        (912, 911),
    ];

    #[test]
    fn descendants_of_the_parent_without_the_guard() {
        let s = Scope::build(TREE.iter().copied(), 900, 902);
        let pids: Vec<u32> = s.iter().map(|(p, _)| p).collect();
        assert_eq!(pids, vec![901, 904, 910, 911, 912]);
        assert_eq!(s.get(901).map(|m| m.depth), Some(1));
        assert_eq!(s.get(912), Some(Member { ppid: 911, depth: 3 }));
        assert_eq!(s.get(500), None, "the host is never in scope");
        assert_eq!(s.get(903), None, "nor what the guard started");
        assert_eq!(s.ancestors(912), vec![911, 901]);
        assert!(s.ancestors(901).is_empty());
    }

    #[test]
    fn lambda_init_as_root() {
        // In Lambda the root is init (pid 1) and every process is in scope but the guard.
        let s = Scope::build([(1, 0), (7, 1), (8, 1), (12, 7)], 1, 8);
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(12).map(|m| m.depth), Some(2));
    }

    #[test]
    fn racy_reads_cannot_loop() {
        // A cycle (pid reuse between two reads) and a duplicate row.
        let s = Scope::build([(10, 1), (11, 10), (10, 11), (11, 10)], 1, 99);
        assert_eq!(s.len(), 2);
        assert_eq!(s.ancestors(11), vec![10]);
        assert!(Scope::build([], 1, 2).is_empty());
    }
}
