//! The records a recording thread writes into its lane, as bytes, and the writer's reading of
//! them.
//!
//! A step's start and end, and an execution's, are encoded on the thread that makes them, into
//! that thread's lane ([`super::lane`]): the writer thread never reads a step's or an
//! execution's shared state, so the application threads never wait for cache lines the writer
//! touched last. Each record is
//!
//! | bytes | what |
//! |---|---|
//! | 4 | the length of what follows (tag, side count, fields) |
//! | 1 | the tag: execution start or end, step start or end, or a big record |
//! | 1 | how many items of the lane's side queue belong to it (an evaluation arena, a big record) |
//! | … | the fields, in the order of the `encode_*` functions |
//!
//! Strings are a `u32` length and UTF-8 bytes (`u32::MAX` for an absent one); a recorded value
//! is its [`Tape`]'s bytes, the same way, and the writer replays it into JSON as it reads it. A step's end
//! says which of its optional fields follow in a bit set: most steps set few. A record larger
//! than the lane's share for one record is moved whole into the side queue, and only its header
//! (tag `BIG`) goes through the bytes.

use crate::capture::Capture;
use crate::model::{Json, LogLine, Selection, Status};
use crate::recorder::arena::EvalArena;
use crate::recorder::state::{Outcome, StepBuffer};
use crate::tape::Tape;
use uuid::Uuid;

pub(crate) const EXECUTION_START: u8 = 1;
pub(crate) const EXECUTION_END: u8 = 2;
pub(crate) const STEP_START: u8 = 3;
pub(crate) const STEP_END: u8 = 4;
/// A record moved whole into the side queue.
pub(crate) const BIG: u8 = 5;
/// A root step's start, which starts the implicit execution it runs in (named after the
/// step, with no tags): the fields of a [`STEP_START`]. The writer makes both records of it,
/// so a root step costs the recording thread one record less.
pub(crate) const ROOT_STEP_START: u8 = 6;
/// A root step's end, which ends its implicit execution (with the step's status, error and
/// end time): the fields of a [`STEP_END`], then the execution's count of dropped records.
pub(crate) const ROOT_STEP_END: u8 = 7;

/// A flag on the tag of a step's end ([`STEP_END`], [`ROOT_STEP_END`]): the step's start was
/// the last step start its lane carried (not moved into the side queue), and the end carries
/// only the step's id for its head. The writer keeps the fields of each lane's last step start
/// and reads the head from them: a leaf step (most steps) does not copy its ids, start time,
/// name and kind twice.
pub(crate) const HEAD_OF_LAST_START: u8 = 0x80;

/// How many records a lane record with `tag` holds (what the counts of records sent, written
/// and failed count).
pub(crate) fn records_in(tag: u8) -> u64 {
    match tag & !HEAD_OF_LAST_START {
        ROOT_STEP_START | ROOT_STEP_END => 2,
        _ => 1,
    }
}

/// The bytes of a record before its fields.
pub(crate) const HEADER: usize = 6;

/// What a record carries beside its bytes, through the lane's side queue.
#[derive(Debug)]
pub(crate) enum Side {
    /// A step's evaluations.
    Arena(EvalArena),
    /// A whole record too large for the bytes.
    Big(Vec<u8>),
}

/// Writes one record: [`Encoder::begin`], the fields, [`Encoder::finish`].
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    pub(crate) bytes: Vec<u8>,
    pub(crate) sides: Vec<Side>,
}

impl Encoder {
    pub(crate) fn begin(&mut self, tag: u8) {
        self.bytes.clear();
        self.sides.clear();
        self.bytes.extend_from_slice(&[0, 0, 0, 0, tag, 0]);
    }

    /// Sets the length and the side count.
    pub(crate) fn finish(&mut self) {
        let len = (self.bytes.len() - 4) as u32;
        self.bytes[..4].copy_from_slice(&len.to_le_bytes());
        self.bytes[5] = self.sides.len() as u8;
    }

    /// The record moved into the side queue, with a header in the bytes instead.
    pub(crate) fn make_big(&mut self) {
        let whole = std::mem::take(&mut self.bytes);
        let sides = std::mem::take(&mut self.sides);
        self.begin(BIG);
        // The record first: its own side items follow it, as its reader takes them.
        self.sides.push(Side::Big(whole));
        self.sides.extend(sides);
        self.finish();
    }

    fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }

    fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    fn uuid(&mut self, v: Uuid) {
        self.bytes.extend_from_slice(v.as_bytes());
    }

    fn str(&mut self, s: &str) {
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX - 1);
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(&s.as_bytes()[..len as usize]);
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.bytes.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }

    fn tape(&mut self, tape: &Tape) {
        let bytes = tape.as_bytes();
        // A tape over 4 GiB is cut, and replays as a string that says so.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX - 1);
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(&bytes[..len as usize]);
    }

    fn opt_tape(&mut self, tape: Option<&Tape>) {
        match tape {
            Some(tape) => self.tape(tape),
            None => self.bytes.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }

    /// Key and value pairs (metadata), later keys winning when the writer reads them.
    fn pairs(&mut self, pairs: &[(String, Tape)]) {
        self.len(pairs.len());
        for (key, value) in pairs {
            self.str(key);
            self.tape(value);
        }
    }

    fn len(&mut self, n: usize) {
        self.bytes
            .extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    }

    fn status(&mut self, s: Option<Status>) {
        self.u8(match s {
            None => 0,
            Some(Status::Running) => 1,
            Some(Status::Ok) => 2,
            Some(Status::Error) => 3,
            Some(Status::Lost) => 4,
        });
    }

    fn capture(&mut self, c: Capture) {
        match c {
            Capture::All => self.u8(0),
            Capture::Cap(n) => {
                self.u8(1);
                self.u64(n as u64);
            }
            Capture::Summary => self.u8(2),
        }
    }
}

/// A step's identity, as its start and end records carry it.
#[derive(Debug)]
pub(crate) struct StepHead<'a> {
    pub(crate) id: Uuid,
    pub(crate) execution_id: Uuid,
    pub(crate) parent_id: Option<Uuid>,
    pub(crate) started_at: i64,
    pub(crate) name: &'a str,
    pub(crate) kind: Option<&'a str>,
}

impl Encoder {
    fn step_head(&mut self, head: &StepHead<'_>) {
        // The fixed part in one copy of a known size (no call per field).
        let mut fixed = [0u8; 57];
        fixed[..16].copy_from_slice(head.id.as_bytes());
        fixed[16..32].copy_from_slice(head.execution_id.as_bytes());
        if let Some(parent) = head.parent_id {
            fixed[32] = 1;
            fixed[33..49].copy_from_slice(parent.as_bytes());
        }
        fixed[49..].copy_from_slice(&head.started_at.to_le_bytes());
        self.bytes.extend_from_slice(&fixed);
        self.str(head.name);
        self.opt_str(head.kind);
    }

    /// A step's start; `root`: it starts its implicit execution too ([`ROOT_STEP_START`]).
    pub(crate) fn step_start(&mut self, head: &StepHead<'_>, root: bool) {
        self.begin(if root { ROOT_STEP_START } else { STEP_START });
        self.step_head(head);
        self.finish();
    }

    /// A step's end, with everything it recorded. The buffer's evaluations are moved into the
    /// side queue; the rest is copied, so the buffer keeps its memory for the next step.
    /// `run_dropped`: the step ends its implicit execution too, whose count of dropped records
    /// this is ([`ROOT_STEP_END`]). `last_start`: the id of the last step start the lane
    /// carried; when it is this step's, the head is left out ([`HEAD_OF_LAST_START`]).
    pub(crate) fn step_end(
        &mut self,
        head: &StepHead<'_>,
        capture: Capture,
        b: &mut StepBuffer,
        run_dropped: Option<u64>,
        last_start: Option<Uuid>,
    ) {
        let elided = last_start == Some(head.id);
        let tag = if run_dropped.is_some() {
            ROOT_STEP_END
        } else {
            STEP_END
        };
        self.begin(if elided {
            tag | HEAD_OF_LAST_START
        } else {
            tag
        });
        let json_len = |t: &Option<Tape>| t.as_ref().map_or(0, |t| t.as_bytes().len());
        self.bytes.reserve(
            96 + head.name.len()
                + head.kind.map_or(0, str::len)
                + json_len(&b.input)
                + json_len(&b.output),
        );
        if elided {
            self.uuid(head.id);
        } else {
            self.step_head(head);
        }
        self.capture(capture);
        // Which of the fields that follow are there: most steps set few of them.
        let mut flags = 0u16;
        let mut flag = |bit: u16, present: bool| {
            if present {
                flags |= 1 << bit;
            }
        };
        flag(0, b.ended_at.is_some());
        flag(1, b.status.is_some());
        flag(2, b.error.is_some());
        flag(3, b.input.is_some());
        flag(4, b.output.is_some());
        flag(5, b.filters.is_some());
        flag(6, !b.selection.is_empty());
        flag(7, b.reasoning.is_some());
        flag(8, !b.metadata.is_empty());
        flag(9, b.candidates_in.is_some());
        flag(10, b.candidates_out.is_some());
        flag(11, !b.logs.is_empty());
        flag(12, b.logs_dropped > 0);
        flag(13, b.no_result);
        flag(14, !b.evaluations.is_empty());
        self.bytes.extend_from_slice(&flags.to_le_bytes());
        if let Some(at) = b.ended_at {
            self.i64(at);
        }
        if b.status.is_some() {
            self.status(b.status);
        }
        if let Some(error) = &b.error {
            self.str(error);
        }
        for tape in [&b.input, &b.output, &b.filters].into_iter().flatten() {
            self.tape(tape);
        }
        if !b.selection.is_empty() {
            self.len(b.selection.len());
            for s in &b.selection {
                self.str(&s.candidate_id);
                self.str(&s.reason);
            }
        }
        if let Some(reasoning) = &b.reasoning {
            self.str(reasoning);
        }
        if !b.metadata.is_empty() {
            self.pairs(&b.metadata);
        }
        for n in [b.candidates_in, b.candidates_out].into_iter().flatten() {
            self.u64(n);
        }
        if !b.logs.is_empty() {
            self.len(b.logs.len());
            for line in &b.logs {
                self.i64(line.at);
                self.str(&line.level);
                self.str(&line.target);
                self.str(&line.message);
                self.str(line.fields.as_str());
            }
        }
        if b.logs_dropped > 0 {
            self.u64(b.logs_dropped);
        }
        if !b.evaluations.is_empty() {
            self.sides
                .push(Side::Arena(std::mem::take(&mut b.evaluations)));
        }
        if let Some(dropped) = run_dropped {
            self.u64(dropped);
        }
        self.finish();
    }

    pub(crate) fn execution_start(
        &mut self,
        id: Uuid,
        started_at: i64,
        name: &str,
        tags: &[String],
    ) {
        self.begin(EXECUTION_START);
        self.uuid(id);
        self.i64(started_at);
        self.str(name);
        self.len(tags.len());
        for tag in tags {
            self.str(tag);
        }
        self.finish();
    }

    /// An execution's end, from what its code reported (a missing status means it ended
    /// normally).
    pub(crate) fn execution_end(&mut self, id: Uuid, started_at: i64, o: &Outcome, dropped: u64) {
        self.begin(EXECUTION_END);
        self.uuid(id);
        self.i64(o.ended_at.unwrap_or(started_at));
        self.status(Some(o.status.unwrap_or(Status::Ok)));
        self.opt_str(o.error.as_deref());
        self.pairs(&o.metadata);
        self.opt_tape(o.input.as_ref());
        self.opt_tape(o.output.as_ref());
        self.u64(dropped);
        self.finish();
    }
}

/// Reads the fields of one record. Every read checks its bounds: a record that does not decode
/// (a bug, never the program's data) is skipped and counted as failed.
pub(crate) struct Decoder<'a> {
    bytes: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// The fields of a record, after its header.
    pub(crate) fn new(fields: &'a [u8]) -> Self {
        Decoder { bytes: fields }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_le_bytes)
    }

    fn uuid(&mut self) -> Option<Uuid> {
        Uuid::from_slice(self.take(16)?).ok()
    }

    fn opt_str(&mut self) -> Option<Option<&'a str>> {
        let len = self.u32()?;
        if len == u32::MAX {
            return Some(None);
        }
        std::str::from_utf8(self.take(len as usize)?).ok().map(Some)
    }

    fn str(&mut self) -> Option<&'a str> {
        self.opt_str()?
    }

    fn opt_tape(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.u32()?;
        if len == u32::MAX {
            return Some(None);
        }
        self.take(len as usize).map(Some)
    }

    fn tape(&mut self) -> Option<&'a [u8]> {
        self.opt_tape()?
    }

    fn pairs(&mut self, own: &mut impl Own, into: &mut Vec<(String, Json)>) -> Option<()> {
        for _ in 0..self.u32()? {
            let key = own.string(self.str()?);
            let value = own.json(self.tape()?);
            into.push((key, value));
        }
        Some(())
    }

    fn status(&mut self) -> Option<Option<Status>> {
        Some(match self.u8()? {
            0 => None,
            1 => Some(Status::Running),
            2 => Some(Status::Ok),
            3 => Some(Status::Error),
            4 => Some(Status::Lost),
            _ => return None,
        })
    }

    fn capture(&mut self) -> Option<Capture> {
        Some(match self.u8()? {
            0 => Capture::All,
            1 => Capture::Cap(usize::try_from(self.u64()?).ok()?),
            2 => Capture::Summary,
            _ => return None,
        })
    }
}

/// What the writer makes the strings and the JSON of the records it reads from: memory of its
/// own, reused.
pub(crate) trait Own {
    /// A copy of `s`.
    fn string(&mut self, s: &str) -> String;
    /// The JSON a recorded value's tape replays to.
    fn json(&mut self, tape: &[u8]) -> Json;
}

/// A step start or end as the writer reads it: the strings are the writer's own (`own` makes
/// them, from memory the writer reuses).
#[derive(Debug)]
pub(crate) struct DecodedHead {
    pub(crate) id: Uuid,
    pub(crate) execution_id: Uuid,
    pub(crate) parent_id: Option<Uuid>,
    pub(crate) started_at: i64,
    pub(crate) name: String,
    pub(crate) kind: Option<String>,
}

/// An execution's start, read.
#[derive(Debug)]
pub(crate) struct DecodedExecutionStart {
    pub(crate) id: Uuid,
    pub(crate) started_at: i64,
    pub(crate) name: String,
    pub(crate) tags: Vec<String>,
}

/// An execution's end, read.
#[derive(Debug)]
pub(crate) struct DecodedExecutionEnd {
    pub(crate) id: Uuid,
    pub(crate) completed_at: i64,
    pub(crate) status: Status,
    pub(crate) error: Option<String>,
    /// Key and value pairs, later keys winning.
    pub(crate) metadata: Vec<(String, Json)>,
    pub(crate) input: Option<Json>,
    pub(crate) output: Option<Json>,
    pub(crate) dropped: u64,
}

impl Decoder<'_> {
    /// The head of a step's end flagged [`HEAD_OF_LAST_START`]: its id here, the rest from
    /// `last_start`, the fields of the lane's last step start (`None` if that start is
    /// another step's).
    pub(crate) fn head_of_last_start(
        &mut self,
        last_start: &[u8],
        own: &mut impl Own,
    ) -> Option<DecodedHead> {
        let id = self.uuid()?;
        let head = Decoder::new(last_start).step_head(own)?;
        (head.id == id).then_some(head)
    }

    pub(crate) fn step_head(&mut self, own: &mut impl Own) -> Option<DecodedHead> {
        let id = self.uuid()?;
        let execution_id = self.uuid()?;
        let has_parent = self.u8()? != 0;
        let parent = self.uuid()?;
        Some(DecodedHead {
            id,
            execution_id,
            parent_id: has_parent.then_some(parent),
            started_at: self.i64()?,
            name: own.string(self.str()?),
            kind: self.opt_str()?.map(|kind| own.string(kind)),
        })
    }

    /// The rest of a step's end, after its head, into `b` (empty); `arena` is the side item
    /// that carries its evaluations, taken only if the record says it has one.
    pub(crate) fn step_end(
        &mut self,
        own: &mut impl Own,
        b: &mut StepBuffer<Json>,
        arena: impl FnOnce() -> Option<EvalArena>,
    ) -> Option<Capture> {
        let capture = self.capture()?;
        let flags = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        let has = |bit: u16| flags & (1 << bit) != 0;
        if has(0) {
            b.ended_at = Some(self.i64()?);
        }
        if has(1) {
            b.status = self.status()?;
        }
        if has(2) {
            b.error = Some(own.string(self.str()?));
        }
        for (bit, json) in [(3, &mut b.input), (4, &mut b.output), (5, &mut b.filters)] {
            if has(bit) {
                *json = Some(own.json(self.tape()?));
            }
        }
        if has(6) {
            for _ in 0..self.u32()? {
                let candidate_id = own.string(self.str()?);
                let reason = own.string(self.str()?);
                b.selection.push(Selection {
                    candidate_id,
                    reason,
                });
            }
        }
        if has(7) {
            b.reasoning = Some(own.string(self.str()?));
        }
        if has(8) {
            self.pairs(own, &mut b.metadata)?;
        }
        if has(9) {
            b.candidates_in = Some(self.u64()?);
        }
        if has(10) {
            b.candidates_out = Some(self.u64()?);
        }
        if has(11) {
            for _ in 0..self.u32()? {
                b.logs.push(LogLine {
                    at: self.i64()?,
                    level: own.string(self.str()?),
                    target: own.string(self.str()?),
                    message: own.string(self.str()?),
                    fields: Json::from_trusted(own.string(self.str()?)),
                });
            }
        }
        if has(12) {
            b.logs_dropped = self.u64()?;
        }
        b.no_result = has(13);
        if has(14) {
            b.evaluations = arena()?;
        }
        Some(capture)
    }

    pub(crate) fn execution_start(&mut self, own: &mut impl Own) -> Option<DecodedExecutionStart> {
        let id = self.uuid()?;
        let started_at = self.i64()?;
        let name = own.string(self.str()?);
        let n = self.u32()?;
        let mut tags = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            tags.push(self.str()?.to_owned());
        }
        Some(DecodedExecutionStart {
            id,
            started_at,
            name,
            tags,
        })
    }

    pub(crate) fn execution_end(&mut self, own: &mut impl Own) -> Option<DecodedExecutionEnd> {
        let id = self.uuid()?;
        let completed_at = self.i64()?;
        let status = self.status()?.unwrap_or(Status::Ok);
        let error = self.opt_str()?.map(str::to_owned);
        let mut metadata = Vec::new();
        self.pairs(own, &mut metadata)?;
        Some(DecodedExecutionEnd {
            id,
            completed_at,
            status,
            error,
            metadata,
            input: self.opt_tape()?.map(|t| own.json(t)),
            output: self.opt_tape()?.map(|t| own.json(t)),
            dropped: self.u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Copies;

    impl Own for Copies {
        fn string(&mut self, s: &str) -> String {
            s.to_owned()
        }
        fn json(&mut self, tape: &[u8]) -> Json {
            crate::tape::to_json(tape, Vec::new())
        }
    }

    #[test]
    fn a_step_end_reads_back_as_written() {
        let head = StepHead {
            id: Uuid::from_u128(1),
            execution_id: Uuid::from_u128(2),
            parent_id: Some(Uuid::from_u128(3)),
            started_at: 10,
            name: "filter_price",
            kind: Some("filter"),
        };
        let mut b = StepBuffer {
            ended_at: Some(20),
            status: Some(Status::Error),
            error: Some("price feed timed out".into()),
            input: Some(Tape::object([("q", &Tape::of("stand"))])),
            selection: vec![Selection {
                candidate_id: "B0C".into(),
                reason: "best match".into(),
            }],
            metadata: vec![("model".into(), Tape::of("gpt"))],
            candidates_in: Some(5000),
            logs: vec![LogLine {
                at: 15,
                level: "WARN".into(),
                target: "demo".into(),
                message: "retry".into(),
                fields: Json::from_trusted("{}".into()),
            }],
            logs_dropped: 2,
            no_result: true,
            ..StepBuffer::default()
        };
        let mut e = Encoder::default();
        e.step_end(&head, Capture::Cap(7), &mut b, None, None);
        assert_eq!(
            e.bytes.len() - 4,
            u32::from_le_bytes(e.bytes[..4].try_into().expect("4 bytes")) as usize
        );
        assert_eq!((e.bytes[4], e.bytes[5]), (STEP_END, 0));
        let mut d = Decoder::new(&e.bytes[HEADER..]);
        let read = d.step_head(&mut Copies).expect("head");
        assert_eq!((read.id, read.parent_id), (head.id, head.parent_id));
        assert_eq!(
            (read.name.as_str(), read.kind.as_deref()),
            ("filter_price", Some("filter"))
        );
        let mut out = StepBuffer::default();
        let capture = d.step_end(&mut Copies, &mut out, || None).expect("end");
        assert_eq!(capture, Capture::Cap(7));
        assert_eq!(out.error.as_deref(), Some("price feed timed out"));
        assert_eq!(
            out.input.as_ref().map(Json::as_str),
            Some("{\"q\":\"stand\"}")
        );
        assert_eq!(out.output, None);
        assert_eq!(out.selection[0].reason, "best match");
        assert_eq!(out.metadata[0].0, "model");
        assert_eq!(out.metadata[0].1.as_str(), "\"gpt\"");
        assert_eq!((out.candidates_in, out.candidates_out), (Some(5000), None));
        assert_eq!(
            (out.logs[0].message.as_str(), out.logs_dropped),
            ("retry", 2)
        );
        assert!(out.no_result);
        assert_eq!(out.status, Some(Status::Error));
    }

    /// The end of the step whose start its lane carried last leaves the head out; the writer
    /// reads it from that start, and only if the ids agree.
    #[test]
    fn an_end_after_its_own_start_carries_only_the_steps_id_for_its_head() {
        let head = StepHead {
            id: Uuid::from_u128(7),
            execution_id: Uuid::from_u128(1),
            parent_id: Some(Uuid::from_u128(3)),
            started_at: 10,
            name: "filter_price",
            kind: Some("filter"),
        };
        let mut start = Encoder::default();
        start.step_start(&head, false);
        let last_start = &start.bytes[HEADER..];
        let (mut full, mut short) = (Encoder::default(), Encoder::default());
        let other = Some(Uuid::from_u128(8));
        full.step_end(&head, Capture::All, &mut StepBuffer::default(), None, other);
        let last = Some(head.id);
        short.step_end(
            &head,
            Capture::All,
            &mut StepBuffer::default(),
            Some(4),
            last,
        );
        assert_eq!(full.bytes[4], STEP_END);
        assert_eq!(short.bytes[4], ROOT_STEP_END | HEAD_OF_LAST_START);
        assert_eq!(
            records_in(short.bytes[4]),
            2,
            "a root step's end: its run's too"
        );
        assert_eq!(
            full.bytes.len() - short.bytes.len(),
            57 + 4 + "filter_price".len() + 4 + "filter".len() - 16 - 8,
            "the head less the id (the root end's 8-byte count aside)"
        );
        let read = Decoder::new(&short.bytes[HEADER..])
            .head_of_last_start(last_start, &mut Copies)
            .expect("the head of the last start");
        assert_eq!(
            (read.id, read.execution_id, read.parent_id, read.started_at),
            (head.id, head.execution_id, head.parent_id, 10)
        );
        assert_eq!(
            (read.name.as_str(), read.kind.as_deref()),
            ("filter_price", Some("filter"))
        );
        let mut another = Encoder::default();
        another.step_start(
            &StepHead {
                id: Uuid::from_u128(8),
                ..head
            },
            false,
        );
        assert!(
            Decoder::new(&short.bytes[HEADER..])
                .head_of_last_start(&another.bytes[HEADER..], &mut Copies)
                .is_none(),
            "another step's start does not make its head"
        );
    }

    #[test]
    fn a_cut_record_does_not_decode() {
        let mut e = Encoder::default();
        e.execution_start(Uuid::from_u128(9), 1, "run", &["nightly".into()]);
        let fields = &e.bytes[HEADER..e.bytes.len() - 1];
        assert!(Decoder::new(fields).execution_start(&mut Copies).is_none());
        let whole = Decoder::new(&e.bytes[HEADER..]).execution_start(&mut Copies);
        assert_eq!(whole.expect("whole").tags, vec!["nightly".to_owned()]);
    }
}
