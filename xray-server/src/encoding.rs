//! Request bodies sent compressed (`Content-Encoding: gzip`), decoded with the body cap applied
//! to the *decoded* size, so a small compressed body cannot expand into gigabytes.

use crate::error::ApiError;
use bytes::Bytes;
use hyper::header::CONTENT_ENCODING;
use hyper::HeaderMap;
use std::io::Read;

/// The body as the handler should read it: decoded when it was sent gzip-compressed.
pub fn decode(headers: &HeaderMap, body: Bytes, cap: usize) -> Result<Bytes, ApiError> {
    let encoding = match headers.get(CONTENT_ENCODING) {
        None => return Ok(body),
        Some(v) => v.to_str().unwrap_or("").trim().to_ascii_lowercase(),
    };
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => {
            let mut decoded = Vec::with_capacity(body.len().saturating_mul(4).min(cap));
            flate2::read::GzDecoder::new(&body[..])
                .take(cap as u64 + 1)
                .read_to_end(&mut decoded)
                .map_err(|e| {
                    ApiError::invalid_body(
                        Some("Content-Encoding".into()),
                        format!("the body is not valid gzip: {e}"),
                    )
                })?;
            if decoded.len() > cap {
                return Err(ApiError::too_large(cap));
            }
            Ok(Bytes::from(decoded))
        }
        other => Err(ApiError::unsupported_encoding(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).expect("compress");
        Bytes::from(gz.finish().expect("compress"))
    }

    fn headers(encoding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, encoding.parse().expect("a header value"));
        h
    }

    #[test]
    fn gzip_is_decoded_and_the_cap_applies_to_the_decoded_size() {
        let body = gzip(b"{\"a\":1}");
        assert_eq!(
            decode(&headers("gzip"), body, 100).expect("decoded"),
            Bytes::from_static(b"{\"a\":1}")
        );
        let bomb = gzip(&vec![b' '; 1 << 20]);
        assert!(
            bomb.len() < 16 * 1024,
            "a megabyte of spaces compresses well"
        );
        let refused = decode(&headers("gzip"), bomb, 1000).expect_err("too large");
        assert_eq!(refused.status, hyper::StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn other_encodings_and_broken_gzip_are_refused_by_name() {
        let e = decode(&headers("br"), Bytes::from_static(b"x"), 100).expect_err("unsupported");
        assert_eq!(e.status, hyper::StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let e = decode(&headers("gzip"), Bytes::from_static(b"not gzip"), 100).expect_err("bad");
        assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
        assert_eq!(
            decode(&HeaderMap::new(), Bytes::from_static(b"plain"), 100).expect("as is"),
            Bytes::from_static(b"plain")
        );
    }
}
