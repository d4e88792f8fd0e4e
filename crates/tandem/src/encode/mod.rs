//! encode: the encoders more than one sink shares: [`ndjson`] (one JSON object per
//! line, for the `file` and `http` sinks, plus gzip), and the JSON writing primitives
//! here, used by NDJSON and by the `stdout` sink's EMF encoder. A sink's own encoder
//! lives in its folder (`sink/stdout/encode.rs`, `sink/otlp/`).
//!
//! Everything here is pure: no I/O, no clock, no randomness, no global state, so that
//! encoders are deterministic, unit-testable byte for byte and benchmarkable. The JSON
//! encoders append to a caller-provided `Vec<u8>` (reuse it across batches to avoid
//! reallocating) and write by hand where serde would cost an intermediate value.

pub mod grpc;
pub mod ndjson;
pub mod received;

use std::fmt;

/// Appends `s` as a JSON string literal (quoted, escaped like `serde_json`).
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                out.extend_from_slice(&b[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 0xf) as usize]]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Appends `"key":` (the key must not need escaping: it is one of ours).
pub(crate) fn push_key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends an unsigned integer.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends a finite number in its shortest round-trip form (`0` for NaN/infinity, which
/// JSON cannot carry; the models never hold them).
pub(crate) fn push_f64(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        out.push(b'0');
        return;
    }
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        if f < 0.0 {
            out.push(b'-');
        }
        push_u64(out, f.abs() as u64);
        return;
    }
    struct W<'a>(&'a mut Vec<u8>);
    impl fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    // Writing into a Vec cannot fail.
    let _ = fmt::Write::write_fmt(&mut W(out), format_args!("{f}"));
}

/// Serializes `value` with serde_json, appending to `out`. Serializing our models into
/// a `Vec` cannot fail (no non-string map keys, no fallible `Serialize`); should it ever,
/// `out` is restored and `fallback` is written instead, so the output stays valid JSON.
pub(crate) fn push_serde<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T, fallback: &[u8]) {
    let mark = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(mark);
        out.extend_from_slice(fallback);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_exactly_like_serde_json() {
        for s in [
            "",
            "plain",
            "quote\" back\\slash",
            "nl\n cr\r tab\t",
            "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}",
            "ünïcødé ✓ 🚀",
            "</script>",
        ] {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn numbers_are_valid_json_and_round_trip() {
        for n in [0u64, 7, 10, 1_700_000_000_123, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
        for f in [0.0, 1.0, -3.0, 100.25, 0.1, 2.0833e-7, 1e300, -0.5, 123456.789] {
            let mut out = Vec::new();
            push_f64(&mut out, f);
            let back: f64 = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, f, "{}", String::from_utf8_lossy(&out));
        }
        let mut out = Vec::new();
        push_f64(&mut out, f64::NAN);
        assert_eq!(out, b"0");
        let mut out = Vec::new();
        push_f64(&mut out, 150.0);
        assert_eq!(out, b"150");
    }
}
