//! Philox4x32-10 streams (bit-identical to `brain_core::philox`): raw words, uniform
//! and normal fills, and dropout, whose mask is regenerated from `(seed, offset)`.
//! One invocation per Philox block of four words.

use crate::gpu::{Kernel, Params, Part, Shader, READ_RW};
use crate::{same_len, WgpuBackend, WgpuBuffer, WG};
use brain_core::{check, Dropout, Result};

static SHADER: Shader = shader!("random.wgsl");
const OUT: crate::gpu::Bindings = &[(3, false)];
const FILL_UNIFORM: Kernel = Kernel::new(&SHADER, "fill_uniform", OUT);
const FILL_NORMAL: Kernel = Kernel::new(&SHADER, "fill_normal", OUT);
const PHILOX_BITS: Kernel = Kernel::new(&SHADER, "philox_bits", OUT);
const DROPOUT: Kernel = Kernel::new(&SHADER, "dropout", READ_RW);

/// What a stream kernel needs besides its buffers.
struct Stream {
    /// Elements of the output.
    n: usize,
    /// Philox words the output consumes (`n`, or `n/2` for `philox_bits`).
    words: usize,
    seed: u64,
    offset: u64,
    /// Dropout's threshold on the 24-bit integer.
    threshold: u32,
    /// Mean (fill_normal) or keep scale (dropout).
    a: f64,
    /// Standard deviation (fill_normal).
    b: f64,
}

impl Stream {
    fn new(n: usize, seed: u64, offset: u64) -> Self {
        Stream {
            n,
            words: n,
            seed,
            offset,
            threshold: 0,
            a: 0.0,
            b: 0.0,
        }
    }
}

/// One invocation per block of four words. Outputs beyond one storage binding are
/// generated in ranges of whole blocks, each told its first block (the Philox counter
/// is the absolute block index), so the stream is the same as in one dispatch.
fn launch(
    be: &WgpuBackend,
    op: &'static str,
    kernel: Kernel,
    s: &Stream,
    buffers: &[&wgpu::Buffer],
) -> Result<()> {
    let word = |v: u64| v as u32 as usize;
    // Elements per Philox block: 4 words, each 1 element (2 for philox_bits).
    let per_block = 4 * (s.n / s.words.max(1)).max(1);
    Params::new().u(op, s.n)?; // absolute element indices must fit 32 bits
    let parts: Vec<Part<'_>> = buffers.iter().map(|b| Part::Rows(b, 1)).collect();
    be.gpu
        .dispatch_rows_by(op, kernel, &parts, s.n, per_block, |first, n| {
            let params = Params::new()
                .u(op, n)?
                .u(op, word(s.seed))?
                .u(op, word(s.seed >> 32))?
                .u(op, word(s.offset))?
                .u(op, word(s.offset >> 32))?
                .u(op, s.threshold as usize)?
                .f(s.a)
                .f(s.b)
                .u(op, first / per_block)?;
            let blocks = (n as u64).div_ceil(per_block as u64);
            Ok((params, blocks.div_ceil(WG)))
        })
}

/// `y = x·keep/(1−p)`.
pub(crate) fn dropout_forward(
    be: &WgpuBackend,
    d: &Dropout,
    x: &WgpuBuffer,
    y: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "dropout_forward";
    check::dropout(OP, d)?;
    same_len(OP, "y", y.len, x.len)?;
    dropout(be, OP, d, x, y)
}

/// `dx = dy·keep/(1−p)`, the forward pass's mask.
pub(crate) fn dropout_backward(
    be: &WgpuBackend,
    d: &Dropout,
    dy: &WgpuBuffer,
    dx: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "dropout_backward";
    check::dropout(OP, d)?;
    same_len(OP, "dx", dx.len, dy.len)?;
    dropout(be, OP, d, dy, dx)
}

fn dropout(
    be: &WgpuBackend,
    op: &'static str,
    d: &Dropout,
    src: &WgpuBuffer,
    dst: &WgpuBuffer,
) -> Result<()> {
    let s = Stream {
        threshold: d.threshold(),
        a: d.keep_scale(),
        ..Stream::new(src.len, d.seed, d.offset)
    };
    launch(be, op, DROPOUT, &s, &[&src.buf, &dst.buf])
}

/// `out[i]` = (top 24 bits of word `i`)·2⁻²⁴.
pub(crate) fn fill_uniform(
    be: &WgpuBackend,
    out: &mut WgpuBuffer,
    seed: u64,
    offset: u64,
) -> Result<()> {
    let s = Stream::new(out.len, seed, offset);
    launch(be, "fill_uniform", FILL_UNIFORM, &s, &[&out.buf])
}

/// `out[i] = mean + std·z_i`, Box–Muller on word pairs.
pub(crate) fn fill_normal(
    be: &WgpuBackend,
    out: &mut WgpuBuffer,
    seed: u64,
    offset: u64,
    mean: f64,
    std: f64,
) -> Result<()> {
    let s = Stream {
        a: mean,
        b: std,
        ..Stream::new(out.len, seed, offset)
    };
    launch(be, "fill_normal", FILL_NORMAL, &s, &[&out.buf])
}

/// `out[2i]` = high 16 bits of word `i`, `out[2i+1]` = low 16 bits.
pub(crate) fn philox_bits(
    be: &WgpuBackend,
    out: &mut WgpuBuffer,
    seed: u64,
    offset: u64,
) -> Result<()> {
    const OP: &str = "philox_bits";
    if out.len % 2 != 0 {
        return Err(check::invalid(
            OP,
            format!(
                "output length {} must be even (two halves per word)",
                out.len
            ),
        ));
    }
    let s = Stream {
        words: out.len / 2,
        ..Stream::new(out.len, seed, offset)
    };
    launch(be, OP, PHILOX_BITS, &s, &[&out.buf])
}
