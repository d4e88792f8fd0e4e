//! guard: a handler that panics must not take the extension down (which would fail
//! the function's invocation with `Extension.Crash`); its panic becomes an error.
//!
//! Hand-written because the only common crate for this (`futures-util`'s
//! `catch_unwind`) would add a large dependency for a dozen lines.

use crate::Error;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(p) => p.map(Ok),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                Poll::Ready(Err(msg))
            }
        }
    }
}

/// Runs a handler future; a panic inside it becomes a transient [`Error`].
pub(crate) async fn guarded<F: Future<Output = Result<(), Error>>>(what: &str, fut: F) -> Result<(), Error> {
    match CatchUnwind(Box::pin(fut)).await {
        Ok(r) => r,
        Err(msg) => Err(Error::transient(format!("the {what} handler panicked: {msg}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error() {
        let r = guarded("test", async { panic!("boom") }).await;
        assert!(r.unwrap_err().message().contains("boom"));
        assert!(guarded("test", async { Ok(()) }).await.is_ok());
    }
}
