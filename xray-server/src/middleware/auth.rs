//! Bearer-token authentication.
//!
//! With a token configured, every API route but `/api/v1/health` needs
//! `Authorization: Bearer <token>`. A browser cannot set that header on a WebSocket, so the live
//! route also accepts the token as a WebSocket subprotocol `bearer.<token>` (beside `xray`),
//! which, unlike a query parameter, does not end up in access logs. The comparison takes the same
//! time whatever the guess.

use hyper::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use hyper::HeaderMap;
use subtle::ConstantTimeEq;

/// Whether `headers` carry `token`.
pub fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let protocol = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("bearer."));
    // Constant time: `subtle`'s `ct_eq` looks at every byte whatever the first difference, so
    // the time taken does not tell how much of a guess was right. Only the length is not
    // hidden (slices of different lengths differ at once), which tells nothing of the bytes.
    // tests/hostile_http.rs refuses tokens differing in the first byte and in the last; a
    // timing test is not run on a shared machine.
    [bearer, protocol]
        .into_iter()
        .flatten()
        .any(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn header_or_subprotocol() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(authorized(&h, "s3cret"));
        assert!(!authorized(&h, "s3cre"));
        let mut h = HeaderMap::new();
        h.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("xray, bearer.s3cret"),
        );
        assert!(authorized(&h, "s3cret"));
    }
}
