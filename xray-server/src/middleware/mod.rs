//! The middleware every request passes, in this order (see [`crate::app`]):
//!
//! | order | middleware | answers on its own with |
//! |---|---|---|
//! | 0 | head size: request line and headers at most [`MAX_HEAD_BYTES`](crate::MAX_HEAD_BYTES) | 431 |
//! | 1 | [`cors`]: configured origins only | 204 to an allowed preflight, 403 to another origin |
//! | 2 | [`headers`]: CSP, `X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy` | (added to every response, errors included) |
//! | 3 | [`rate_limit`]: per client address, `X-RateLimit-*` headers | 429 with `Retry-After` |
//! | 4 | validation: route, method, query parameters ([`crate::params`]) | 400, 404, 405 |
//! | 5 | body cap | 413 |
//! | 6 | [`auth`]: bearer token, compared in constant time | 401 |

pub mod auth;
pub mod cors;
pub mod headers;
pub mod rate_limit;
