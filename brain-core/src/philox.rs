//! Philox4x32-10 (Salmon et al., SC'11), the counter-based generator every backend
//! shares so that the same seed gives the same dropout mask and noise everywhere.
//!
//! Stream layout: key = `seed` (low word, high word); counter = `[block lo, block hi,
//! offset lo, offset hi]`. Block `b` yields the four 32-bit words `4b .. 4b+3` of the
//! stream `(seed, offset)`, so word `i` is a pure function of `(seed, offset, i)` and
//! any device thread can compute it without state.
//!
//! - uniform `i` = (word `i` >> 8)·2⁻²⁴ ∈ [0, 1), exact in f32;
//! - normal `2j`, `2j+1` from words `2j`, `2j+1` by Box–Muller:
//!   u1 = ((w >> 8) + 1)·2⁻²⁴ ∈ (0, 1], u2 = (w' >> 8)·2⁻²⁴,
//!   r = √(−2 ln u1), z = (r cos 2πu2, r sin 2πu2).

use crate::element::Element;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// 2⁻²⁴.
pub const INV_2_24: f64 = 1.0 / 16_777_216.0;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = (a as u64) * (b as u64);
    ((p >> 32) as u32, p as u32)
}

/// The raw Philox4x32 block function with 10 rounds.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The four words of block `block` of stream `(seed, offset)`.
#[inline]
pub fn block(seed: u64, offset: u64, block: u64) -> [u32; 4] {
    philox4x32_10(
        [
            block as u32,
            (block >> 32) as u32,
            offset as u32,
            (offset >> 32) as u32,
        ],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// Word `i` of stream `(seed, offset)`.
#[inline]
pub fn word(seed: u64, offset: u64, i: u64) -> u32 {
    block(seed, offset, i / 4)[(i % 4) as usize]
}

/// Top 24 bits of a word as an integer in [0, 2²⁴).
#[inline(always)]
pub fn bits24(w: u32) -> u32 {
    w >> 8
}

/// Uniform in [0, 1) from a word.
#[inline(always)]
pub fn uniform<T: Element>(w: u32) -> T {
    T::from_f64(bits24(w) as f64 * INV_2_24)
}

/// Box–Muller on one word pair: returns `(r cos 2πu2, r sin 2πu2)`, computed in `T`.
#[inline]
pub fn box_muller<T: Element>(w_even: u32, w_odd: u32) -> (T, T) {
    let u1 = T::from_f64((bits24(w_even) as f64 + 1.0) * INV_2_24);
    let u2: T = uniform(w_odd);
    let two = T::from_f64(2.0);
    let r = (-two * u1.ln()).sqrt();
    let theta = T::from_f64(core::f64::consts::TAU) * u2;
    (r * theta.cos(), r * theta.sin())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer vectors of the Random123 distribution (kat_vectors, philox4x32 10).
    #[test]
    fn random123_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn uniform_in_unit_interval() {
        assert_eq!(uniform::<f32>(0), 0.0);
        assert!(uniform::<f32>(u32::MAX) < 1.0);
        let (a, b) = box_muller::<f64>(u32::MAX, 0);
        assert!(a.is_finite() && b.is_finite());
    }
}
