//! Philox fills and dropout, bit-identical to `brain_core::philox` / the reference.
//!
//! Words are produced 32 at a time (8 Philox blocks computed lane-wise so the
//! 32×32→64 multiplies vectorise) into a stack buffer; chunks handed to threads start
//! at multiples of 32 words, so any thread computes exactly the words of its range.

use crate::par::{for_chunks_mut, Exec, MIN_CHUNK_COMPUTE};
use brain_core::ops::Dropout;
use brain_core::philox;

/// Words per batch (8 blocks of 4).
pub const WORDS: usize = 32;

/// Words `first_word .. first_word + 32` of stream `(seed, offset)`;
/// `first_word` must be a multiple of 4.
///
/// This is `brain_core::philox::block` eight times. A hand-written 8-lane version
/// (counters in `[u32; 8]` arrays so the 32×32→64 multiplies vectorise) was tried and
/// dropped: rustc 1.95 / LLVM 22.1.2's SLP vectoriser miscompiles it at opt-level 3
/// on baseline x86-64 (one lane of the second half comes out wrong; correct at
/// opt-level 2, with `-vectorize-slp=false`, or with AVX2), so the bit-exact stream is
/// produced by the reference's own block function and checked by the tests below.
#[inline(always)]
pub fn words32(seed: u64, offset: u64, first_word: u64, out: &mut [u32; WORDS]) {
    let first_block = first_word / 4;
    for (l, o) in out.chunks_exact_mut(4).enumerate() {
        o.copy_from_slice(&philox::block(
            seed,
            offset,
            first_block.wrapping_add(l as u64),
        ));
    }
}

/// Call `f(chunk_of_out, words)` for consecutive pieces of `out` of `per_batch`
/// elements, each consuming the next 32 words starting at `first_word`.
#[inline(always)]
fn stream<T, F>(out: &mut [T], per_batch: usize, seed: u64, offset: u64, first_word: u64, mut f: F)
where
    F: FnMut(&mut [T], &[u32; WORDS]),
{
    let mut buf = [0u32; WORDS];
    for (g, piece) in out.chunks_mut(per_batch).enumerate() {
        words32(seed, offset, first_word + (g * WORDS) as u64, &mut buf);
        f(piece, &buf);
    }
}

/// out[i] = (word i >> 8)·2⁻²⁴
pub fn fill_uniform(ex: Exec, out: &mut [f32], seed: u64, offset: u64) {
    const SCALE: f32 = 1.0 / 16_777_216.0;
    for_chunks_mut(ex, out, MIN_CHUNK_COMPUTE, WORDS, |start, chunk| {
        stream(chunk, WORDS, seed, offset, start as u64, |o, w| {
            for (o, &w) in o.iter_mut().zip(w) {
                *o = philox::bits24(w) as f32 * SCALE;
            }
        });
    });
}

/// out[i] = mean + std·z_i, Box–Muller in f32 on word pairs, as the reference.
pub fn fill_normal(ex: Exec, out: &mut [f32], seed: u64, offset: u64, mean: f32, std: f32) {
    for_chunks_mut(ex, out, MIN_CHUNK_COMPUTE / 4, WORDS, |start, chunk| {
        stream(chunk, WORDS, seed, offset, start as u64, |o, w| {
            for (pair, wp) in o.chunks_mut(2).zip(w.chunks_exact(2)) {
                let (a, b) = philox::box_muller::<f32>(wp[0], wp[1]);
                pair[0] = mean + std * a;
                if let Some(p1) = pair.get_mut(1) {
                    *p1 = mean + std * b;
                }
            }
        });
    });
}

/// out[2i] = hi16(word i), out[2i+1] = lo16(word i); `out.len()` even.
pub fn philox_bits(ex: Exec, out: &mut [f32], seed: u64, offset: u64) {
    for_chunks_mut(ex, out, MIN_CHUNK_COMPUTE, 2 * WORDS, |start, chunk| {
        stream(
            chunk,
            2 * WORDS,
            seed,
            offset,
            (start / 2) as u64,
            |o, w| {
                for (pair, &w) in o.chunks_exact_mut(2).zip(w) {
                    pair[0] = (w >> 16) as f32;
                    pair[1] = (w & 0xffff) as f32;
                }
            },
        );
    });
}

/// y[i] = x[i]·(keep_i ? 1/(1−p) : 0): a multiply, so NaN/Inf in dropped positions
/// propagate exactly as in the reference.
pub fn dropout(ex: Exec, d: &Dropout, y: &mut [f32], x: &[f32]) {
    let t = d.threshold();
    let scale = d.keep_scale() as f32;
    let (seed, offset) = (d.seed, d.offset);
    for_chunks_mut(ex, y, MIN_CHUNK_COMPUTE, WORDS, |start, chunk| {
        let xs = &x[start..start + chunk.len()];
        let mut done = 0;
        stream(chunk, WORDS, seed, offset, start as u64, |o, w| {
            let xp = &xs[done..done + o.len()];
            for ((o, &x), &w) in o.iter_mut().zip(xp).zip(w) {
                *o = x * if philox::bits24(w) >= t { scale } else { 0.0 };
            }
            done += o.len();
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words32_matches_philox_block() {
        let cases = [
            (0u64, 0u64),
            (42, 7),
            (u64::MAX, 0x1234_5678_9ABC_DEF0),
            (0xDEAD_BEEF, u64::MAX),
        ];
        for &(seed, offset) in &cases {
            for first in (0..64u64)
                .map(|b| b * 4)
                .chain([(1u64 << 34) - 4, u64::MAX - 31])
            {
                let mut w = [0u32; WORDS];
                words32(seed, offset, first, &mut w);
                for (i, &got) in w.iter().enumerate() {
                    assert_eq!(
                        got,
                        philox::word(seed, offset, first.wrapping_add(i as u64)),
                        "word {i} seed {seed} first {first}"
                    );
                }
            }
        }
    }
}
