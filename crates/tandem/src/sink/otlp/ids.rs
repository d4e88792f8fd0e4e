//! sink::otlp::ids: trace and span ids, derived from the request id (or taken from
//! X-Ray), so that a log line and the span of its invocation agree without sharing
//! state and a re-sent batch carries the same ids. Pure.

/// The OTel trace id of an X-Ray trace id: `1-5759e988-bd862e3fe1be46a994272793` →
/// the 16 bytes of `5759e988bd862e3fe1be46a994272793`. `None` for anything else.
pub fn xray_to_trace_id(xray: &str) -> Option<[u8; 16]> {
    let mut parts = xray.trim().split('-');
    let (version, epoch, unique) = (parts.next()?, parts.next()?, parts.next()?);
    if version != "1" || epoch.len() != 8 || unique.len() != 24 || parts.next().is_some() {
        return None;
    }
    let mut hex = [0u8; 32];
    hex[..8].copy_from_slice(epoch.as_bytes());
    hex[8..].copy_from_slice(unique.as_bytes());
    let id = decode_hex::<16>(&hex)?;
    (id != [0; 16]).then_some(id)
}

/// The trace id of an invocation: its X-Ray trace when there is one, else derived from
/// the request id (the UUID's own 16 bytes when it is a UUID, else a hash).
pub fn trace_id_for(request_id: &str, xray: Option<&str>) -> [u8; 16] {
    if let Some(id) = xray.and_then(xray_to_trace_id) {
        return id;
    }
    let hex: Vec<u8> = request_id.bytes().filter(|&c| c != b'-').collect();
    if request_id.len() == 36 && hex.len() == 32 {
        if let Some(id) = decode_hex::<16>(&hex) {
            if id != [0; 16] {
                return id;
            }
        }
    }
    let a = fnv1a(request_id.as_bytes(), 0xcbf2_9ce4_8422_2325);
    let b = fnv1a(request_id.as_bytes(), 0x6c62_272e_07bb_0142);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&a.to_be_bytes());
    id[8..].copy_from_slice(&b.to_be_bytes());
    if id == [0; 16] {
        id[15] = 1;
    }
    id
}

/// The span id of an invocation's span (`part` = `"invocation"`) or of one of its child
/// spans (`"init"`, `"runtime"`, `"extension_overhead"`): a hash of both, never zero.
pub fn span_id_for(request_id: &str, part: &str) -> [u8; 8] {
    let mut h = fnv1a(request_id.as_bytes(), 0xcbf2_9ce4_8422_2325);
    h = fnv1a(&[0], h);
    h = fnv1a(part.as_bytes(), h);
    if h == 0 {
        h = 1;
    }
    h.to_be_bytes()
}

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Final avalanche (from SplitMix64) so that similar ids do not share prefixes.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn decode_hex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = hex_val(pair[0])? << 4 | hex_val(pair[1])?;
    }
    Some(out)
}

pub(crate) fn span_id_hex(s: &str) -> Option<[u8; 8]> {
    decode_hex::<8>(s.trim().as_bytes()).filter(|id| *id != [0; 8])
}

/// The value of one hex digit.
pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}
