//! The writer's common way from a tape to JSON: serde_json's [`Formatter`] called straight
//! from the tape, without a `Serialize` replay.
//!
//! [`replay`](super::replay) drives a `serde_json::Serializer` through the same calls the
//! value's `Serialize` made, which is exact but slow: a `Serialize` impl per value, serde_json's
//! map and sequence states, a `str::from_utf8` per string, and an escape table looked up per
//! byte. The writer thread spent more than half its time there (a step's ~170-byte argument:
//! ~5,700 instructions of ~10,800 per step). Most recorded values hold nothing that needs more
//! than this module does: strings with nothing to escape, string keys, finite and non-finite
//! numbers, booleans, nulls, sequences and maps. For those, [`write`] makes serde_json's own
//! [`CompactFormatter`] write the same bytes `serde_json::to_string` would, and the caller
//! checks the whole text is UTF-8 once.
//!
//! Anything else gives `None`, and the caller replays the tape instead (the same JSON, or the
//! same error, as before): a string with a byte serde_json escapes (`"`, `\`, a control
//! character), a key that is not a string (serde_json quotes some, numbers and booleans, and
//! refuses the rest), bytes, 128-bit integers, raw JSON, a tape cut short or nested deeper
//! than 128 levels. So this module never decides what JSON a value has; it only skips work
//! where the answer cannot differ.

use super::record::MAX_DEPTH;
use super::tag;
use serde_json::ser::{CompactFormatter, Formatter};

/// Where the value being written sits.
#[derive(Clone, Copy)]
enum Slot {
    /// An element of a sequence (`first`: no element before it).
    Element { first: bool },
    /// A key of a map.
    Key { first: bool },
    /// The value of a map's entry.
    Value,
}

/// Appends the JSON of the one value `tape` holds to `out`, as `serde_json::to_string` of the
/// recorded value would write it, or returns `None` (`out` then holds a part of it) when the
/// tape holds something only the replay writes (see the [module docs](self)). The strings are
/// copied as they are: the caller checks that `out` is UTF-8.
pub(super) fn write(tape: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut f = CompactFormatter;
    // The JSON is about as long as the tape (a string's 5-byte head against its quotes and
    // separators); most values then fit without growing `out`.
    out.reserve(tape.len() + 64);
    let start = out.len();
    // The quotes around the strings written: a string that held a quote shows in the count.
    let mut quotes = 0usize;
    let mut at = 0;
    // The containers the cursor is in, innermost last, and where the next value goes.
    // (A fixed 128-slot array instead cost ~130 more instructions per root step than this
    // Vec's one allocation: callgrind, benches/examples/instructions step_root.)
    let mut open: Vec<Slot> = Vec::new();
    loop {
        let t = *tape.get(at)?;
        at += 1;
        if t == tag::END {
            match open.pop()? {
                Slot::Element { .. } => f.end_array(out).ok()?,
                Slot::Key { .. } => f.end_object(out).ok()?,
                // A map closed between a key and its value.
                Slot::Value => return None,
            }
            if !end_of_value(&mut f, out, &mut open)? {
                break;
            }
            continue;
        }
        match open.last_mut() {
            Some(Slot::Element { first }) => {
                f.begin_array_value(out, *first).ok()?;
                *first = false;
            }
            Some(Slot::Key { first }) => {
                // serde_json writes other keys (numbers) as strings, or refuses them.
                if t != tag::STR {
                    return None;
                }
                f.begin_object_key(out, *first).ok()?;
                *first = false;
            }
            Some(Slot::Value) => f.begin_object_value(out).ok()?,
            None => {}
        }
        match t {
            tag::UNIT => f.write_null(out).ok()?,
            tag::FALSE => f.write_bool(out, false).ok()?,
            tag::TRUE => f.write_bool(out, true).ok()?,
            tag::I8 => f
                .write_i64(out, i8::from_le_bytes(take(tape, &mut at)?).into())
                .ok()?,
            tag::I32 => f
                .write_i64(out, i32::from_le_bytes(take(tape, &mut at)?).into())
                .ok()?,
            tag::I64 => f
                .write_i64(out, i64::from_le_bytes(take(tape, &mut at)?))
                .ok()?,
            tag::U8 => f
                .write_u64(out, u8::from_le_bytes(take(tape, &mut at)?).into())
                .ok()?,
            tag::U32 => f
                .write_u64(out, u32::from_le_bytes(take(tape, &mut at)?).into())
                .ok()?,
            tag::U64 => f
                .write_u64(out, u64::from_le_bytes(take(tape, &mut at)?))
                .ok()?,
            // serde_json writes a NaN or an infinity as `null`.
            tag::F32 => match f32::from_le_bytes(take(tape, &mut at)?) {
                v if v.is_finite() => f.write_f32(out, v).ok()?,
                _ => f.write_null(out).ok()?,
            },
            tag::F64 => match f64::from_le_bytes(take(tape, &mut at)?) {
                v if v.is_finite() => f.write_f64(out, v).ok()?,
                _ => f.write_null(out).ok()?,
            },
            tag::STR => {
                let len = u32::from_le_bytes(take(tape, &mut at)?) as usize;
                let text = tape.get(at..at.checked_add(len)?)?;
                at += len;
                f.begin_string(out).ok()?;
                out.extend_from_slice(text);
                f.end_string(out).ok()?;
                quotes += 2;
            }
            tag::SEQ | tag::MAP => {
                if open.len() >= MAX_DEPTH as usize {
                    return None;
                }
                if t == tag::SEQ {
                    f.begin_array(out).ok()?;
                    open.push(Slot::Element { first: true });
                } else {
                    f.begin_object(out).ok()?;
                    open.push(Slot::Key { first: true });
                }
                continue;
            }
            _ => return None,
        }
        if !end_of_value(&mut f, out, &mut open)? {
            break;
        }
    }
    (at == tape.len() && !escapes_needed(&out[start..], quotes)).then_some(())
}

/// Moves the slot on past a value just written; `Some(false)` when it was the top-level one.
#[inline]
fn end_of_value(f: &mut CompactFormatter, out: &mut Vec<u8>, open: &mut [Slot]) -> Option<bool> {
    match open.last_mut() {
        None => Some(false),
        Some(Slot::Element { .. }) => {
            f.end_array_value(out).ok()?;
            Some(true)
        }
        Some(slot @ Slot::Key { .. }) => {
            f.end_object_key(out).ok()?;
            *slot = Slot::Value;
            Some(true)
        }
        Some(slot @ Slot::Value) => {
            f.end_object_value(out).ok()?;
            *slot = Slot::Key { first: false };
            Some(true)
        }
    }
}

/// The next `N` bytes of the tape.
#[inline]
fn take<const N: usize>(tape: &[u8], at: &mut usize) -> Option<[u8; N]> {
    let bytes = tape.get(*at..at.checked_add(N)?)?;
    *at += N;
    bytes.try_into().ok()
}

/// Whether a string copied into `json` (written with `quotes` quotes of its own) held a byte
/// serde_json escapes: a control character or `\` (which nothing else writes), or a `"`
/// (more quotes than the strings' own). Checked once over the whole text, where the compiler
/// checks many bytes per instruction, rather than string by string (most are a few bytes).
fn escapes_needed(json: &[u8], quotes: usize) -> bool {
    /// What one run of bytes holds: a control character or `\` (non-zero), and quotes.
    #[inline(always)]
    fn scan(bytes: &[u8]) -> (u8, usize) {
        let (mut special, mut quotes) = (0u8, 0u8);
        for &b in bytes {
            special |= u8::from(b < 0x20) | u8::from(b == b'\\');
            quotes += u8::from(b == b'"');
        }
        (special, usize::from(quotes))
    }
    // Runs of a fixed length, which the compiler turns into vector instructions.
    let mut chunks = json.chunks_exact(32);
    let (mut special, mut seen) = scan(chunks.remainder());
    for chunk in &mut chunks {
        let (s, q) = scan(chunk);
        special |= s;
        seen += q;
    }
    special != 0 || seen != quotes
}
