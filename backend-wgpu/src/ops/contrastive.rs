//! Row L2 normalisation, SoftCLIP / InfoNCE on `n×n` logits and the passes of the
//! composite contrastive loss. The row normalisation works on `[rows, d]` beyond one
//! storage binding (in ranges of rows, when one row fits a binding); the losses bind
//! their inputs whole.
//!
//! - Row sums (norms, x·dy, the squared norms of the Gram pass) are workgroup trees over
//!   chunks of 4096 values, the chunks' partials combined by a second tree, so a row of
//!   257·768 values errs by ~(16 + 8 + 6)·u, not d·u.
//! - The n×n kernels work per index i in one workgroup (row and column statistics of
//!   C_pt, the row statistics of C_tt), then per element. Softmax statistics are
//!   max-subtracted log-sum-exps in f32: at τ = 0.005 every −log-softmax is a sum of
//!   non-negative brackets; the C_tt gradient uses the lse-free form
//!   Q_ij·(h_i − S_ij)/(2n), S = C_pt + C_ptᵀ, h_i = Σ_k Q_ik·S_ik.
//! - The Gram matrices: `[P; T]·Tᵀ` in 64×64 tiles with the depth d split into chunks
//!   (≥ 1024 deep, about 512 workgroups in all), so that a batch of 32 rows of 257·768
//!   is not one workgroup walking the whole depth; the chunks' partials are then summed.
//! - The input gradients are tiled GEMMs over `[n, d]` (many column tiles, depth n,
//!   accumulating with beta = 1; [`gemm_unchecked`](crate::ops::gemm::gemm_unchecked))
//!   plus a diagonal scaling.

use crate::gpu::{Bindings, Kernel, Params, Part, Shader};
use crate::ops::gemm::gemm_unchecked;
use crate::{WgpuBackend, WgpuBuffer};
use brain_core::*;

static SHADER: Shader = shader!("contrastive.wgsl");

const IN1_OUT: Bindings = &[(1, true), (6, false)];
const IN2_OUT: Bindings = &[(1, true), (2, true), (6, false)];
const IN3_OUT: Bindings = &[(1, true), (2, true), (3, true), (6, false)];
const IN4_OUT: Bindings = &[(1, true), (2, true), (3, true), (4, true), (6, false)];
const IN5_OUT: Bindings = &[
    (1, true),
    (2, true),
    (3, true),
    (4, true),
    (5, true),
    (6, false),
];

const ROW_DOT_PARTIAL: Kernel = Kernel::new(&SHADER, "row_dot_partial", IN2_OUT);
const ROW_DOT_FINISH: Kernel = Kernel::new(&SHADER, "row_dot_finish", IN1_OUT);
const L2_FORWARD_APPLY: Kernel = Kernel::new(&SHADER, "l2_forward_apply", IN2_OUT);
const L2_BACKWARD_APPLY: Kernel = Kernel::new(&SHADER, "l2_backward_apply", IN4_OUT);
const LOSS_ROWS: Kernel = Kernel::new(&SHADER, "contrastive_loss_rows", IN2_OUT);
const LOSS_FINAL: Kernel = Kernel::new(&SHADER, "contrastive_loss_final", IN1_OUT);
const STATS: Kernel = Kernel::new(&SHADER, "contrastive_stats", IN2_OUT);
const GRAD_PT: Kernel = Kernel::new(&SHADER, "contrastive_grad_pt", IN3_OUT);
const GRAD_TT: Kernel = Kernel::new(&SHADER, "contrastive_grad_tt", IN3_OUT);
const CLIP_LOGITS: Kernel = Kernel::new(&SHADER, "clip_logits", IN3_OUT);
const CLIP_DP_ROWS: Kernel = Kernel::new(&SHADER, "clip_dp_rows", IN3_OUT);
const CLIP_WTT_ROWS: Kernel = Kernel::new(&SHADER, "clip_wtt_rows", IN5_OUT);
const DIAG_AXPY: Kernel = Kernel::new(&SHADER, "diag_axpy", IN2_OUT);
const GRAM_PARTIAL: Kernel = Kernel::new(&SHADER, "gram_partial", IN2_OUT);
const GRAM_REDUCE: Kernel = Kernel::new(&SHADER, "gram_reduce", IN1_OUT);

/// Values per chunk of a row sum (the shader's `CHUNK`).
const CHUNK: usize = 4096;
/// Words per index of the statistics buffer (the shader's `STATS`).
const STATS_STRIDE: usize = 8;
/// Side of the Gram tiles (the shader's `GBM`) and the depth step (`GBK`).
const GRAM_TILE: usize = 64;
const GRAM_STEP: usize = 16;
/// Least depth per chunk of the Gram pass, and about how many workgroups it aims at.
const GRAM_MIN_DEPTH: usize = 1024;
const GRAM_GROUPS: usize = 512;
/// Invocations per workgroup.
const WG: u64 = 256;

/// The target-target logits (and their gradients) are present.
const FLAG_TT: u32 = 1;
/// Row sums: store the square root.
const FLAG_SQRT: u32 = 2;

/// The shader's `Params`: count, rows, cols, chunks, flags, scale, 1/τ, offset, kc.
struct P {
    count: usize,
    rows: usize,
    cols: usize,
    chunks: usize,
    flags: u32,
    scale: f64,
    inv_tau: f64,
    offset: usize,
    kc: usize,
}

impl P {
    fn new(rows: usize, cols: usize) -> Self {
        P {
            count: 0,
            rows,
            cols,
            chunks: 1,
            flags: 0,
            scale: 0.0,
            inv_tau: 0.0,
            offset: 0,
            kc: 0,
        }
    }
    fn count(self, count: usize) -> Self {
        P { count, ..self }
    }
    fn flags(self, flags: u32) -> Self {
        P { flags, ..self }
    }
    fn build(&self, op: &'static str) -> Result<Params> {
        Params::new()
            .u(op, self.count)?
            .u(op, self.rows)?
            .u(op, self.cols)?
            .u(op, self.chunks)?
            .u(op, self.flags as usize)?
            .f(self.scale)
            .f(self.inv_tau)
            .u(op, self.offset)?
            .u(op, self.kc)
    }
}

/// `n·n` (or `rows·cols`) without overflow; the typed checks have bounded it already.
fn product(op: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or(BrainError::SizeOverflow { op })
}

/// One invocation per element over `p.count` elements.
fn per_element(
    be: &WgpuBackend,
    op: &'static str,
    kernel: Kernel,
    p: &P,
    buffers: &[&wgpu::Buffer],
) -> Result<()> {
    let params = p.build(op)?;
    be.gpu
        .dispatch(op, kernel, &params, buffers, (p.count as u64).div_ceil(WG))
}

/// One workgroup per index `0..groups`.
fn per_group(
    be: &WgpuBackend,
    op: &'static str,
    kernel: Kernel,
    p: &P,
    buffers: &[&wgpu::Buffer],
    groups: usize,
) -> Result<()> {
    let params = p.build(op)?;
    be.gpu.dispatch(op, kernel, &params, buffers, groups as u64)
}

/// `out[r] = Σ_k a[r,k]·b[r,k]` over `rows` rows of `cols` (its square root when
/// `sqrt`): one workgroup per chunk of a row, then one per row over the chunks' sums.
fn row_dots(
    be: &WgpuBackend,
    op: &'static str,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    sqrt: bool,
    out: &wgpu::Buffer,
) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    let chunks = cols.div_ceil(CHUNK).max(1);
    product(op, rows, cols)?;
    let p = |n: usize| -> Result<Params> {
        P {
            chunks,
            ..P::new(n, cols)
                .count(product(op, n, cols)?)
                .flags(if sqrt { FLAG_SQRT } else { 0 })
        }
        .build(op)
    };
    // Rows beyond one storage binding are summed in ranges of rows.
    let groups = |n: usize| -> Result<u64> { Ok(product(op, n, chunks)? as u64) };
    if chunks == 1 {
        let parts = [Part::Rows(a, cols), Part::Rows(b, cols), Part::Rows(out, 1)];
        return be
            .gpu
            .dispatch_rows(op, ROW_DOT_PARTIAL, &parts, rows, |_, n| {
                Ok((p(n)?, groups(n)?))
            });
    }
    let part = be.gpu.alloc(product(op, rows, chunks)?)?;
    let parts = [
        Part::Rows(a, cols),
        Part::Rows(b, cols),
        Part::Rows(&part, chunks),
    ];
    be.gpu
        .dispatch_rows(op, ROW_DOT_PARTIAL, &parts, rows, |_, n| {
            Ok((p(n)?, groups(n)?))
        })?;
    let parts = [Part::Rows(&part, chunks), Part::Rows(out, 1)];
    be.gpu
        .dispatch_rows(op, ROW_DOT_FINISH, &parts, rows, |_, n| {
            Ok((p(n)?, n as u64))
        })
}

/// One invocation per element of `rows` rows of `cols`, in ranges of rows past the
/// storage binding limit (`parts` bind per row).
fn per_row_element(
    be: &WgpuBackend,
    op: &'static str,
    kernel: Kernel,
    parts: &[Part<'_>],
    rows: usize,
    cols: usize,
) -> Result<()> {
    be.gpu.dispatch_rows(op, kernel, parts, rows, |_, n| {
        let count = product(op, n, cols)?;
        let params = P::new(n, cols).count(count).build(op)?;
        Ok((params, (count as u64).div_ceil(WG)))
    })
}

pub(crate) fn l2_normalize_rows_forward(
    be: &WgpuBackend,
    x: &WgpuBuffer,
    y: &mut WgpuBuffer,
    norms: &mut WgpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "l2_normalize_rows_forward";
    check::l2_normalize_rows_forward(x.len, y.len, norms.len, rows, cols)?;
    row_dots(be, OP, &x.buf, &x.buf, rows, cols, true, &norms.buf)?;
    let parts = [
        Part::Rows(&x.buf, cols),
        Part::Rows(&norms.buf, 1),
        Part::Rows(&y.buf, cols),
    ];
    per_row_element(be, OP, L2_FORWARD_APPLY, &parts, rows, cols)
}

pub(crate) fn l2_normalize_rows_backward(
    be: &WgpuBackend,
    dy: &WgpuBuffer,
    x: &WgpuBuffer,
    norms: &WgpuBuffer,
    dx: &mut WgpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "l2_normalize_rows_backward";
    check::l2_normalize_rows_backward(dy.len, x.len, norms.len, dx.len, rows, cols)?;
    let count = product(OP, rows, cols)?;
    if count == 0 {
        return Ok(());
    }
    let xdy = be.gpu.alloc(rows)?;
    row_dots(be, OP, &x.buf, &dy.buf, rows, cols, false, &xdy)?;
    let parts = [
        Part::Rows(&dy.buf, cols),
        Part::Rows(&x.buf, cols),
        Part::Rows(&norms.buf, 1),
        Part::Rows(&xdy, 1),
        Part::Rows(&dx.buf, cols),
    ];
    per_row_element(be, OP, L2_BACKWARD_APPLY, &parts, rows, cols)
}

/// The C_tt binding and flags: SoftCLIP's logits_tt, else C_pt again as a dummy.
fn tt_binding<'a>(
    kind: ContrastiveLoss,
    pt: &'a WgpuBuffer,
    tt: Option<&'a WgpuBuffer>,
) -> (&'a wgpu::Buffer, u32) {
    match (kind, tt) {
        (ContrastiveLoss::SoftClip, Some(tt)) => (&tt.buf, FLAG_TT),
        _ => (&pt.buf, 0),
    }
}

pub(crate) fn contrastive_forward(
    be: &WgpuBackend,
    kind: ContrastiveLoss,
    logits_pt: &WgpuBuffer,
    logits_tt: Option<&WgpuBuffer>,
    n: usize,
    loss: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "contrastive_forward";
    check::contrastive_forward(kind, logits_pt.len, logits_tt.map(|b| b.len), n, loss.len)?;
    let (tt, flags) = tt_binding(kind, logits_pt, logits_tt);
    let p = P::new(n, n).count(product(OP, n, n)?).flags(flags);
    let part = be.gpu.alloc(n)?;
    per_group(be, OP, LOSS_ROWS, &p, &[&logits_pt.buf, tt, &part], n)?;
    per_group(be, OP, LOSS_FINAL, &p, &[&part, &loss.buf], 1)
}

pub(crate) fn contrastive_backward(
    be: &WgpuBackend,
    kind: ContrastiveLoss,
    logits_pt: &WgpuBuffer,
    logits_tt: Option<&WgpuBuffer>,
    n: usize,
    scale: f64,
    dlogits_pt: &mut WgpuBuffer,
    dlogits_tt: Option<&mut WgpuBuffer>,
) -> Result<()> {
    const OP: &str = "contrastive_backward";
    check::contrastive_backward(
        kind,
        logits_pt.len,
        logits_tt.map(|b| b.len),
        n,
        scale,
        dlogits_pt.len,
        dlogits_tt.as_deref().map(|b| b.len),
    )?;
    let (tt, flags) = tt_binding(kind, logits_pt, logits_tt);
    let p = P {
        scale,
        ..P::new(n, n).count(product(OP, n, n)?).flags(flags)
    };
    let stats = be.gpu.alloc(product(OP, n, STATS_STRIDE)?)?;
    per_group(be, OP, STATS, &p, &[&logits_pt.buf, tt, &stats], n)?;
    per_element(
        be,
        OP,
        GRAD_PT,
        &p,
        &[&logits_pt.buf, tt, &stats, &dlogits_pt.buf],
    )?;
    if let Some(dtt) = dlogits_tt {
        if flags & FLAG_TT != 0 {
            per_element(be, OP, GRAD_TT, &p, &[&logits_pt.buf, tt, &stats, &dtt.buf])?;
        } else {
            // InfoNCE's labels do not depend on C_tt.
            crate::ops::elementwise::fill(be, dtt, 0.0)?;
        }
    }
    Ok(())
}

pub(crate) fn clip_logits_forward(
    be: &WgpuBackend,
    kind: ContrastiveLoss,
    g_pt: &WgpuBuffer,
    g_tt: Option<&WgpuBuffer>,
    p_sq: &WgpuBuffer,
    t_sq: &WgpuBuffer,
    n: usize,
    temperature: f64,
    logits_pt: &mut WgpuBuffer,
    logits_tt: Option<&mut WgpuBuffer>,
) -> Result<()> {
    const OP: &str = "clip_logits_forward";
    check::clip_logits_forward(
        kind,
        g_pt.len,
        g_tt.map(|b| b.len),
        p_sq.len,
        t_sq.len,
        n,
        temperature,
        logits_pt.len,
        logits_tt.as_deref().map(|b| b.len),
    )?;
    let p = P {
        inv_tau: 1.0 / temperature,
        ..P::new(n, n).count(product(OP, n, n)?)
    };
    per_element(
        be,
        OP,
        CLIP_LOGITS,
        &p,
        &[&g_pt.buf, &p_sq.buf, &t_sq.buf, &logits_pt.buf],
    )?;
    if let (Some(g), Some(out)) = (g_tt, logits_tt) {
        per_element(
            be,
            OP,
            CLIP_LOGITS,
            &p,
            &[&g.buf, &t_sq.buf, &t_sq.buf, &out.buf],
        )?;
    }
    Ok(())
}

pub(crate) fn clip_logits_backward(
    be: &WgpuBackend,
    kind: ContrastiveLoss,
    logits_pt: &WgpuBuffer,
    logits_tt: Option<&WgpuBuffer>,
    dlogits_pt: &WgpuBuffer,
    dlogits_tt: Option<&WgpuBuffer>,
    p_sq: &WgpuBuffer,
    t_sq: &WgpuBuffer,
    n: usize,
    temperature: f64,
    w_pt: &mut WgpuBuffer,
    d_p: Option<&mut WgpuBuffer>,
    w_tt: Option<&mut WgpuBuffer>,
) -> Result<()> {
    const OP: &str = "clip_logits_backward";
    check::clip_logits_backward(
        kind,
        logits_pt.len,
        logits_tt.map(|b| b.len),
        dlogits_pt.len,
        dlogits_tt.map(|b| b.len),
        p_sq.len,
        t_sq.len,
        n,
        temperature,
        w_pt.len,
        d_p.as_deref().map(|b| b.len),
        w_tt.as_deref().map(|b| b.len),
    )?;
    let p = P {
        inv_tau: 1.0 / temperature,
        ..P::new(n, n).count(product(OP, n, n)?)
    };
    let (c, dc) = (&logits_pt.buf, &dlogits_pt.buf);
    // w_pt[i,j] = dC_ij·r_i·s_j/τ: the logits' formula applied to dC_pt.
    per_element(
        be,
        OP,
        CLIP_LOGITS,
        &p,
        &[dc, &p_sq.buf, &t_sq.buf, &w_pt.buf],
    )?;
    if let Some(d_p) = d_p {
        per_group(be, OP, CLIP_DP_ROWS, &p, &[c, dc, &p_sq.buf, &d_p.buf], n)?;
    }
    if let Some(w_tt) = w_tt {
        // The C_tt terms need both the logits and their gradient (as the reference).
        let (ctt, e, flags) = match (logits_tt, dlogits_tt) {
            (Some(ctt), Some(e)) => (&ctt.buf, &e.buf, FLAG_TT),
            _ => (c, c, 0),
        };
        let p = p.flags(flags);
        per_group(
            be,
            OP,
            CLIP_WTT_ROWS,
            &p,
            &[c, dc, ctt, e, &t_sq.buf, &w_tt.buf],
            n,
        )?;
    }
    Ok(())
}

pub(crate) fn clip_grams_forward(
    be: &WgpuBackend,
    kind: ContrastiveLoss,
    preds: &WgpuBuffer,
    targets: &WgpuBuffer,
    n: usize,
    d: usize,
    p_sq: &mut WgpuBuffer,
    t_sq: &mut WgpuBuffer,
    g_pt: &mut WgpuBuffer,
    g_tt: Option<&mut WgpuBuffer>,
) -> Result<()> {
    const OP: &str = "clip_grams_forward";
    check::clip_grams_forward(
        kind,
        preds.len,
        targets.len,
        n,
        d,
        p_sq.len,
        t_sq.len,
        g_pt.len,
        g_tt.as_deref().map(|b| b.len),
    )?;
    let (pr, tg) = (&preds.buf, &targets.buf);
    row_dots(be, OP, pr, pr, n, d, false, &p_sq.buf)?;
    row_dots(be, OP, tg, tg, n, d, false, &t_sq.buf)?;
    grams(be, OP, pr, tg, n, d, &g_pt.buf, g_tt.map(|g| &g.buf))
}

/// `g_pt = P·Tᵀ` and (when given) `g_tt = T·Tᵀ` over rows of `d`: the stacked
/// `[P; T]·Tᵀ` in 64×64 tiles, the depth split into chunks so that even one tile
/// gives the device hundreds of workgroups, then a sum over the chunks.
fn grams(
    be: &WgpuBackend,
    op: &'static str,
    pr: &wgpu::Buffer,
    tg: &wgpu::Buffer,
    n: usize,
    d: usize,
    g_pt: &wgpu::Buffer,
    g_tt: Option<&wgpu::Buffer>,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let ma = if g_tt.is_some() { 2 * n } else { n };
    let tiles = ma.div_ceil(GRAM_TILE) * n.div_ceil(GRAM_TILE);
    let chunks = d
        .div_ceil(GRAM_MIN_DEPTH)
        .min(GRAM_GROUPS.div_ceil(tiles))
        .max(1);
    let kc = d.div_ceil(chunks).div_ceil(GRAM_STEP) * GRAM_STEP;
    let chunks = d.div_ceil(kc.max(1)).max(1);
    let part = be.gpu.alloc(product(op, product(op, chunks, ma)?, n)?)?;
    let p = P {
        chunks,
        kc,
        ..P::new(n, d).count(ma)
    };
    per_group(
        be,
        op,
        GRAM_PARTIAL,
        &p,
        &[pr, tg, &part],
        product(op, tiles, chunks)?,
    )?;
    let nn = product(op, n, n)?;
    let reduce = |offset: usize, out: &wgpu::Buffer| {
        let p = P {
            chunks,
            offset,
            ..P::new(n, ma).count(nn)
        };
        per_element(be, op, GRAM_REDUCE, &p, &[&part, out])
    };
    reduce(0, g_pt)?;
    if let Some(g_tt) = g_tt {
        reduce(n, g_tt)?;
    }
    Ok(())
}

pub(crate) fn clip_inputs_backward(
    be: &WgpuBackend,
    kind: ContrastiveLoss,
    w_pt: &WgpuBuffer,
    d_p: &WgpuBuffer,
    w_tt: &WgpuBuffer,
    preds: &WgpuBuffer,
    targets: &WgpuBuffer,
    n: usize,
    d: usize,
    dpreds: Option<&mut WgpuBuffer>,
    dtargets: Option<&mut WgpuBuffer>,
) -> Result<()> {
    const OP: &str = "clip_inputs_backward";
    check::clip_inputs_backward(
        w_pt.len,
        d_p.len,
        w_tt.len,
        preds.len,
        targets.len,
        n,
        d,
        dpreds.as_deref().map(|b| b.len),
        dtargets.as_deref().map(|b| b.len),
    )?;
    let (pr, tg) = (&preds.buf, &targets.buf);
    let diag = P::new(n, d).count(product(OP, n, d)?);
    // [n, d] += op(W)[n, n]·X[n, d]
    let acc = |trans: bool| Gemm::new(n, d, n).trans(trans, false).scale(1.0, 1.0);
    if let Some(dp) = dpreds {
        // dP += W·T + diag(d_p)·P
        gemm_unchecked(be, OP, &acc(false), &w_pt.buf, tg, &dp.buf)?;
        per_element(be, OP, DIAG_AXPY, &diag, &[&d_p.buf, pr, &dp.buf])?;
    }
    if let Some(dt) = dtargets {
        // dT += Wᵀ·P + W_tt·T (InfoNCE: W_tt diagonal)
        gemm_unchecked(be, OP, &acc(true), &w_pt.buf, pr, &dt.buf)?;
        if kind == ContrastiveLoss::SoftClip {
            gemm_unchecked(be, OP, &acc(false), &w_tt.buf, tg, &dt.buf)?;
        } else {
            per_element(be, OP, DIAG_AXPY, &diag, &[&w_tt.buf, tg, &dt.buf])?;
        }
    }
    Ok(())
}
