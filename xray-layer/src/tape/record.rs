//! Recording a value's `Serialize` calls into a tape (on the thread that records it).

use super::tag;
use serde::ser::{self, Serialize};
use std::fmt;

/// Why a value could not be recorded: its `Serialize` reported an error of its own (the
/// message it gave), or a string or byte array was longer than a tape can hold.
#[derive(Debug)]
pub struct RecordError(pub(crate) String);

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

impl ser::Error for RecordError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        RecordError(msg.to_string())
    }
}

/// The names serde_json gives the structs a `RawValue` and (with its `arbitrary_precision`
/// feature, which any crate of a program can turn on) a `Number` serialize as. serde_json
/// writes such a struct's one field, a string, as JSON text; so does the tape.
const RAW_TOKENS: [&str; 2] = [
    "$serde_json::private::RawValue",
    "$serde_json::private::Number",
];

/// How deeply sequences and maps nest in a value at most. serde_json reads no deeper (its
/// recursion limit), and the writer thread replays a tape recursively on a stack of its own:
/// a deeper value is recorded as a string that says so.
pub(crate) const MAX_DEPTH: u32 = 128;

/// Appends the serde calls of one value to `tape`. On an error, `tape` holds a partial value
/// and must be cut back by the caller.
pub(crate) fn record<T: Serialize + ?Sized>(
    tape: &mut Vec<u8>,
    value: &T,
) -> Result<(), RecordError> {
    value.serialize(&mut Recorder { tape, depth: 0 })
}

/// Appends a string: what `text` formats to, written straight into the tape.
pub(crate) fn record_display(
    tape: &mut Vec<u8>,
    text: fmt::Arguments<'_>,
) -> Result<(), RecordError> {
    struct Adapter<'v>(&'v mut Vec<u8>);
    impl fmt::Write for Adapter<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    let at = tape.len();
    tape.extend_from_slice(&[tag::STR, 0, 0, 0, 0]);
    if fmt::write(&mut Adapter(tape), text).is_err() {
        tape.truncate(at);
        return Err(RecordError(
            "a `Display` or `Debug` implementation returned an error".into(),
        ));
    }
    let len = tape.len() - at - 5;
    let Ok(len) = u32::try_from(len) else {
        tape.truncate(at);
        return Err(RecordError(format!(
            "a value of {len} bytes is too long to record"
        )));
    };
    tape[at + 1..at + 5].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// A `serde::Serializer` that writes a tape.
pub(crate) struct Recorder<'t> {
    tape: &'t mut Vec<u8>,
    /// Sequences and maps open around what it records.
    depth: u32,
}

impl Recorder<'_> {
    #[inline]
    fn tag(&mut self, tag: u8) {
        self.tape.push(tag);
    }

    #[inline]
    fn fixed<const N: usize>(&mut self, tag: u8, bytes: [u8; N]) {
        // One copy of tag and payload (N is 4, 8 or 16).
        let mut record = [0u8; 17];
        record[0] = tag;
        record[1..=N].copy_from_slice(&bytes);
        self.tape.extend_from_slice(&record[..=N]);
    }

    #[inline]
    fn bytes(&mut self, tag: u8, bytes: &[u8]) -> Result<(), RecordError> {
        let Ok(len) = u32::try_from(bytes.len()) else {
            return Err(too_long(bytes.len()));
        };
        let [a, b, c, d] = len.to_le_bytes();
        self.tape.reserve(5 + bytes.len());
        self.tape.extend_from_slice(&[tag, a, b, c, d]);
        self.tape.extend_from_slice(bytes);
        Ok(())
    }
}

#[cold]
fn not_json_text() -> RecordError {
    RecordError("invalid raw value".into())
}

#[cold]
fn too_long(len: usize) -> RecordError {
    RecordError(format!("a value of {len} bytes is too long to record"))
}

/// A recorder for what `levels` more sequences or maps hold, unless that is too deep.
#[inline]
fn deeper<'a>(rec: &'a mut Recorder<'_>, levels: u32) -> Result<Recorder<'a>, RecordError> {
    let depth = rec.depth + levels;
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(Recorder {
        tape: &mut *rec.tape,
        depth,
    })
}

#[cold]
fn too_deep() -> RecordError {
    RecordError(format!(
        "sequences and maps nest deeper than {MAX_DEPTH} levels"
    ))
}

/// A compound whose content is `levels` deeper, closed by `levels` END tags.
#[inline]
fn compound<'a>(rec: &'a mut Recorder<'_>, levels: u32) -> Result<Compound<'a>, RecordError> {
    Ok(Compound {
        rec: deeper(rec, levels)?,
        ends: levels as u8,
    })
}

/// [`Compound::ends`] of serde_json's struct around JSON text (see [`RAW_TOKENS`]) whose one
/// field is still to come; then [`RAW_RECORDED`].
const RAW_EXPECTED: u8 = u8::MAX;
const RAW_RECORDED: u8 = u8::MAX - 1;

/// A sequence, map or struct being recorded: `ends` END tags close it (two for an enum
/// variant, which is a one-entry map around its content), or it is serde_json's struct
/// around JSON text ([`RAW_EXPECTED`], [`RAW_RECORDED`]).
pub(crate) struct Compound<'a> {
    rec: Recorder<'a>,
    ends: u8,
}

impl<'a> ser::Serializer for &'a mut Recorder<'_> {
    type Ok = ();
    type Error = RecordError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), RecordError> {
        self.tag(if v { tag::TRUE } else { tag::FALSE });
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), RecordError> {
        self.serialize_i64(i64::from(v))
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), RecordError> {
        self.serialize_i64(i64::from(v))
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), RecordError> {
        self.serialize_i64(i64::from(v))
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), RecordError> {
        // Small numbers in fewer bytes: a list of bytes stays about the size of its JSON.
        if let Ok(v) = i8::try_from(v) {
            self.fixed(tag::I8, v.to_le_bytes());
        } else if let Ok(v) = i32::try_from(v) {
            self.fixed(tag::I32, v.to_le_bytes());
        } else {
            self.fixed(tag::I64, v.to_le_bytes());
        }
        Ok(())
    }
    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), RecordError> {
        self.fixed(tag::I128, v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), RecordError> {
        self.serialize_u64(u64::from(v))
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), RecordError> {
        self.serialize_u64(u64::from(v))
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), RecordError> {
        self.serialize_u64(u64::from(v))
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), RecordError> {
        if let Ok(v) = u8::try_from(v) {
            self.fixed(tag::U8, v.to_le_bytes());
        } else if let Ok(v) = u32::try_from(v) {
            self.fixed(tag::U32, v.to_le_bytes());
        } else {
            self.fixed(tag::U64, v.to_le_bytes());
        }
        Ok(())
    }
    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), RecordError> {
        self.fixed(tag::U128, v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), RecordError> {
        self.fixed(tag::F32, v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), RecordError> {
        self.fixed(tag::F64, v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_char(self, v: char) -> Result<(), RecordError> {
        self.bytes(tag::STR, v.encode_utf8(&mut [0; 4]).as_bytes())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), RecordError> {
        self.bytes(tag::STR, v.as_bytes())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), RecordError> {
        self.bytes(tag::BYTES, v)
    }
    #[inline]
    fn serialize_none(self) -> Result<(), RecordError> {
        self.tag(tag::UNIT);
        Ok(())
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), RecordError> {
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Result<(), RecordError> {
        self.tag(tag::UNIT);
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), RecordError> {
        self.tag(tag::UNIT);
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), RecordError> {
        self.serialize_str(variant)
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), RecordError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), RecordError> {
        self.tag(tag::MAP);
        self.bytes(tag::STR, variant.as_bytes())?;
        value.serialize(&mut deeper(self, 1)?)?;
        self.tag(tag::END);
        Ok(())
    }
    #[inline]
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, RecordError> {
        self.tag(tag::SEQ);
        compound(self, 1)
    }
    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a>, RecordError> {
        self.tag(tag::SEQ);
        compound(self, 1)
    }
    #[inline]
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, RecordError> {
        self.tag(tag::SEQ);
        compound(self, 1)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, RecordError> {
        self.tag(tag::MAP);
        self.bytes(tag::STR, variant.as_bytes())?;
        self.tag(tag::SEQ);
        compound(self, 2)
    }
    #[inline]
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, RecordError> {
        self.tag(tag::MAP);
        compound(self, 1)
    }
    #[inline]
    fn serialize_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, RecordError> {
        if RAW_TOKENS.contains(&name) {
            let mut raw = compound(self, 0)?;
            raw.ends = RAW_EXPECTED;
            return Ok(raw);
        }
        self.tag(tag::MAP);
        compound(self, 1)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, RecordError> {
        self.tag(tag::MAP);
        self.bytes(tag::STR, variant.as_bytes())?;
        self.tag(tag::MAP);
        compound(self, 2)
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), RecordError> {
        record_display(self.tape, format_args!("{value}"))
    }
}

impl Compound<'_> {
    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), RecordError> {
        value.serialize(&mut self.rec)
    }

    #[inline]
    fn key(&mut self, key: &'static str) -> Result<(), RecordError> {
        self.rec.bytes(tag::STR, key.as_bytes())
    }

    /// The one field of serde_json's struct around JSON text: a string, kept as JSON. serde_json
    /// refuses anything else in such a struct.
    #[cold]
    fn raw_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), RecordError> {
        if self.ends != RAW_EXPECTED || !RAW_TOKENS.contains(&key) {
            return Err(not_json_text());
        }
        let at = self.rec.tape.len();
        self.element(value)?;
        if self.rec.tape.get(at) != Some(&tag::STR) {
            return Err(not_json_text());
        }
        self.rec.tape[at] = tag::RAW;
        self.ends = RAW_RECORDED;
        Ok(())
    }

    #[inline]
    fn end(mut self) -> Result<(), RecordError> {
        match self.ends {
            RAW_EXPECTED => return Err(not_json_text()),
            RAW_RECORDED => return Ok(()),
            _ => {}
        }
        for _ in 0..self.ends {
            self.rec.tag(tag::END);
        }
        Ok(())
    }
}

/// The compounds whose items are values, one after another: each item is recorded as it
/// comes.
macro_rules! compound_of_values {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = RecordError;
            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), RecordError> {
                self.element(value)
            }
            #[inline]
            fn end(self) -> Result<(), RecordError> {
                Compound::end(self)
            }
        }
    )*};
}

compound_of_values!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = RecordError;
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), RecordError> {
        self.element(key)
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), RecordError> {
        self.element(value)
    }
    #[inline]
    fn end(self) -> Result<(), RecordError> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = RecordError;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), RecordError> {
        if self.ends >= RAW_RECORDED {
            return self.raw_field(key, value);
        }
        self.key(key)?;
        self.element(value)
    }
    #[inline]
    fn end(self) -> Result<(), RecordError> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = RecordError;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), RecordError> {
        self.key(key)?;
        self.element(value)
    }
    #[inline]
    fn end(self) -> Result<(), RecordError> {
        Compound::end(self)
    }
}
