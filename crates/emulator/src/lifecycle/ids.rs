//! lifecycle::ids: every identifier the lifecycle mints (extension identifiers, event
//! identifiers, trace ids of untraced invocations), derived from a seed the driver draws
//! at start, so that the state machine holds no randomness: replaying the same inputs
//! with the same seed replays the same ids (request ids come in with each invocation).

/// A deterministic source of unique identifiers (splitmix64 over a counter: well mixed,
/// never repeating within an environment, not meant to be secret).
#[derive(Debug, Clone)]
pub(super) struct Ids {
    state: u64,
}

impl Ids {
    pub(super) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A UUID in the version 4 format, as Lambda's identifiers look.
    pub(super) fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }

    /// An unsampled X-Ray trace header for an invocation that arrived at `epoch_secs`
    /// without one, as Lambda generates when tracing is not active.
    pub(super) fn trace_header(&mut self, epoch_secs: u64) -> String {
        let (root, tail, parent) = (self.next_u64(), self.next_u64() >> 32, self.next_u64());
        format!("Root=1-{epoch_secs:08x}-{root:016x}{tail:08x};Parent={parent:016x};Sampled=0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_uuids_and_replay_from_the_seed() {
        let (mut a, mut b) = (Ids::new(42), Ids::new(42));
        let first: Vec<String> = (0..100).map(|_| a.uuid()).collect();
        assert_eq!(first, (0..100).map(|_| b.uuid()).collect::<Vec<_>>());
        let mut unique = first.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), first.len());
        assert!(first.iter().all(|id| uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4)));
        assert_ne!(Ids::new(43).uuid(), first[0]);
        let t = a.trace_header(0x6500_0000);
        assert!(t.starts_with("Root=1-65000000-") && t.ends_with(";Sampled=0"), "{t}");
        assert_eq!(t.len(), "Root=1-65000000-".len() + 24 + ";Parent=".len() + 16 + ";Sampled=0".len());
    }
}
