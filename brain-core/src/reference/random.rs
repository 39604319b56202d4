//! Philox fills (see [`crate::philox`] for the stream layout).

use crate::element::Element;
use crate::philox;

/// out[n] = uniform word n
pub fn fill_uniform<T: Element>(out: &mut [T], seed: u64, offset: u64) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = philox::uniform(philox::word(seed, offset, i as u64));
    }
}

/// out[n] = mean + std·z_n, z from Box–Muller on words (2⌊n/2⌋, 2⌊n/2⌋+1)
pub fn fill_normal<T: Element>(out: &mut [T], seed: u64, offset: u64, mean: T, std: T) {
    for (i, o) in out.iter_mut().enumerate() {
        let j = (i / 2) as u64;
        let (a, b) = philox::box_muller::<T>(
            philox::word(seed, offset, 2 * j),
            philox::word(seed, offset, 2 * j + 1),
        );
        *o = mean + std * if i % 2 == 0 { a } else { b };
    }
}

/// out[2n] = hi16(word n), out[2n+1] = lo16(word n); out.len() must be even
pub fn philox_bits<T: Element>(out: &mut [T], seed: u64, offset: u64) {
    for n in 0..out.len() / 2 {
        let w = philox::word(seed, offset, n as u64);
        out[2 * n] = T::from_f64((w >> 16) as f64);
        out[2 * n + 1] = T::from_f64((w & 0xffff) as f64);
    }
}
