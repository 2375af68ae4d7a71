//! The misbehaviours a test can switch on at run time ([`Fault`]), and which one fires for a
//! request: the first live fault for its route, used up by one each time it fires.

use super::Route;
use super::http::{Delivery, Response};

/// A misbehaviour switched on by a test; each fires `times` times, then is used up.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with `status` (and a short body) instead of handling the request.
    Status { route: Route, status: u16, times: usize },
    /// Answer `429` with `Retry-After: <secs>`.
    RateLimit { route: Route, retry_after_secs: u64, times: usize },
    /// Answer `503` with `Retry-After: <secs>` (a service under maintenance or overloaded).
    Unavailable { route: Route, retry_after_secs: u64, times: usize },
    /// Answer `429` with no `Retry-After`, only `x-ratelimit-reset` (Unix seconds) that many
    /// seconds from now, as GitHub's REST APIs do.
    RateLimitReset { route: Route, reset_in_secs: u64, times: usize },
    /// Handle the request, send the headers and half the body, then go silent.
    Stall { route: Route, times: usize },
    /// Handle the request, send the headers and half the body, then close the connection.
    Truncate { route: Route, times: usize },
    /// Handle the request and send the whole body at `bytes_per_sec` (a throttled server).
    Trickle { route: Route, bytes_per_sec: usize, times: usize },
    /// Answer `200` with a body that is not JSON.
    GarbageJson { route: Route, times: usize },
    /// Answer with this status and this (JSON) body: denials, `ok:false`, camelCase fields,
    /// BOM-prefixed errors…
    Answer { route: Route, status: u16, body: String, times: usize },
    /// Let `skip` requests of the inner fault's route pass, then apply it (a download that
    /// breaks after its first range, say).
    Later { skip: usize, fault: Box<Fault> },
}

impl Fault {
    /// `n` answers of `503`, then normal service.
    pub fn server_errors(route: Route, n: usize) -> Fault {
        Fault::Status { route, status: 503, times: n }
    }
    /// `500` forever.
    pub fn persistent_server_error(route: Route) -> Fault {
        Fault::Status { route, status: 500, times: usize::MAX }
    }
    /// A forced conflict on the next reservation.
    pub fn conflict() -> Fault {
        Fault::Status { route: Route::Reserve, status: 409, times: 1 }
    }
    /// The next download is refused as an expired signed URL (`403` once).
    pub fn expired_url() -> Fault {
        Fault::Status { route: Route::Download, status: 403, times: 1 }
    }

    fn route(&self) -> Route {
        match self {
            Fault::Status { route, .. }
            | Fault::RateLimit { route, .. }
            | Fault::Unavailable { route, .. }
            | Fault::RateLimitReset { route, .. }
            | Fault::Stall { route, .. }
            | Fault::Truncate { route, .. }
            | Fault::Trickle { route, .. }
            | Fault::GarbageJson { route, .. }
            | Fault::Answer { route, .. } => *route,
            Fault::Later { fault, .. } => fault.route(),
        }
    }

    fn left(&self) -> usize {
        let mut copy = self.clone();
        *copy.times()
    }

    fn times(&mut self) -> &mut usize {
        match self {
            Fault::Status { times, .. }
            | Fault::RateLimit { times, .. }
            | Fault::Unavailable { times, .. }
            | Fault::RateLimitReset { times, .. }
            | Fault::Stall { times, .. }
            | Fault::Truncate { times, .. }
            | Fault::Trickle { times, .. }
            | Fault::GarbageJson { times, .. }
            | Fault::Answer { times, .. } => times,
            Fault::Later { fault, .. } => fault.times(),
        }
    }
}

/// What a fired fault does to the request it hit.
pub(super) enum Effect {
    /// Answer with this instead of handling the request.
    Answer(Response),
    /// Handle the request, but send the response this way.
    Deliver(Delivery),
}

/// The first live fault for `route` (or for [`Route::Any`]), used up by one; `None` when no
/// fault applies and the request is served normally.
pub(super) fn fire(faults: &mut [Fault], route: Route) -> Option<Effect> {
    take(faults, route).map(Fault::effect)
}

/// The first live fault for `route` (or for [`Route::Any`]), used up by one and unwrapped from
/// any [`Fault::Later`]; `None` when no fault applies.
pub(super) fn take(faults: &mut [Fault], route: Route) -> Option<Fault> {
    for fault in faults.iter_mut() {
        if !(fault.route() == route || fault.route() == Route::Any) || fault.left() == 0 {
            continue;
        }
        if let Fault::Later { skip, .. } = fault
            && *skip > 0
        {
            *skip -= 1;
            continue;
        }
        *fault.times() -= 1;
        let mut fault = fault.clone();
        while let Fault::Later { fault: inner, .. } = fault {
            fault = *inner;
        }
        return Some(fault);
    }
    None
}

impl Fault {
    pub(super) fn effect(self) -> Effect {
        match self {
            Fault::Status { status, .. } => Effect::Answer(Response::json(
                status,
                serde_json::json!({"code": "injected", "msg": format!("injected {status}")}),
            )),
            Fault::RateLimit { retry_after_secs, .. } => Effect::Answer(
                Response::json(429, serde_json::json!({"code": "resource_exhausted", "msg": "rate limited"}))
                    .with_header("Retry-After", retry_after_secs.to_string()),
            ),
            Fault::Unavailable { retry_after_secs, .. } => Effect::Answer(
                Response::json(503, serde_json::json!({"code": "unavailable", "msg": "try again later"}))
                    .with_header("Retry-After", retry_after_secs.to_string()),
            ),
            Fault::RateLimitReset { reset_in_secs, .. } => {
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                Effect::Answer(
                    Response::json(429, serde_json::json!({"message": "API rate limit exceeded"}))
                        .with_header("x-ratelimit-reset", (now + reset_in_secs).to_string()),
                )
            }
            Fault::GarbageJson { .. } => {
                Effect::Answer(Response::new(200, "application/json", "{\"ok\":tru<html>"))
            }
            Fault::Answer { status, body, .. } => {
                Effect::Answer(Response::new(status, "application/json", body))
            }
            Fault::Stall { .. } => Effect::Deliver(Delivery::Stall),
            Fault::Truncate { .. } => Effect::Deliver(Delivery::Truncate),
            Fault::Trickle { bytes_per_sec, .. } => Effect::Deliver(Delivery::Trickle(bytes_per_sec)),
            Fault::Later { fault, .. } => fault.effect(),
        }
    }
}
