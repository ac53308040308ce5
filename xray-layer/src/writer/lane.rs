//! Lanes: one bounded queue per recording thread, from that thread to the writer.
//!
//! Each thread that records through a layer gets a lane of its own the first time it does: a
//! single-producer, single-consumer ring of bytes ([`rtrb`]) for the records
//! ([`super::codec`]), and a small ring beside it for what a record carries that is not bytes
//! (a step's evaluation arena, a record too large for the bytes). A record is published whole,
//! with one store of the ring's write index, into memory that only this thread writes until the
//! writer reads it, a chunk at a time. So a step costs its thread no lock, no shared counter
//! and no cache line that another core wrote last, beyond the ring's own indexes, which the
//! writer touches once per read, not once per record.
//!
//! The writer reads every lane each round ([`LaneSet::read`]). A lane whose thread has ended
//! is read to its end, then forgotten. When the writer stops (or dies), it closes the lanes
//! ([`Lanes::close`]) and reads them a last time: a record a thread publishes after that is
//! counted as dropped, by the thread if it saw the lanes closed, or else by
//! [`Lanes::count_lost`] (what the writer's last read did not find; called by the writer as it
//! stops, and by the stats for what comes later), so every record is written or counted.

use super::codec::{records_in, Encoder, Side, BIG, HEADER, ROOT_STEP_START, STEP_START};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;

/// Bytes of a lane for each record of [`Builder::queue_capacity`](crate::Builder::queue_capacity).
pub(crate) const BYTES_PER_RECORD: usize = 64;
/// The smallest and largest lane.
const MIN_LANE_BYTES: usize = 1024;
const MAX_LANE_BYTES: usize = 4 << 20;
/// The most side items (arenas, big records) a lane holds.
const MAX_SIDES: usize = 8192;
/// A record larger than this share of a lane (and than `MAX_INLINE`) goes through the side ring.
const MAX_INLINE: usize = 4096;

static LANES_IDS: AtomicU64 = AtomicU64::new(1);

/// The lanes of one layer: what the threads and the writer share.
#[derive(Debug)]
pub(crate) struct Lanes {
    id: u64,
    bytes: usize,
    sides: usize,
    /// Records longer than this are moved whole into the side ring.
    pub(crate) big_at: usize,
    /// Lanes made by threads that the writer has not taken yet.
    new: Mutex<Vec<LaneEnd>>,
    /// The writer has stopped reading.
    closed: AtomicBool,
    /// The lanes the writer read last, once it stopped: what is published into them after its
    /// last read is counted as dropped.
    lost: Mutex<Vec<LaneEnd>>,
    /// The records each lane published: each count is written by its thread alone, with a
    /// plain store (no read-modify-write on a shared line per record), and summed on demand.
    sent: Mutex<SentCounts>,
}

/// The counts of records the lanes published.
#[derive(Debug, Default)]
struct SentCounts {
    lanes: Vec<Arc<AtomicU64>>,
    /// Those of lanes whose thread has ended.
    retired: u64,
}

/// The writer's end of one lane.
#[derive(Debug)]
pub(crate) struct LaneEnd {
    bytes: rtrb::Consumer<u8>,
    sides: rtrb::Consumer<Side>,
    sent: Arc<AtomicU64>,
    /// Bytes the writer may still read from it in this round (see [`LaneSet::snapshot`]).
    budget: usize,
    /// The fields of the last step start read from it (not one moved into the side queue):
    /// the head of a step end flagged [`super::codec::HEAD_OF_LAST_START`].
    last_start: Vec<u8>,
}

/// A thread's end of one layer's lane, with what it counts to wake the writer.
struct LocalLane {
    lanes: u64,
    bytes: rtrb::Producer<u8>,
    sides: rtrb::Producer<Side>,
    /// Records published, and where the writer and the stats read that number.
    sent: u64,
    shared_sent: Arc<AtomicU64>,
    /// Published since this lane last woke the writer.
    records: u64,
    rows: usize,
    published: usize,
    /// The id of the last step start published into it (not one moved into the side queue):
    /// that step's end leaves its head out ([`super::codec::HEAD_OF_LAST_START`]).
    last_start: Option<Uuid>,
}

/// What a thread keeps: its lanes (one per layer it records through) and the encoder its
/// records are written with.
#[derive(Default)]
pub(crate) struct Local {
    lanes: Vec<LocalLane>,
    pub(crate) encoder: Encoder,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

/// What a publish asks of the writer.
pub(crate) struct Wake {
    /// Records, evaluation rows and bytes after which a lane wakes the writer.
    pub(crate) records: u64,
    pub(crate) rows: usize,
}

/// Why a record was not published.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The lane is full (and the policy is to drop, or this is the writer's own thread).
    Full,
    /// The writer has stopped, or this thread is ending.
    Closed,
}

impl Lanes {
    /// The lanes of a layer whose queue holds `records` records per thread.
    pub(crate) fn new(records: usize) -> Self {
        let bytes = records
            .saturating_mul(BYTES_PER_RECORD)
            .clamp(MIN_LANE_BYTES, MAX_LANE_BYTES);
        Lanes {
            id: LANES_IDS.fetch_add(1, Ordering::Relaxed),
            bytes,
            // A step's end may carry an arena (~170 bytes each in the ring): one for every
            // eight records a lane holds, the share of a pipeline's records that are ends of
            // steps that judge candidates, with room to spare.
            sides: (records / 8).clamp(4, MAX_SIDES),
            big_at: (bytes / 4).min(MAX_INLINE),
            new: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            lost: Mutex::new(Vec::new()),
            sent: Mutex::new(SentCounts::default()),
        }
    }

    /// The records published into these lanes so far.
    pub(crate) fn sent(&self) -> u64 {
        let sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        sent.retired
            + sent
                .lanes
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .sum::<u64>()
    }

    /// Folds the count of a lane whose thread has ended into the retired total.
    fn retire(&self, lane: &LaneEnd) {
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = sent.lanes.iter().position(|n| Arc::ptr_eq(n, &lane.sent)) {
            let n = sent.lanes.swap_remove(i);
            sent.retired += n.load(Ordering::Relaxed);
        }
    }

    /// Runs `encode` with this thread's encoder and the id of the last step start its lane
    /// carried, then publishes the record into this thread's lane; `encode` returns the id of
    /// the step the record starts, if it is a step's start. `wait` is called while the lane
    /// is full, until it returns `false` (then the record is refused); `wake` when the lane
    /// has gathered enough for the writer to read. `records`: how many records the writer
    /// makes of it ([`super::codec::records_in`]).
    pub(crate) fn publish(
        &self,
        records: u64,
        rows: usize,
        encode: impl FnOnce(&mut Encoder, Option<Uuid>) -> Option<Uuid>,
        mut wait: impl FnMut() -> bool,
        wake_at: &Wake,
        wake: impl FnOnce(),
    ) -> Result<(), Refused> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Refused::Closed);
        }
        let published = LOCAL.try_with(|local| {
            let mut local = local.borrow_mut();
            let Local { lanes, encoder } = &mut *local;
            let lane = self.lane(lanes)?;
            let mut starts = encode(encoder, lane.last_start);
            if encoder.bytes.len() > self.big_at {
                encoder.make_big();
                // The writer keeps the fields of starts read from the bytes only.
                starts = None;
            }
            let (need, sides) = (encoder.bytes.len(), encoder.sides.len());
            loop {
                if self.closed.load(Ordering::Acquire) {
                    return Err(Refused::Closed);
                }
                if lane.bytes.slots() >= need && lane.sides.slots() >= sides {
                    break;
                }
                if !wait() {
                    return Err(Refused::Full);
                }
            }
            // Counted before it can be written: `written` never passes `sent`. (The room was
            // checked above, and only this thread fills the lane: the pushes succeed.)
            lane.sent += records;
            lane.shared_sent.store(lane.sent, Ordering::Relaxed);
            // The sides first: when the writer reads the record, they are there.
            for side in encoder.sides.drain(..) {
                let _ = lane.sides.push(side);
            }
            let _ = lane.bytes.push_entire_slice(&encoder.bytes);
            if starts.is_some() {
                lane.last_start = starts;
            }
            lane.records += 1;
            lane.rows += rows;
            lane.published += need;
            let due = lane.records >= wake_at.records
                || lane.rows >= wake_at.rows
                || lane.published >= self.bytes / 2;
            if due {
                (lane.records, lane.rows, lane.published) = (0, 0, 0);
            }
            Ok(due)
        });
        match published {
            Ok(Ok(true)) => {
                wake();
                Ok(())
            }
            Ok(Ok(false)) => Ok(()),
            Ok(Err(refused)) => Err(refused),
            Err(_) => Err(Refused::Closed),
        }
    }

    /// This thread's lane of these lanes, made on first use (`Closed` once the writer stopped).
    fn lane<'a>(&self, lanes: &'a mut Vec<LocalLane>) -> Result<&'a mut LocalLane, Refused> {
        if let Some(i) = lanes.iter().position(|l| l.lanes == self.id) {
            return Ok(&mut lanes[i]);
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Refused::Closed);
        }
        // Lanes of layers whose writer has gone are forgotten here.
        lanes.retain(|l| !l.bytes.is_abandoned());
        let (bytes, bytes_end) = rtrb::RingBuffer::new(self.bytes);
        let (sides, sides_end) = rtrb::RingBuffer::new(self.sides);
        let sent = Arc::new(AtomicU64::new(0));
        {
            let mut new = self.new.lock().unwrap_or_else(PoisonError::into_inner);
            if self.closed.load(Ordering::Acquire) {
                return Err(Refused::Closed);
            }
            new.push(LaneEnd {
                bytes: bytes_end,
                sides: sides_end,
                sent: Arc::clone(&sent),
                budget: usize::MAX,
                last_start: Vec::new(),
            });
        }
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lanes
            .push(Arc::clone(&sent));
        lanes.push(LocalLane {
            lanes: self.id,
            bytes,
            sides,
            sent: 0,
            shared_sent: sent,
            records: 0,
            rows: 0,
            published: 0,
            last_start: None,
        });
        let last = lanes.len() - 1;
        Ok(&mut lanes[last])
    }

    /// Stops accepting records. The writer then takes the lanes made so far
    /// ([`LaneSet::take_new`]), reads them a last time, and hands them back with
    /// [`Lanes::keep_lost`].
    pub(crate) fn close(&self) {
        // Under the lock that makes lanes: a lane made before is taken by the writer's next
        // `take_new`, none is made after.
        let _new = self.new.lock().unwrap_or_else(PoisonError::into_inner);
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Keeps the lanes after the writer's last read, to count what is published into them
    /// after it.
    pub(crate) fn keep_lost(&self, set: &mut LaneSet) {
        self.lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(&mut set.lanes);
    }

    /// The records published into the lanes after the writer's last read (each counted once:
    /// they are taken out).
    pub(crate) fn count_lost(&self) -> u64 {
        let mut lost = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
        let mut chunk = Vec::new();
        let mut n = 0;
        for lane in lost.iter_mut() {
            lane.budget = usize::MAX;
            let mut count = |raw: RawRecord<'_>, side: &mut dyn FnMut() -> Option<Side>| {
                // A big record's own tag is that of the record it moved into its side item.
                let tag = match (raw.tag, raw.tag == BIG && raw.sides > 0) {
                    (_, true) => match side() {
                        Some(Side::Big(bytes)) => bytes.get(4).copied().unwrap_or(BIG),
                        _ => BIG,
                    },
                    (tag, false) => tag,
                };
                n += records_in(tag);
                true
            };
            while lane.read(&mut chunk, usize::MAX, &mut count) > 0 {}
        }
        n
    }
}

/// Bytes of a lane the writer copies at a time: more than any record that is not moved to
/// the side ring.
const WINDOW: usize = 64 * 1024;

impl LaneEnd {
    /// Reads up to `max` whole records (within the lane's budget), calling `each` with each
    /// and the side items that belong to it; returns how many it read.
    fn read(
        &mut self,
        chunk: &mut Vec<u8>,
        max: usize,
        mut each: impl FnMut(RawRecord<'_>, &mut dyn FnMut() -> Option<Side>) -> bool,
    ) -> usize {
        let LaneEnd {
            bytes,
            sides,
            budget,
            last_start,
            ..
        } = self;
        let n = bytes.slots().min(*budget).min(WINDOW);
        let Ok(read) = bytes.read_chunk(n) else {
            return 0;
        };
        chunk.clear();
        let (a, b) = read.as_slices();
        chunk.extend_from_slice(a);
        chunk.extend_from_slice(b);
        let mut records = Records::new(chunk);
        let mut count = 0;
        while count < max {
            let Some(raw) = records.next() else {
                break;
            };
            let (tag, fields) = (raw.tag, raw.fields);
            let record = RawRecord {
                last_start: last_start.as_slice(),
                ..raw
            };
            let mut left = record.sides;
            let mut side = || {
                if left == 0 {
                    return None;
                }
                left -= 1;
                sides.pop().ok()
            };
            let more = each(record, &mut side);
            // Side items the reader did not take are freed here, in order.
            while side().is_some() {}
            if tag == STEP_START || tag == ROOT_STEP_START {
                last_start.clear();
                last_start.extend_from_slice(fields);
            }
            count += 1;
            if !more {
                break;
            }
        }
        let consumed = chunk.len() - records.chunk.len();
        read.commit(consumed);
        *budget = budget.saturating_sub(consumed);
        count
    }
}

/// One record in a chunk read from a lane.
#[derive(Debug)]
pub(crate) struct RawRecord<'a> {
    pub(crate) tag: u8,
    pub(crate) sides: u8,
    pub(crate) fields: &'a [u8],
    /// The fields of the last step start its lane carried before it (empty if none, or
    /// unknown): the head of a step end flagged [`super::codec::HEAD_OF_LAST_START`].
    pub(crate) last_start: &'a [u8],
}

/// The records of a chunk, in order. A record is published whole, so a chunk holds whole
/// records.
pub(crate) struct Records<'a> {
    chunk: &'a [u8],
}

impl<'a> Records<'a> {
    pub(crate) fn new(chunk: &'a [u8]) -> Self {
        Records { chunk }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = RawRecord<'a>;

    fn next(&mut self) -> Option<RawRecord<'a>> {
        let len = self.chunk.get(..4)?;
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let record = self.chunk.get(4..4 + len)?;
        if len < HEADER - 4 {
            return None;
        }
        self.chunk = &self.chunk[4 + len..];
        Some(RawRecord {
            tag: record[0],
            sides: record[1],
            fields: &record[2..],
            last_start: &[],
        })
    }
}

/// The lanes as the writer holds them.
#[derive(Debug, Default)]
pub(crate) struct LaneSet {
    lanes: Vec<LaneEnd>,
    /// The lane the last read started with.
    first: usize,
}

impl LaneSet {
    /// Takes the lanes threads have made since the last call.
    pub(crate) fn take_new(&mut self, shared: &Lanes) {
        let mut new = shared.new.lock().unwrap_or_else(PoisonError::into_inner);
        self.lanes.append(&mut new);
    }

    /// Whether no lane has anything to read.
    pub(crate) fn is_empty(&self) -> bool {
        self.lanes.iter().all(|l| l.bytes.is_empty())
    }

    /// Limits the reads that follow to what the lanes hold now (a flush: what was queued when
    /// it was asked for), until [`LaneSet::unlimit`].
    pub(crate) fn snapshot(&mut self) {
        for lane in &mut self.lanes {
            lane.budget = lane.bytes.slots();
        }
    }

    pub(crate) fn unlimit(&mut self) {
        for lane in &mut self.lanes {
            lane.budget = usize::MAX;
        }
    }

    /// Reads up to `max` records in all, in order within each lane, starting each call with the
    /// lane after the one the last call started with (so that no thread's records wait behind
    /// another's): `each` gets each record and the side items that belong to it, and says
    /// whether to read more. Returns how many it read. Lanes whose thread has ended are
    /// forgotten once read to their end.
    pub(crate) fn read(
        &mut self,
        shared: &Lanes,
        chunk: &mut Vec<u8>,
        max: usize,
        mut each: impl FnMut(RawRecord<'_>, &mut dyn FnMut() -> Option<Side>) -> bool,
    ) -> usize {
        let n = self.lanes.len();
        if n == 0 {
            return 0;
        }
        self.first = (self.first + 1) % n;
        let mut total = 0;
        let mut done = Vec::new();
        let mut more = true;
        for k in 0..n {
            if total >= max || !more {
                break;
            }
            let i = (self.first + k) % n;
            let lane = &mut self.lanes[i];
            // Before the read: a lane abandoned then holds all it ever will.
            let abandoned = lane.bytes.is_abandoned();
            total += lane.read(chunk, max - total, |record, side| {
                more = each(record, side);
                more
            });
            if abandoned && lane.bytes.is_empty() {
                done.push(i);
            }
        }
        done.sort_unstable();
        for i in done.into_iter().rev() {
            let lane = self.lanes.swap_remove(i);
            shared.retire(&lane);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(lanes: &Lanes, tag: u8) -> Result<(), Refused> {
        let wake_at = Wake {
            records: u64::MAX,
            rows: usize::MAX,
        };
        lanes.publish(
            1,
            0,
            |e, _| {
                e.begin(tag);
                e.finish();
                None
            },
            || false,
            &wake_at,
            || {},
        )
    }

    #[test]
    fn the_lanes_of_ended_threads_are_read_to_their_end_then_forgotten() {
        let lanes = Arc::new(Lanes::new(64));
        // Joined, not scoped: a scoped thread counts as done before its thread-locals (its
        // lane's end) are dropped.
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let lanes = Arc::clone(&lanes);
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        assert_eq!(publish(&lanes, STEP_START), Ok(()));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a recording thread");
        }
        let mut set = LaneSet::default();
        set.take_new(&lanes);
        assert_eq!(set.lanes.len(), 3);
        let mut chunk = Vec::new();
        let mut tags = Vec::new();
        let read = set.read(&lanes, &mut chunk, usize::MAX, |r, _| {
            tags.push(r.tag);
            true
        });
        assert_eq!((read, tags.len()), (15, 15));
        assert!(tags.iter().all(|t| *t == STEP_START));
        assert!(
            set.lanes.is_empty(),
            "their threads ended: nothing more will come"
        );
        assert_eq!(lanes.sent(), 15, "their counts outlive them");
    }

    #[test]
    fn a_full_lane_refuses_whole_records_and_a_closed_one_refuses_all() {
        let lanes = Lanes::new(1); // the smallest lane: 1 KiB
        let mut published = 0;
        while publish(&lanes, STEP_START).is_ok() {
            published += 1;
        }
        assert_eq!(published, MIN_LANE_BYTES / HEADER, "whole records only");
        let mut set = LaneSet::default();
        set.take_new(&lanes);
        let mut chunk = Vec::new();
        assert_eq!(
            set.read(&lanes, &mut chunk, 10, |_, _| true),
            10,
            "at most `max` a read"
        );
        assert_eq!(publish(&lanes, STEP_START), Ok(()), "room again");
        lanes.close();
        assert_eq!(publish(&lanes, STEP_START), Err(Refused::Closed));
        lanes.keep_lost(&mut set);
        assert_eq!(lanes.count_lost(), (published - 10 + 1) as u64);
        assert_eq!(lanes.count_lost(), 0, "each counted once");
    }
}
