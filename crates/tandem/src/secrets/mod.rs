//! secrets: a drop-in for AWS's Parameters and Secrets extension, inside `tandem`: the
//! same HTTP API on `127.0.0.1:PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` (default 2773),
//! the same settings without their caps, up from the first instant of INIT, with
//! prefetch, refresh ahead, stale-if-error, and `tandem wrap` to hand values to a
//! function as environment variables.
//!
//! - [`settings`], [`request`], [`cache`]: pure (the settings, what a read asks for, the
//!   cache policy with the time passed in);
//! - [`service`]: reads through the cache (single-flight fetches in their own tasks);
//! - [`server`]: the HTTP API and its token check;
//! - [`wrap`]: `tandem wrap`, the `AWS_LAMBDA_EXEC_WRAPPER` side.
//!
//! Values live in memory only: never in a record, the spool, a diagnostic line or a
//! log (names may be told, values never). The listener must never fail or slow the
//! function: if its port is taken, one line says so and tandem carries on without it.

pub mod cache;
pub mod request;
pub mod server;
pub mod service;
pub mod settings;
pub mod wrap;

use crate::aws::client::AwsClient;
use crate::aws::retry::RetryPolicy;
use crate::aws::AwsEnv;
use service::SecretsService;
use settings::{Level, Settings};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Starts the cache from the environment: binds its port, serves it and starts the
/// prefetch, all in the background of the current tokio runtime. Answers the service,
/// or `None` when it is off or its port is taken (said in one line). Call it before
/// registering with the Extensions API, so the function's INIT finds it up.
pub fn start(var: impl Fn(&str) -> Option<String>) -> Option<Arc<SecretsService>> {
    let (settings, problems) = Settings::from_env(&var);
    if !settings.enabled {
        return None;
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, settings.port));
    let bound = std::net::TcpListener::bind(addr).and_then(|l| {
        l.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(l)
    });
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            crate::diag::error(format_args!("secrets: cache not started: cannot listen on {addr}: {e}"));
            return None;
        }
    };
    let aws = AwsClient::new(AwsEnv::from_env(&var), settings.max_connections, RetryPolicy::default());
    let prefetch = settings.prefetch.clone();
    let service = SecretsService::new(settings, aws);
    for p in problems {
        service.log(Level::Warn, p);
    }
    tokio::spawn(server::serve(listener, Arc::clone(&service), var("AWS_SESSION_TOKEN")));
    for lookup in prefetch {
        service.prefetch(lookup);
    }
    Some(service)
}
