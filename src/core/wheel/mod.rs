//! Hierarchical timer wheel of probe deadlines: a pure data structure, no I/O
//! and no clock reads.
//!
//! # Time
//!
//! 1 tick = 1 µs since the wheel's epoch (`core::ticks`): fine enough for
//! anchored schedules and sub-millisecond wake-ups, and a `u64` never wraps.
//! A level-0 slot is one tick, so appending keeps equal deadlines FIFO.
//!
//! # Layout
//!
//! - 11 levels of 64 slots. A level-`L` slot spans `64^L` ticks, so level `L`
//!   covers `64^(L+1)` ticks: level 0 is 64 µs, level 6 is 2^42 µs (~51 days),
//!   level 10 covers 2^66 > `u64::MAX`. Every `u64` deadline therefore has a
//!   slot and no overflow list is needed.
//! - An entry sits at the level of the highest 6-bit group in which its
//!   deadline differs from the wheel's cursor (`deadline ^ cursor`), in the
//!   slot given by the deadline's bits of that group. So every occupied slot
//!   is ahead of the cursor, lower levels hold strictly earlier deadlines than
//!   higher ones, and the earliest slot is the lowest set bit of the lowest
//!   non-empty level's `u64` occupancy bitmap.
//! - When the cursor reaches the start of a slot above level 0, that slot's
//!   entries are re-filed (cascaded) relative to the new cursor; each lands
//!   strictly lower, so an entry cascades at most once per level (<= 10 times).
//! - Entries live in a slab (`Vec` of nodes, `u32` indices, free list threaded
//!   through the same `next` field); each slot is a singly linked list with a
//!   tail index for O(1) FIFO appends. Nothing is allocated per insert or poll
//!   once the slab has grown to the working-set size.
//! - Each slot keeps the minimum deadline of its entries (entries leave a
//!   higher-level slot only all at once), which makes `next_deadline` exact
//!   without scanning entries.
//! - An entry inserted with a deadline before the cursor (in the past) goes to
//!   a small binary heap ordered by (deadline, insertion order); such entries
//!   are always earlier than everything in the wheel.
//!
//! # Memory
//!
//! 24 bytes per entry for an 8-byte payload; fixed: 11 x 64 slot heads of
//! 16 bytes (11 KiB, boxed) and 11 bitmap words.
//!
//! # Complexity
//!
//! | operation       | cost |
//! |-----------------|------|
//! | `insert`        | O(1); O(log k) if the deadline is before the cursor (k such entries) |
//! | `poll`          | O(1) amortised: a level-0 pop, plus at most 10 cascades per entry over its lifetime and an 11-word bitmap scan per slot boundary crossed; O(log k) for past entries |
//! | `next_deadline` | O(1): at most 11 bitmap words and one slot minimum |
//! | `clear`         | O(1): 11 bitmap words, `Vec::clear` of `Copy` nodes |
//! | `len`, `is_empty`, `now` | O(1) |

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;

#[cfg(test)]
mod tests;

/// Bits of the deadline consumed by one level (64 slots).
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Mask of a slot number within a level.
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// 11 x 6 = 66 bits >= 64: every `u64` deadline fits without an overflow list.
const LEVELS: usize = 11;
/// "No node": ends slot lists and the free list.
const NIL: u32 = u32::MAX;

/// One scheduled entry in the slab.
struct Node<T> {
    /// Exact deadline in ticks.
    deadline: u64,
    /// Next node in the same slot list or in the free list, or `NIL`.
    next: u32,
    /// The caller's payload.
    value: T,
}

/// Head of one slot's list; only meaningful while the slot's occupancy bit is set.
#[derive(Clone, Copy)]
struct Slot {
    /// First node (popped or cascaded first).
    head: u32,
    /// Last node, so appends are O(1) and keep FIFO order.
    tail: u32,
    /// Smallest deadline in the list, for an exact `next_deadline`.
    min: u64,
}

/// An entry inserted with a deadline already behind the cursor.
struct Overdue<T> {
    /// Exact deadline in ticks.
    deadline: u64,
    /// Insertion order among overdue entries, for FIFO on equal deadlines.
    seq: u64,
    /// The caller's payload.
    value: T,
}

impl<T> Overdue<T> {
    /// Heap key: earliest deadline first, then earliest insertion.
    fn key(&self) -> (u64, u64) {
        (self.deadline, self.seq)
    }
}

impl<T> PartialEq for Overdue<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<T> Eq for Overdue<T> {}

impl<T> PartialOrd for Overdue<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Overdue<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: `BinaryHeap` is a max-heap and we want the smallest key on top.
        other.key().cmp(&self.key())
    }
}

/// A hierarchical timer wheel mapping deadlines (µs ticks) to `Copy` payloads.
///
/// See the module docs for the layout and costs.
pub(crate) struct Wheel<T> {
    /// Per-level occupancy: bit `s` set iff slot `s` of that level is non-empty.
    occupied: [u64; LEVELS],
    /// Slot heads, boxed to keep the wheel itself small to move.
    slots: Box<[[Slot; SLOTS]; LEVELS]>,
    /// The slab of entries.
    nodes: Vec<Node<T>>,
    /// Head of the free list threaded through `Node::next`.
    free: u32,
    /// Entries inserted with a deadline before `cursor`.
    overdue: BinaryHeap<Overdue<T>>,
    /// Next `Overdue::seq`.
    overdue_seq: u64,
    /// Number of entries (wheel + overdue).
    len: usize,
    /// Where the wheel's slots are filed from; <= `now`, and only lags it
    /// while due entries remain to be polled.
    cursor: u64,
    /// Latest `now` given to `poll`.
    now: u64,
    /// Number of single-entry cascades, to test the at-most-once-per-level bound.
    #[cfg(test)]
    cascades: u64,
}

/// The level an entry with `deadline` belongs to when the cursor is at `cursor`.
fn level_for(cursor: u64, deadline: u64) -> usize {
    // `| SLOT_MASK` puts deadlines within the cursor's 64-tick block at level 0.
    let masked = (cursor ^ deadline) | SLOT_MASK;
    ((63 - masked.leading_zeros()) / SLOT_BITS) as usize
}

/// The slot of `deadline` within `level`.
fn slot_for(deadline: u64, level: usize) -> usize {
    ((deadline >> (level as u32 * SLOT_BITS)) & SLOT_MASK) as usize
}

impl<T: Copy> Wheel<T> {
    /// An empty wheel at time 0.
    pub(crate) fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty wheel at time 0 with room for `n` entries before the slab grows.
    pub(crate) fn with_capacity(n: usize) -> Self {
        let empty = Slot {
            head: NIL,
            tail: NIL,
            min: u64::MAX,
        };
        Wheel {
            occupied: [0; LEVELS],
            slots: Box::new([[empty; SLOTS]; LEVELS]),
            nodes: Vec::with_capacity(n),
            free: NIL,
            overdue: BinaryHeap::new(),
            overdue_seq: 0,
            len: 0,
            cursor: 0,
            now: 0,
            #[cfg(test)]
            cascades: 0,
        }
    }

    /// Schedules `value` at `deadline` (ticks). A deadline <= `now()` is due at
    /// the next poll.
    ///
    /// # Panics
    ///
    /// If the wheel already holds `u32::MAX - 1` entries (the slab index width).
    pub(crate) fn insert(&mut self, deadline: u64, value: T) {
        self.len += 1;
        if deadline < self.cursor {
            // Behind the cursor no slot can hold it; the heap keeps such entries ordered.
            let seq = self.overdue_seq;
            self.overdue_seq = seq.wrapping_add(1);
            self.overdue.push(Overdue {
                deadline,
                seq,
                value,
            });
            return;
        }
        let idx = self.alloc(deadline, value);
        self.link(idx, deadline);
    }

    /// Removes and returns one entry whose deadline is <= `now`, as
    /// `(deadline, value)`.
    ///
    /// Successive calls return entries in non-decreasing deadline order;
    /// equal deadlines come out in insertion order. Advances the wheel's time
    /// to `now`; a `now` smaller than a previous one acts as the previous one.
    pub(crate) fn poll(&mut self, now: u64) -> Option<(u64, T)> {
        let now = now.max(self.now);
        self.now = now;
        // Overdue entries are behind the cursor, hence earlier than anything in the slots.
        if let Some(entry) = self.overdue.pop() {
            self.len -= 1;
            return Some((entry.deadline, entry.value));
        }
        loop {
            let Some((level, slot, start)) = self.next_slot() else {
                self.cursor = now;
                return None;
            };
            if start > now {
                // No slot starts in (cursor, now], so moving the cursor keeps every entry's level valid.
                self.cursor = now;
                return None;
            }
            self.cursor = start;
            if level == 0 {
                return Some(self.pop_front(slot));
            }
            self.cascade(level, slot);
        }
    }

    /// The exact earliest deadline of any entry, or `None` if the wheel is
    /// empty; scans no entry, so nothing needs caching.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        if let Some(entry) = self.overdue.peek() {
            return Some(entry.deadline);
        }
        self.next_slot()
            .map(|(level, slot, _)| self.slots[level][slot].min)
    }

    /// Makes room for `n` entries in all, exactly: a reset that knows its
    /// probe count avoids the slab's doubling slack.
    pub(crate) fn reserve_exact(&mut self, n: usize) {
        self.nodes.reserve_exact(n.saturating_sub(self.nodes.len()));
    }

    /// Drops every entry in O(1), keeping the time and the allocated capacity.
    pub(crate) fn clear(&mut self) {
        // Slot heads are only read under a set occupancy bit, so the bitmaps suffice.
        self.occupied = [0; LEVELS];
        // `Node<T>` has no drop glue (`T: Copy`), so these clears are O(1).
        self.nodes.clear();
        self.overdue.clear();
        self.free = NIL;
        self.len = 0;
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the wheel holds no entry.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The latest time given to `poll` (0 for a new wheel).
    #[cfg(test)]
    pub(crate) fn now(&self) -> u64 {
        self.now
    }

    /// Slab capacity, to check that steady-state use does not grow it.
    #[cfg(test)]
    pub(crate) fn slab_capacity(&self) -> usize {
        self.nodes.capacity()
    }

    /// Takes a node from the free list, or grows the slab.
    fn alloc(&mut self, deadline: u64, value: T) -> u32 {
        let node = Node {
            deadline,
            next: NIL,
            value,
        };
        if self.free != NIL {
            let idx = self.free;
            let slot = &mut self.nodes[idx as usize];
            self.free = slot.next;
            *slot = node;
            return idx;
        }
        let idx = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&idx| idx != NIL)
            .expect("timer wheel is limited to u32::MAX - 1 entries");
        self.nodes.push(node);
        idx
    }

    /// Appends node `idx` (whose `next` is `NIL`) to the slot its deadline
    /// maps to from the current cursor.
    fn link(&mut self, idx: u32, deadline: u64) {
        let level = level_for(self.cursor, deadline);
        let slot = slot_for(deadline, level);
        let bit = 1u64 << slot;
        let head = &mut self.slots[level][slot];
        if self.occupied[level] & bit == 0 {
            self.occupied[level] |= bit;
            *head = Slot {
                head: idx,
                tail: idx,
                min: deadline,
            };
        } else {
            self.nodes[head.tail as usize].next = idx;
            head.tail = idx;
            head.min = head.min.min(deadline);
        }
    }

    /// The earliest occupied slot as `(level, slot, first tick of the slot)`.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            let shift = level as u32 * SLOT_BITS;
            // Every occupied slot is at or ahead of the cursor's, so no rotation is needed.
            debug_assert_eq!(
                occupied & !(u64::MAX << ((self.cursor >> shift) & SLOT_MASK)),
                0,
                "occupied slot behind the cursor"
            );
            let slot = occupied.trailing_zeros();
            let covered = shift + SLOT_BITS;
            // The top level covers more than 64 bits: its block starts at 0.
            let block = if covered >= 64 {
                0
            } else {
                self.cursor & !((1u64 << covered) - 1)
            };
            return Some((level, slot as usize, block | (u64::from(slot) << shift)));
        }
        None
    }

    /// Pops the first entry of level-0 slot `slot` and frees its node.
    fn pop_front(&mut self, slot: usize) -> (u64, T) {
        let head = &mut self.slots[0][slot];
        let idx = head.head;
        let node = &mut self.nodes[idx as usize];
        let entry = (node.deadline, node.value);
        if idx == head.tail {
            self.occupied[0] &= !(1u64 << slot);
        } else {
            head.head = node.next;
        }
        node.next = self.free;
        self.free = idx;
        self.len -= 1;
        entry
    }

    /// Re-files every entry of `slot` at `level` (> 0) from the current cursor,
    /// which has just reached the slot's start, keeping their order.
    fn cascade(&mut self, level: usize, slot: usize) {
        self.occupied[level] &= !(1u64 << slot);
        let mut idx = self.slots[level][slot].head;
        while idx != NIL {
            let node = &mut self.nodes[idx as usize];
            let next = node.next;
            let deadline = node.deadline;
            node.next = NIL;
            self.link(idx, deadline);
            #[cfg(test)]
            {
                self.cascades += 1;
            }
            idx = next;
        }
    }
}

impl<T> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("len", &self.len)
            .field("now", &self.now)
            .field("cursor", &self.cursor)
            .field("overdue", &self.overdue.len())
            .field("slab_capacity", &self.nodes.capacity())
            .finish_non_exhaustive()
    }
}
