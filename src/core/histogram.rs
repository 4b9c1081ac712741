//! A fixed-size log-linear histogram of microsecond values, for the lateness
//! percentiles in `stats` (about 3 % relative error, 15 KiB, no allocation
//! per sample).

const LINEAR: u64 = 64;
const SUB_BITS: u32 = 5;
const SUBS: usize = 1 << SUB_BITS;
const BUCKETS: usize = LINEAR as usize + (64 - 6) * SUBS;

#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= 6
    let sub = (v >> (e - SUB_BITS)) as usize & (SUBS - 1);
    LINEAR as usize + (e as usize - 6) * SUBS + sub
}

/// The largest value that lands in bucket `b`.
fn upper(b: usize) -> u64 {
    if b < LINEAR as usize {
        return b as u64;
    }
    let e = ((b - LINEAR as usize) / SUBS + 6) as u32;
    let sub = ((b - LINEAR as usize) % SUBS) as u64;
    let low = (1u64 << e) | (sub << (e - SUB_BITS));
    low.saturating_add((1u64 << (e - SUB_BITS)) - 1)
}

impl Histogram {
    pub(crate) fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), as the upper bound of its bucket
    /// (never above the maximum seen); 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(b).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_and_bound_their_values() {
        for v in (0..100_000u64).chain([u64::MAX, 1 << 40, (1 << 40) + 12345]) {
            let b = bucket(v);
            assert!(b < BUCKETS);
            assert!(upper(b) >= v, "v={v} b={b}");
            if b > 0 {
                assert!(upper(b - 1) < v, "v={v} b={b}");
            }
        }
    }

    #[test]
    fn quantiles_are_within_three_percent() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        for (q, exact) in [(0.5, 5000.0), (0.9, 9000.0), (0.99, 9900.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - exact).abs() / exact < 0.035, "q={q} got={got}");
        }
        assert_eq!(h.quantile(1.0), 10_000);
        assert_eq!(h.max(), 10_000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }
}
