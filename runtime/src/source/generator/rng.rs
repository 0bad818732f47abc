//! Randomness: the one PRNG every draw comes from, and the portable arithmetic that keeps its
//! samples identical on every platform.
//!
//! It uses std alone and reads no clock or OS entropy: the seed is the only source of
//! randomness, and every draw of the generator must come through here.

use std::f64::consts::{LN_2, SQRT_2};

/// SplitMix64 (Steele, Lea & Flood, 2014): one word of state, statistically sound for
/// simulation and trivially reproducible. The crate deliberately has no `rand` dependency, so
/// the stream can never change under a dependency upgrade.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `[0, n)` by multiply-high (Lemire); the bias is negligible for our small `n`.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(super) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponentially distributed with mean `mean_ms` (arrivals, think times), in whole ms.
    pub(super) fn exp_ms(&mut self, mean_ms: f64) -> i64 {
        (-mean_ms * ln(1.0 - self.unit())) as i64
    }

    pub(super) fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// Picks by weight; the weights need not sum to one.
    pub(super) fn weighted<T: Copy>(&mut self, xs: &[(f64, T)]) -> T {
        let total: f64 = xs.iter().map(|(w, _)| w).sum();
        let mut x = self.unit() * total;
        for &(w, v) in xs {
            if x < w {
                return v;
            }
            x -= w;
        }
        xs[xs.len() - 1].1
    }

    /// Number of successes before the first failure: 0, 1, 2… with mean `p / (1 - p)`.
    pub(super) fn geometric(&mut self, p: f64, cap: u32) -> u32 {
        let mut n = 0;
        while n < cap && self.chance(p) {
            n += 1;
        }
        n
    }
}

/// The SplitMix64 finaliser: a bijection on `u64` that scrambles well. Besides driving the PRNG
/// it derives stable identities (ids, devices, cards) from counters without storing them; being
/// a bijection, distinct counters give distinct ids.
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Natural logarithm of a positive normal `x` from `+ − × ÷` only. `f64::ln` may differ in its
/// last bit between platforms, and the stream must not.
pub(super) fn ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52)); // in [1, 2)
    if m > SQRT_2 {
        m /= 2.0;
        exponent += 1;
    }
    // ln m = 2·atanh(s) = 2(s + s³/3 + s⁵/5 + …), and |s| < 0.172 makes eight terms plenty.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let (mut term, mut sum) = (s, 0.0);
    for k in 0..8 {
        sum += term / f64::from(2 * k + 1);
        term *= s2;
    }
    exponent as f64 * LN_2 + 2.0 * sum
}
