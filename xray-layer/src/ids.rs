//! UUID v7 ids without a system call per id.
//!
//! `Uuid::now_v7()` asks the OS for randomness on every call (a `getrandom` system call, ~6% of a
//! step's cost in the benchmarks). X-Ray ids need to be unique and time-ordered, not secret: a
//! thread-local xorshift generator, seeded once per thread from the OS, fills the random bits.

use std::cell::Cell;
use uuid::Uuid;

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0) };
}

fn next_random() -> u64 {
    STATE
        .try_with(|state| {
            let mut x = state.get();
            if x == 0 {
                // One OS-random seed per thread; never zero (xorshift's fixed point).
                x = (Uuid::now_v7().as_u128() as u64) | 1;
            }
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            state.set(x);
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        })
        .unwrap_or_else(|_| Uuid::now_v7().as_u128() as u64)
}

/// A new UUID v7 for the current time (RFC 9562: 48 bits of unix milliseconds, the version,
/// 12 random bits, the variant, 62 random bits), put together as one `u128`.
pub(crate) fn new_id(now_us: i64) -> Uuid {
    let (a, b) = (next_random(), next_random());
    let millis = u64::try_from(now_us / 1000).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let rand_a = u128::from(b >> 52);
    let rand_b = u128::from(a & 0x3FFF_FFFF_FFFF_FFFF);
    Uuid::from_u128(u128::from(millis) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_distinct_and_carry_the_time() {
        let now = crate::model::now_us();
        let ids: Vec<Uuid> = (0..1000).map(|_| new_id(now)).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 1000);
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        assert!(ids
            .iter()
            .all(|id| id.get_variant() == uuid::Variant::RFC4122));
        // The same fields as the uuid crate's own builder puts them.
        let mut rebuilt = [0u8; 10];
        let bytes = ids[0].as_bytes();
        rebuilt[0] = bytes[6] & 0x0F;
        rebuilt[1] = bytes[7];
        rebuilt[2..].copy_from_slice(&bytes[8..]);
        let by_builder =
            uuid::Builder::from_unix_timestamp_millis((now / 1000) as u64, &rebuilt).into_uuid();
        assert_eq!(ids[0], by_builder);
        let (secs, _) = ids[0]
            .get_timestamp()
            .expect("v7 has a timestamp")
            .to_unix();
        assert_eq!(secs as i64, now / 1_000_000);
    }
}
