//! What a step records of a value, kept as the calls its `Serialize` made: a *tape*.
//!
//! A step's arguments, its result, its filters and its metadata become JSON in the database,
//! but the JSON is not written on the thread that records them. That thread runs the value's
//! `Serialize` into a [`Tape`]: one tag byte per call and its payload, strings copied as they
//! are. The writer thread turns the tape into JSON ([`to_json`]) with `serde_json`, which escapes
//! the strings and formats the numbers there, off the program's thread: through serde_json's
//! formatter straight from the tape where nothing needs escaping ([`json`]), else by replaying
//! the tape into a `serde_json::Serializer`. The JSON is the same, byte
//! for byte, as `serde_json::to_string` of the value: the replay makes the same calls, in the
//! same order, with the same strings and numbers (integers widened to 64 bits, which
//! serde_json writes the same way). Where serde_json would have failed, the tape fails too, if
//! not always with the same message (it goes on past a map key serde_json refuses, and finds
//! out on the writer thread). Two differences, both where serde_json's own output is wrong or
//! unreadable: a `Serialize` that announces a wrong length still gives valid JSON, and a value
//! nested deeper than [`record::MAX_DEPTH`] (128, what serde_json reads back) is recorded as a
//! string that says so.
//!
//! Why not JSON at once: escaping and number formatting are most of what serializing costs
//! (`benches/README.md`, "Values recorded as tapes"), and a step's own thread is the one whose
//! time X-Ray must not take. Why not an existing binary format: MessagePack through
//! `rmp-serde` writes a unit struct as `[]` and an `i128` as bytes, loses a `RawValue`, and
//! buffers maps of unknown length (`#[serde(flatten)]`); a replay through it would not give
//! serde_json's JSON back.
//!
//! | tag | payload | replayed as |
//! |---|---|---|
//! | `UNIT` | | `serialize_unit` (`()`, `None`, a unit struct: `null`) |
//! | `FALSE`, `TRUE` | | `serialize_bool` |
//! | `I8`, `I32`, `I64` | 1, 4 or 8 bytes | `serialize_i64` (any signed integer, in the fewest bytes that hold it) |
//! | `U8`, `U32`, `U64` | 1, 4 or 8 bytes | `serialize_u64` (likewise) |
//! | `I128`, `U128` | 16 bytes | `serialize_i128`, `serialize_u128` |
//! | `F32`, `F64` | 4 or 8 bytes | `serialize_f32`, `serialize_f64` |
//! | `STR` | length (4 bytes), UTF-8 | `serialize_str` (also chars and unit variants) |
//! | `BYTES` | length (4 bytes), bytes | `serialize_bytes` |
//! | `SEQ` … `END` | values | a sequence (also tuples) |
//! | `MAP` … `END` | keys and values | a map (also structs; an enum variant with content is a one-entry map around it, as serde_json writes it) |
//! | `RAW` | length (4 bytes), JSON | a serde_json `RawValue` (or `Number`, with its `arbitrary_precision` feature) |
//!
//! Lengths and numbers are little-endian. A `Serialize` that fails or panics leaves no partial
//! value: the tape then holds a string that says so, as [`Json::from_serialize`] would.

mod json;
pub(crate) mod record;
mod replay;

use crate::model::Json;
use serde::Serialize;
use std::fmt;

pub(crate) use replay::entries;

/// The tags of a tape (see the module's table).
pub(crate) mod tag {
    pub(crate) const UNIT: u8 = 0;
    pub(crate) const FALSE: u8 = 1;
    pub(crate) const TRUE: u8 = 2;
    pub(crate) const I64: u8 = 3;
    pub(crate) const U64: u8 = 4;
    pub(crate) const I128: u8 = 5;
    pub(crate) const U128: u8 = 6;
    pub(crate) const F32: u8 = 7;
    pub(crate) const F64: u8 = 8;
    pub(crate) const STR: u8 = 9;
    pub(crate) const BYTES: u8 = 10;
    pub(crate) const SEQ: u8 = 11;
    pub(crate) const MAP: u8 = 12;
    pub(crate) const END: u8 = 13;
    pub(crate) const RAW: u8 = 14;
    pub(crate) const I8: u8 = 15;
    pub(crate) const I32: u8 = 16;
    pub(crate) const U8: u8 = 17;
    pub(crate) const U32: u8 = 18;
}

/// One value, recorded for JSON: see the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct Tape(Vec<u8>);

impl Tape {
    /// Records `value` through its `Serialize`. One that fails is kept as a string naming the
    /// error, one that panics as a string with the panic's message (counted for a
    /// [`Watch`](crate::unwind::Watch)), as [`Json::from_serialize`] does.
    #[inline]
    pub(crate) fn of<T: Serialize + ?Sized>(value: &T) -> Tape {
        let mut tape = Tape(crate::recycle::take_buffer());
        tape.push(value);
        tape
    }

    /// Appends `value` (see [`Tape::of`]).
    #[inline]
    pub(crate) fn push<T: Serialize + ?Sized>(&mut self, value: &T) {
        let at = self.0.len();
        match crate::unwind::guarded("Serialize", || record::record(&mut self.0, value)) {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                self.0.truncate(at);
                self.push_str(&format!("<not serializable: {err}>"));
            }
            Err(panic) => {
                self.0.truncate(at);
                self.push_str(&format!("<not recorded: {panic}>"));
            }
        }
    }

    /// Records `value`'s `Debug` text as a string; a `Debug` that panics is caught, as in
    /// [`Tape::of`].
    pub(crate) fn debug<T: fmt::Debug + ?Sized>(value: &T) -> Tape {
        let mut tape = Tape(crate::recycle::take_buffer());
        tape.push_debug(value);
        tape
    }

    /// Appends `value`'s `Debug` text (see [`Tape::debug`]).
    pub(crate) fn push_debug<T: fmt::Debug + ?Sized>(&mut self, value: &T) {
        let at = self.0.len();
        let recorded = crate::unwind::guarded("Debug", || {
            record::record_display(&mut self.0, format_args!("{value:?}"))
        });
        let failed = match recorded {
            Ok(Ok(())) => return,
            Ok(Err(err)) => format!("<not recorded: {err}>"),
            Err(panic) => format!("<not recorded: {panic}>"),
        };
        self.0.truncate(at);
        self.push_str(&failed);
    }

    /// A string.
    pub(crate) fn string(text: &str) -> Tape {
        let mut tape = Tape(Vec::with_capacity(text.len() + 5));
        tape.push_str(text);
        tape
    }

    #[inline]
    fn push_str(&mut self, text: &str) {
        push_str(&mut self.0, text);
    }

    /// An object with `entries` as its keys and values, in order.
    #[cfg(test)]
    pub(crate) fn object<'a>(entries: impl IntoIterator<Item = (&'a str, &'a Tape)>) -> Tape {
        let mut object = ObjectTape::new();
        for (key, value) in entries {
            object.push(key, value);
        }
        object.finish()
    }

    /// The recorded bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A tape from bytes a [`Tape`] gave (the writer's copy of one, from a lane).
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Tape {
        Tape(bytes)
    }

    /// The recorded bytes, to reuse their memory.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The JSON this tape replays to.
    pub(crate) fn to_json(&self) -> Json {
        to_json(&self.0, Vec::new())
    }
}

impl fmt::Debug for Tape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tape({})", self.to_json())
    }
}

/// An object built key by key, in one buffer.
pub(crate) struct ObjectTape(Tape);

impl ObjectTape {
    pub(crate) fn new() -> ObjectTape {
        let mut bytes = crate::recycle::take_buffer();
        bytes.push(tag::MAP);
        ObjectTape(Tape(bytes))
    }

    /// Appends the entry `key`: `value`.
    pub(crate) fn push(&mut self, key: &str, value: &Tape) {
        self.0.push_str(key);
        self.0 .0.extend_from_slice(value.as_bytes());
    }

    /// Appends the entry `key`, and returns the tape for its value, to record it in place.
    #[inline]
    pub(crate) fn entry(&mut self, key: &str) -> &mut Tape {
        self.0.push_str(key);
        &mut self.0
    }

    pub(crate) fn finish(mut self) -> Tape {
        self.0 .0.push(tag::END);
        self.0
    }
}

/// Appends a string; one too long for a tape's length is cut (at a char boundary).
#[inline]
fn push_str(tape: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(u32::MAX as usize);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    tape.reserve(5 + end);
    tape.push(tag::STR);
    tape.extend_from_slice(&(end as u32).to_le_bytes());
    tape.extend_from_slice(&text.as_bytes()[..end]);
}

/// Replays `tape` into JSON, written into `buf` (emptied first; its memory is reused). A tape
/// that serde_json refuses (a map whose keys are not strings or numbers) gives a string
/// naming the error, as [`Json::from_serialize`] does for the same value.
pub(crate) fn to_json(tape: &[u8], mut buf: Vec<u8>) -> Json {
    buf.clear();
    // Most tapes: serde_json's formatter called straight from the tape, the text checked
    // once. The rest, and any tape that is not valid, are replayed.
    if json::write(tape, &mut buf).is_some() {
        match String::from_utf8(buf) {
            Ok(text) => return Json::from_trusted(text),
            Err(err) => buf = err.into_bytes(),
        }
    }
    buf.clear();
    match replay::replay(tape, &mut serde_json::Serializer::new(&mut buf)) {
        // SAFETY: `buf` was emptied and then written only by serde_json, which writes UTF-8
        // and nothing else: every string it is given is a `&str` (the replay checks each
        // recorded string with `str::from_utf8`, and a `RawValue`'s text is parsed), and
        // everything else it writes is ASCII. A replay that failed half way is not used.
        // (`serde_json::to_string` relies on the same.)
        Ok(()) => Json::from_trusted(unsafe { String::from_utf8_unchecked(buf) }),
        Err(err) => Json::string(&format!("<not serializable: {err}>")),
    }
}

#[cfg(test)]
mod tests;
