//! A rate limit per client address (a token bucket per IP, by `governor`).
//!
//! Every API response carries `X-RateLimit-Limit` (requests per minute) and
//! `X-RateLimit-Remaining` (what the bucket holds now); a refused request is a 429 with
//! `Retry-After` in seconds. The viewer's static files are not counted.

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;

/// The limiter shared by every connection.
pub struct Limiter {
    per_minute: u32,
    inner: RateLimiter<
        IpAddr,
        governor::state::keyed::DefaultKeyedStateStore<IpAddr>,
        DefaultClock,
        StateInformationMiddleware,
    >,
}

/// The outcome for one request.
pub enum Outcome {
    /// Go on; this many requests remain in the bucket.
    Allowed {
        /// Requests per minute.
        limit: u32,
        /// Requests left now.
        remaining: u32,
    },
    /// Refused; retry after this many seconds.
    Refused {
        /// Requests per minute.
        limit: u32,
        /// Seconds until a request would be allowed.
        retry_after_s: u64,
    },
}

impl Limiter {
    /// `per_minute` requests per minute per address with a burst of `burst`; `None` when
    /// `per_minute` is 0 (no limit).
    pub fn new(per_minute: u32, burst: u32) -> Option<Limiter> {
        let rate = NonZeroU32::new(per_minute)?;
        let burst = NonZeroU32::new(burst.max(1))?;
        let quota = Quota::per_minute(rate).allow_burst(burst);
        let inner: DefaultKeyedRateLimiter<IpAddr> = RateLimiter::keyed(quota);
        Some(Limiter {
            per_minute,
            inner: inner.with_middleware::<StateInformationMiddleware>(),
        })
    }

    /// Counts one request from `client`.
    pub fn check(&self, client: IpAddr) -> Outcome {
        match self.inner.check_key(&client) {
            Ok(state) => Outcome::Allowed {
                limit: self.per_minute,
                remaining: state.remaining_burst_capacity(),
            },
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Outcome::Refused {
                    limit: self.per_minute,
                    retry_after_s: wait.as_secs() + 1,
                }
            }
        }
    }

    /// Forgets clients whose buckets are full again, so memory follows active clients only.
    pub fn forget_idle(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}
