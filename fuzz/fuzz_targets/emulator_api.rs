//! The emulator's Runtime, Extensions, Telemetry and Logs API request handling through
//! the sans-I/O lifecycle, with simulated time: sequences of calls from a runtime and up
//! to ten extensions (registrations with any name and body, `next`, responses whole,
//! streamed with an error trailer, too large or cut off, runtime and extension errors,
//! subscriptions, unknown identifiers and request ids), invokes, crashes and OOM kills,
//! spawn failures, timers and shutdowns. The checks are the lifecycle model's
//! (`tandem_emulator::fuzzing`): no panic, every answer one of Lambda's statuses and
//! error types, records in Lambda's order, one outcome per invoke, and, once the
//! processes behave and the timers run out, every invoke completed or timed out.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use tandem_emulator::fuzzing::{self, IdChoice, NameChoice, ResponseKind, Step};

/// Bodies real peers send (register, subscribe, errors), so that mutations start from
/// what passes validation as often as from noise.
const BODIES: [&[u8]; 10] = [
    br#"{"events":["INVOKE","SHUTDOWN"]}"#,
    br#"{"events":["SHUTDOWN"]}"#,
    br#"{"events":[]}"#,
    br#"{"events":["INVOKE","BOGUS"]}"#,
    br#"{"events":["INVOKE"],"configurationKeys":["k"]}"#,
    br#"{"schemaVersion":"2022-12-13","types":["platform","function","extension"],"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25},"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243/telemetry"}}"#,
    br#"{"schemaVersion":"2021-03-18","types":["platform","function"],"destination":{"protocol":"TCP","port":4244}}"#,
    br#"{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":1},"destination":{"protocol":"HTTP","URI":"http://example.com:80"}}"#,
    br#"{"errorMessage":"boom","errorType":"Custom.Failure","stackTrace":["a","b"]}"#,
    br#"{"errorMessage":"not json at all"#,
];

/// Error types runtimes and extensions name in their headers.
const ERROR_TYPES: [&str; 6] =
    ["Runtime.ImportModuleError", "Extension.Crashed", "Handled", "Custom.Failure", "", "Unhandled"];

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((extensions, mask)) = header(&mut u) else { return };
    let mut steps = Vec::new();
    while !u.is_empty() && steps.len() < 256 {
        match step(&mut u) {
            Ok(s) => steps.push(s),
            Err(_) => break,
        }
    }
    if let Err(broken) = fuzzing::run(extensions, steps, mask) {
        panic!("{broken}");
    }
});

fn header(u: &mut Unstructured) -> Result<(usize, u8)> {
    Ok((u.int_in_range(0..=fuzzing::MAX_EXTENSIONS)?, u.int_in_range(0..=3)?))
}

fn body(u: &mut Unstructured) -> Result<Vec<u8>> {
    if u.ratio(1, 2)? {
        Ok(u.choose(&BODIES)?.to_vec())
    } else {
        let n = u.int_in_range(0..=64)?;
        Ok(u.bytes(n)?.to_vec())
    }
}

fn text(u: &mut Unstructured) -> Result<String> {
    let n = u.int_in_range(0..=16)?;
    Ok(String::from_utf8_lossy(u.bytes(n)?).into_owned())
}

fn error_type(u: &mut Unstructured) -> Result<Option<String>> {
    Ok(match u.int_in_range(0..=2)? {
        0 => None,
        1 => Some(u.choose(&ERROR_TYPES)?.to_string()),
        _ => Some(text(u)?),
    })
}

fn id(u: &mut Unstructured) -> Result<IdChoice> {
    Ok(match u.int_in_range(0..=3)? {
        0 | 1 => IdChoice::Of(u.int_in_range(0..=9)?),
        2 => IdChoice::Missing,
        _ => IdChoice::Junk(text(u)?),
    })
}

fn who(u: &mut Unstructured) -> Result<usize> {
    u.int_in_range(0..=fuzzing::MAX_EXTENSIONS)
}

fn step(u: &mut Unstructured) -> Result<Step> {
    let ext = |u: &mut Unstructured| u.int_in_range(0..=9usize);
    Ok(match u.int_in_range(0..=23u8)? {
        0 => Step::Register { ext: ext(u)?, mask: u.int_in_range(0..=3)? },
        1 | 2 => Step::ExtNext { ext: ext(u)? },
        3 => Step::ExtInitError { ext: ext(u)? },
        4 => Step::ExtExitError { ext: ext(u)? },
        5 => Step::RuntimeNext,
        6 | 7 => Step::Respond,
        8 => Step::RuntimeError,
        9 => Step::RuntimeInitError,
        10 => Step::Invoke,
        11 => Step::Crash { who: who(u)?, oom: u.arbitrary()? },
        12 => Step::FireTimer,
        13 => Step::Tick { ms: u.arbitrary()? },
        14 => Step::Shutdown,
        15 => Step::Progress { mask: u.int_in_range(0..=3)? },
        16 => {
            let name = match u.int_in_range(0..=3)? {
                0 | 1 => NameChoice::Own,
                2 => NameChoice::Missing,
                _ => NameChoice::Junk(text(u)?),
            };
            Step::RegisterRaw { ext: ext(u)?, name, body: body(u)?, accept_account_id: u.arbitrary()? }
        }
        17 => Step::ExtNextAs { id: id(u)? },
        18 => Step::ExtErrorRaw { id: id(u)?, init: u.arbitrary()?, error_type: error_type(u)?, body: body(u)? },
        19 => Step::Subscribe { id: id(u)?, logs: u.arbitrary()?, body: body(u)? },
        20 => {
            let kind = match u.int_in_range(0..=4)? {
                0 => ResponseKind::Start,
                1 => ResponseKind::Body(body(u)?),
                2 => ResponseKind::Trailer { error_type: error_type(u)?.unwrap_or_default(), body: body(u)? },
                3 => ResponseKind::TooLarge { size: u.int_in_range(1..=64 << 20)? },
                _ => ResponseKind::Truncated { received: u.int_in_range(0..=1 << 20)? },
            };
            Step::RespondRaw { current: u.arbitrary()?, request_id: text(u)?, kind }
        }
        21 => Step::RuntimeErrorRaw {
            current: u.arbitrary()?,
            request_id: text(u)?,
            error_type: error_type(u)?,
            body: body(u)?,
        },
        22 => Step::RuntimeInitErrorRaw { error_type: error_type(u)?, body: body(u)? },
        _ => Step::SpawnFailed { who: who(u)? },
    })
}
