//! Opaque pagination cursors.
//!
//! A cursor names the last row of a page by its sort key, so the next page starts right after it
//! whatever was inserted meanwhile (keyset pagination: no OFFSET, no skipped or repeated rows).
//! It is hex text, so it is URL-safe and clients have no reason to parse it. A cursor carries the
//! letter of the list it belongs to, so a cursor of one list passed to another is rejected.

use super::StoreError;

/// A decoded cursor: the list it belongs to and the sort key of the last row returned.
#[derive(Clone, Debug, PartialEq)]
pub struct Cursor {
    /// Which list (`e` executions, `v` evaluations, `s` steps, `l` lineage, `c` verdict
    /// changes, `o` candidates only one step judged).
    pub list: char,
    /// The numeric part of the sort key (a time, a score's bits, an index).
    pub key: i64,
    /// The tie-breaker (an id).
    pub tiebreak: String,
}

impl Cursor {
    /// The tiebreak of an evaluations cursor whose last row has no value to sort on.
    pub(crate) const NO_VALUE: &'static str = "null";

    /// An evaluations cursor after row `idx`, whose value on the sort (a score, a metric) was
    /// `value`: kept exactly (`{:e}` round-trips), or [`Cursor::NO_VALUE`].
    pub(crate) fn after_evaluation(idx: i64, value: Option<f64>) -> Self {
        let tiebreak = value.map_or_else(|| Self::NO_VALUE.to_owned(), |v| format!("{v:e}"));
        Cursor::new('v', idx, tiebreak)
    }

    /// A cursor for `list` positioned after (`key`, `tiebreak`).
    pub fn new(list: char, key: i64, tiebreak: impl Into<String>) -> Self {
        Cursor {
            list,
            key,
            tiebreak: tiebreak.into(),
        }
    }

    /// The opaque text form.
    pub fn encode(&self) -> String {
        let plain = format!("{}|{}|{}", self.list, self.key, self.tiebreak);
        let mut out = String::with_capacity(plain.len() * 2);
        for byte in plain.bytes() {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out
    }

    /// The cursor after a verdict change: A's evaluation index, then B's (a candidate B's
    /// step judged twice makes two changes with the same index in A).
    pub(crate) fn after_change(a_idx: i64, b_idx: i64) -> Self {
        Cursor::new('c', a_idx, b_idx.to_string())
    }

    /// The two indexes of [`Cursor::after_change`]; `(-1, -1)` without a cursor.
    pub(crate) fn change_position(cursor: Option<&str>) -> Result<(i64, i64), StoreError> {
        let Some(text) = cursor else {
            return Ok((-1, -1));
        };
        let c = Cursor::decode(text, 'c')?;
        let b = c
            .tiebreak
            .parse::<i64>()
            .map_err(|_| StoreError::invalid("cursor", "not a cursor returned by this list"))?;
        Ok((c.key, b))
    }

    /// Decodes `text`, which must be a cursor of `list`; anything else is an error naming `cursor`.
    pub fn decode(text: &str, list: char) -> Result<Cursor, StoreError> {
        let bad = || StoreError::invalid("cursor", "not a cursor returned by this list");
        if text.len() % 2 != 0 || text.len() > 512 {
            return Err(bad());
        }
        let bytes = text
            .as_bytes()
            .chunks(2)
            .map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        let plain = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = plain.splitn(3, '|');
        let (Some(tag), Some(key), Some(tiebreak)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if tag.chars().ne(std::iter::once(list)) {
            return Err(bad());
        }
        let key = key.parse::<i64>().map_err(|_| bad())?;
        Ok(Cursor::new(list, key, tiebreak))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_lists_and_garbage() {
        let c = Cursor::new('e', -42, "0193-abc|x");
        let text = c.encode();
        assert_eq!(Cursor::decode(&text, 'e').ok(), Some(c));
        assert!(Cursor::decode(&text, 'v').is_err());
        for bad in ["", "zz", "abc", "65", "657c31", &"a".repeat(600)] {
            let err = Cursor::decode(bad, 'e');
            assert!(
                matches!(
                    err,
                    Err(StoreError::InvalidParameter {
                        field: "cursor",
                        ..
                    })
                ),
                "{bad:?} gave {err:?}"
            );
        }
    }
}
