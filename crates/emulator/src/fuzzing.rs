//! fuzzing: the entry of the `emulator_api` fuzz target (feature `fuzzing`, never in a
//! release build). Owns nothing but the bridge: the fuzzer builds [`Step`]s (API calls
//! from the runtime and up to ten extensions, well-formed or not, invokes, exits,
//! timers, shutdowns) and [`run`] plays them on the sans-I/O lifecycle through the model
//! of `lifecycle::model_check`, the same one the property test uses, so the checks are
//! written once: no panic, Lambda's statuses and error types only, Lambda's record
//! order, one outcome per invoke, and no invoke left hanging once the timers run out.

use crate::lifecycle::model_check::World;
pub use crate::lifecycle::model_check::{IdChoice, NameChoice, ResponseKind, Step};

/// The most extensions an environment launches (Lambda's limit).
pub const MAX_EXTENSIONS: usize = crate::lifecycle::MAX_EXTENSIONS;

/// Plays `steps` in an environment launching `extensions` extensions, lets the
/// processes behave until every invoke has its outcome (registering with the events of
/// `mask`: bit 0 INVOKE, bit 1 SHUTDOWN), then shuts it down. `Err` names the broken
/// invariant.
pub fn run(extensions: usize, steps: impl IntoIterator<Item = Step>, mask: u8) -> Result<(), String> {
    let mut world = World::start(extensions).map_err(|e| e.to_string())?;
    for step in steps {
        world.play(step).map_err(|e| e.to_string())?;
    }
    world.settle(mask).map_err(|e| e.to_string())?;
    world.finish().map_err(|e| e.to_string())
}
