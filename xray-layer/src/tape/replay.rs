//! Replaying a tape into a serializer (serde_json, on the writer thread).

use super::{tag, Tape};
use serde::ser::{self, Serialize, SerializeMap, SerializeSeq};
use std::cell::Cell;

/// Serializes the one value at the start of `tape` into `serializer`, making the same calls
/// (up to the integers' widths) that the value's own `Serialize` made when it was recorded.
pub(crate) fn replay<S: ser::Serializer>(tape: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    let cursor = Cursor {
        tape,
        at: Cell::new(0),
    };
    let ok = Value(&cursor).serialize(serializer)?;
    if cursor.at.get() != tape.len() {
        return Err(ser::Error::custom(
            "a recorded value had bytes after its end",
        ));
    }
    Ok(ok)
}

struct Cursor<'t> {
    tape: &'t [u8],
    at: Cell<usize>,
}

impl<'t> Cursor<'t> {
    fn take<E: ser::Error>(&self, n: usize) -> Result<&'t [u8], E> {
        let at = self.at.get();
        let bytes = at
            .checked_add(n)
            .and_then(|end| self.tape.get(at..end))
            .ok_or_else(|| E::custom("a recorded value was cut short"))?;
        self.at.set(at + n);
        Ok(bytes)
    }

    fn array<const N: usize, E: ser::Error>(&self) -> Result<[u8; N], E> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn sized<E: ser::Error>(&self) -> Result<&'t [u8], E> {
        let len = u32::from_le_bytes(self.array()?);
        self.take(len as usize)
    }

    fn str<E: ser::Error>(&self) -> Result<&'t str, E> {
        std::str::from_utf8(self.sized()?).map_err(|_| E::custom("a recorded string was not UTF-8"))
    }

    /// Whether the next tag closes the current sequence or map (consumed if so).
    fn at_end<E: ser::Error>(&self) -> Result<bool, E> {
        match self.tape.get(self.at.get()) {
            Some(&tag::END) => {
                self.at.set(self.at.get() + 1);
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(E::custom("a recorded value was cut short")),
        }
    }
}

/// The next value on the tape; serializing it moves the cursor past it.
struct Value<'c, 't>(&'c Cursor<'t>);

impl Serialize for Value<'_, '_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let [tag] = c.array()?;
        match tag {
            tag::UNIT => s.serialize_unit(),
            tag::FALSE => s.serialize_bool(false),
            tag::TRUE => s.serialize_bool(true),
            tag::I8 => s.serialize_i64(i8::from_le_bytes(c.array()?).into()),
            tag::I32 => s.serialize_i64(i32::from_le_bytes(c.array()?).into()),
            tag::I64 => s.serialize_i64(i64::from_le_bytes(c.array()?)),
            tag::U8 => s.serialize_u64(u8::from_le_bytes(c.array()?).into()),
            tag::U32 => s.serialize_u64(u32::from_le_bytes(c.array()?).into()),
            tag::U64 => s.serialize_u64(u64::from_le_bytes(c.array()?)),
            tag::I128 => s.serialize_i128(i128::from_le_bytes(c.array()?)),
            tag::U128 => s.serialize_u128(u128::from_le_bytes(c.array()?)),
            tag::F32 => s.serialize_f32(f32::from_le_bytes(c.array()?)),
            tag::F64 => s.serialize_f64(f64::from_le_bytes(c.array()?)),
            tag::STR => s.serialize_str(c.str()?),
            tag::BYTES => s.serialize_bytes(c.sized()?),
            tag::RAW => {
                let raw: &serde_json::value::RawValue = serde_json::from_str(c.str()?)
                    .map_err(|_| ser::Error::custom("a recorded RawValue was not JSON"))?;
                raw.serialize(s)
            }
            tag::SEQ => {
                let mut seq = s.serialize_seq(None)?;
                while !c.at_end()? {
                    seq.serialize_element(&Value(c))?;
                }
                seq.end()
            }
            tag::MAP => {
                let mut map = s.serialize_map(None)?;
                while !c.at_end()? {
                    map.serialize_key(&Value(c))?;
                    map.serialize_value(&Value(c))?;
                }
                map.end()
            }
            _ => Err(ser::Error::custom("a recorded value had an unknown tag")),
        }
    }
}

/// Where the value that starts at `at` ends, or `None` when the tape is cut short or holds an
/// unknown tag.
fn end_of(tape: &[u8], mut at: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        let tag = *tape.get(at)?;
        at += 1;
        match tag {
            tag::UNIT | tag::FALSE | tag::TRUE => {}
            tag::I8 | tag::U8 => at += 1,
            tag::F32 | tag::I32 | tag::U32 => at += 4,
            tag::I64 | tag::U64 | tag::F64 => at += 8,
            tag::I128 | tag::U128 => at += 16,
            tag::STR | tag::BYTES | tag::RAW => {
                let len = u32::from_le_bytes(tape.get(at..at + 4)?.try_into().ok()?);
                at += 4 + len as usize;
            }
            tag::SEQ | tag::MAP => depth += 1,
            tag::END => depth = depth.checked_sub(1)?,
            _ => return None,
        }
        if depth == 0 {
            return (at <= tape.len()).then_some(at);
        }
    }
}

/// The keys and values of the object `tape` holds (one an [`ObjectTape`](super::ObjectTape)
/// made), or `None` when it holds something else.
pub(crate) fn entries(tape: &[u8]) -> Option<Vec<(String, Tape)>> {
    let mut out = Vec::new();
    if tape.first() != Some(&tag::MAP) {
        return None;
    }
    let mut at = 1;
    loop {
        match *tape.get(at)? {
            tag::END => return (at + 1 == tape.len()).then_some(out),
            tag::STR => {
                let len = u32::from_le_bytes(tape.get(at + 1..at + 5)?.try_into().ok()?);
                let key = tape.get(at + 5..at + 5 + len as usize)?;
                let key = std::str::from_utf8(key).ok()?.to_owned();
                at += 5 + len as usize;
                let end = end_of(tape, at)?;
                out.push((key, Tape::from_bytes(tape[at..end].to_vec())));
                at = end;
            }
            _ => return None,
        }
    }
}
