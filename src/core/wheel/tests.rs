//! Wheel tests: behaviours in virtual time, and the wheel against a
//! `BTreeMap` model.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{LEVELS, Node, Wheel};

/// Polls everything due at `now`, in order.
fn drain(wheel: &mut Wheel<u32>, now: u64) -> Vec<(u64, u32)> {
    std::iter::from_fn(|| wheel.poll(now)).collect()
}

#[test]
fn node_is_24_bytes_for_a_u32_pair() {
    assert_eq!(size_of::<Node<(u32, u32)>>(), 24);
}

#[test]
fn same_deadline_comes_out_in_insertion_order() {
    let mut wheel = Wheel::new();
    // 5_000 lands above level 0, so FIFO must survive a cascade too.
    for value in 0..1_000 {
        wheel.insert(5_000, value);
        wheel.insert(7, value + 10_000);
    }
    let got = drain(&mut wheel, 10_000);
    let expected: Vec<_> = (0..1_000)
        .map(|v| (7, v + 10_000))
        .chain((0..1_000).map(|v| (5_000, v)))
        .collect();
    assert_eq!(got, expected);
    assert!(wheel.is_empty());
}

#[test]
fn insert_while_draining_a_deadline_joins_its_tail() {
    let mut wheel = Wheel::new();
    wheel.insert(100, 1);
    wheel.insert(100, 2);
    assert_eq!(wheel.poll(100), Some((100, 1)));
    wheel.insert(100, 3);
    assert_eq!(drain(&mut wheel, 100), [(100, 2), (100, 3)]);
}

#[test]
fn past_deadlines_come_out_first_sorted_then_fifo() {
    let mut wheel = Wheel::new();
    assert_eq!(wheel.poll(1_000_000), None);
    wheel.insert(1_000_000, 1);
    wheel.insert(999_000, 2);
    wheel.insert(5, 3);
    wheel.insert(999_000, 4);
    wheel.insert(0, 5);
    assert_eq!(wheel.next_deadline(), Some(0));
    assert_eq!(
        drain(&mut wheel, 1_000_000),
        [(0, 5), (5, 3), (999_000, 2), (999_000, 4), (1_000_000, 1)]
    );
}

#[test]
fn deadline_equal_to_now_is_due_at_next_poll() {
    let mut wheel = Wheel::new();
    wheel.insert(0, 1);
    assert_eq!(wheel.next_deadline(), Some(0));
    assert_eq!(wheel.poll(0), Some((0, 1)));
    assert_eq!(wheel.poll(0), None);
    assert_eq!(wheel.poll(12_345), None);
    wheel.insert(wheel.now(), 2);
    assert_eq!(wheel.poll(12_345), Some((12_345, 2)));
}

#[test]
fn poll_with_earlier_now_acts_as_latest_now() {
    let mut wheel = Wheel::new();
    wheel.insert(500, 1);
    assert_eq!(wheel.poll(1_000), Some((500, 1)));
    wheel.insert(900, 2);
    wheel.insert(1_000, 3);
    wheel.insert(1_001, 4);
    assert_eq!(drain(&mut wheel, 10), [(900, 2), (1_000, 3)]);
    assert_eq!(wheel.now(), 1_000);
    assert_eq!(wheel.next_deadline(), Some(1_001));
    assert_eq!(wheel.poll(1_001), Some((1_001, 4)));
}

#[test]
fn far_deadlines_come_out_at_their_exact_tick() {
    let far = [1u64 << 42, (1 << 45) + 3, u64::MAX - 1, u64::MAX];
    let mut wheel = Wheel::new();
    for (value, &deadline) in far.iter().enumerate().rev() {
        wheel.insert(deadline, value as u32);
    }
    for (value, &deadline) in far.iter().enumerate() {
        assert_eq!(wheel.next_deadline(), Some(deadline));
        assert_eq!(wheel.poll(deadline - 1), None, "early at {deadline}");
        assert_eq!(wheel.next_deadline(), Some(deadline));
        assert_eq!(wheel.poll(deadline), Some((deadline, value as u32)));
    }
    assert_eq!(wheel.poll(u64::MAX), None);
    assert_eq!(wheel.next_deadline(), None);
    // At the end of time everything, however late, is due at once.
    wheel.insert(u64::MAX, 9);
    wheel.insert(3, 8);
    assert_eq!(drain(&mut wheel, u64::MAX), [(3, 8), (u64::MAX, 9)]);
}

#[test]
fn an_entry_cascades_at_most_once_per_level() {
    let mut wheel = Wheel::new();
    wheel.insert(u64::MAX, 1);
    // Step through time in uneven jumps so each level's slot boundary is crossed separately.
    let mut now = 0u64;
    while now < u64::MAX {
        now = now.saturating_add((u64::MAX - now) / 3 + 1);
        drain(&mut wheel, now);
    }
    assert!(wheel.is_empty());
    assert!(wheel.cascades <= (LEVELS - 1) as u64, "{}", wheel.cascades);
}

#[test]
fn next_deadline_is_exact_at_every_level() {
    let mut wheel = Wheel::new();
    for level in 0..LEVELS as u32 {
        // Slot 7 of this level (fits even the top level), at an odd offset, not its boundary.
        let deadline = (7u64 << (6 * level)) | 0b1011;
        wheel.clear();
        wheel.insert(deadline + 50, 1);
        wheel.insert(deadline, 2);
        wheel.insert(deadline + 9, 3);
        assert_eq!(wheel.next_deadline(), Some(deadline), "level {level}");
        // Crossing slot boundaries (cascades) must not blur the answer.
        assert_eq!(wheel.poll(deadline - 1), None);
        assert_eq!(wheel.next_deadline(), Some(deadline), "level {level}");
        assert_eq!(wheel.poll(deadline), Some((deadline, 2)));
        assert_eq!(wheel.next_deadline(), Some(deadline + 9));
    }
}

#[test]
fn clear_drops_everything_and_the_wheel_is_reusable() {
    let mut wheel = Wheel::with_capacity(16);
    for value in 0..100 {
        wheel.insert(u64::from(value) * 1_000_003, value);
    }
    wheel.poll(50);
    wheel.insert(1, 500);
    wheel.clear();
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_deadline(), None);
    assert_eq!(wheel.now(), 50);
    assert_eq!(wheel.poll(u64::MAX / 2), None);
    let capacity = wheel.slab_capacity();
    wheel.insert(wheel.now() + 10, 7);
    wheel.insert(wheel.now(), 8);
    assert_eq!(wheel.len(), 2);
    assert_eq!(
        drain(&mut wheel, u64::MAX),
        [(u64::MAX / 2, 8), (u64::MAX / 2 + 10, 7)]
    );
    assert_eq!(wheel.slab_capacity(), capacity);
}

#[test]
fn steady_insert_poll_cycles_do_not_grow_the_slab() {
    const PROBES: u32 = 1_000;
    let mut wheel = Wheel::with_capacity(PROBES as usize);
    for probe in 0..PROBES {
        wheel.insert(u64::from(probe) * 997, probe);
    }
    let capacity = wheel.slab_capacity();
    assert_eq!(capacity, PROBES as usize);
    // Each probe is rescheduled one 1 s "interval" after it ran.
    let mut now = 0;
    for _ in 0..100 {
        now += 10_000;
        while let Some((deadline, probe)) = wheel.poll(now) {
            wheel.insert(deadline + 1_000_000, probe);
        }
        assert_eq!(wheel.len(), PROBES as usize);
    }
    assert_eq!(wheel.slab_capacity(), capacity);
    // A reset (clear, then reschedule everything) reuses the same slab.
    wheel.clear();
    for probe in 0..PROBES {
        wheel.insert(now, probe);
    }
    assert_eq!(wheel.slab_capacity(), capacity);
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    /// Insert at `now + offset`.
    Insert(u64),
    /// Insert at `now - offset` (a deadline in the past).
    InsertPast(u64),
    /// Move time forward by this much and poll everything due.
    Advance(u64),
    /// Poll a single entry at the current time.
    PollOne,
    /// Poll everything with a `now` this much earlier than the current time.
    PollBackwards(u64),
    /// Drop every entry.
    Clear,
}

/// Small, medium, large and huge spans, weighted towards the small ones.
fn span() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..200u64,
        3 => 0..100_000u64,
        2 => 0..(1u64 << 40),
        1 => any::<u64>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => span().prop_map(Op::Insert),
        1 => span().prop_map(Op::InsertPast),
        // Huge jumps end time quickly, so advances stay below 2^40 and reach far deadlines in several steps.
        4 => prop_oneof![0..200u64, 0..100_000u64, 0..(1u64 << 40)].prop_map(Op::Advance),
        2 => Just(Op::PollOne),
        1 => span().prop_map(Op::PollBackwards),
        1 => Just(Op::Clear),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn wheel_matches_btreemap_model(ops in prop::collection::vec(op(), 1..300)) {
        let mut wheel = Wheel::new();
        let mut model: BTreeMap<(u64, u64), u32> = BTreeMap::new();
        let mut now = 0u64;
        for (seq, op) in (0u64..).zip(ops) {
            let value = seq as u32;
            match op {
                Op::Insert(offset) => {
                    let deadline = now.saturating_add(offset);
                    wheel.insert(deadline, value);
                    model.insert((deadline, seq), value);
                }
                Op::InsertPast(offset) => {
                    let deadline = now.saturating_sub(offset);
                    wheel.insert(deadline, value);
                    model.insert((deadline, seq), value);
                }
                Op::Advance(_) | Op::PollBackwards(_) => {
                    let asked = match op {
                        Op::Advance(by) => {
                            now = now.saturating_add(by);
                            now
                        }
                        Op::PollBackwards(by) => now.saturating_sub(by),
                        _ => unreachable!(),
                    };
                    let mut expected = Vec::new();
                    while let Some(entry) = model.first_entry().filter(|e| e.key().0 <= now) {
                        let ((deadline, _), value) = entry.remove_entry();
                        expected.push((deadline, value));
                    }
                    let mut got = Vec::new();
                    while let Some(entry) = wheel.poll(asked) {
                        got.push(entry);
                        prop_assert!(got.len() <= expected.len(), "extra entries: {got:?}");
                    }
                    prop_assert_eq!(got, expected);
                }
                Op::PollOne => {
                    let expected = model
                        .first_entry()
                        .filter(|e| e.key().0 <= now)
                        .map(|e| {
                            let ((deadline, _), value) = e.remove_entry();
                            (deadline, value)
                        });
                    prop_assert_eq!(wheel.poll(now), expected);
                }
                Op::Clear => {
                    wheel.clear();
                    model.clear();
                }
            }
            prop_assert_eq!(wheel.now(), now);
            prop_assert_eq!(wheel.len(), model.len());
            prop_assert_eq!(wheel.is_empty(), model.is_empty());
            prop_assert_eq!(wheel.next_deadline(), model.keys().next().map(|&(d, _)| d));
        }
    }
}
