//! LayerNorm and GroupNorm, forward and backward.
//!
//! Rows of values that share statistics (a LayerNorm row, or the `(C/G)·S` values of
//! one GroupNorm `(n, g)`) get a segment of invocations each: a whole workgroup for
//! rows of 256 values or more, a power-of-2 share of one for shorter rows. Each
//! invocation folds a strided share of its row in chunks, and a tree in workgroup
//! memory combines the segment, so rows of any length work and sums err by about
//! log2(len)·u. The forward pass is one kernel for both norms (two-pass variance around
//! a first mean, so offset inputs keep their digits). Parameter gradients are column
//! sums over rows, reduced in blocks of [`RB`] rows level by level: deterministic, and
//! the error grows with the number of levels, not with the number of rows.
//!
//! Past the storage binding limit: the forward pass (both norms) and the LayerNorm
//! backward run in ranges of rows, with the results of one dispatch; a single row
//! wider than a binding, and the GroupNorm backward of tensors beyond one binding,
//! are refused ([`brain_core::BrainError::Unsupported`]).

use crate::gpu::{Bindings, Kernel, Params, Part, Shader};
use crate::{same_len, WgpuBackend, WgpuBuffer};
use brain_core::{check, GroupNormShape, Result};

static SHADER: Shader = shader!("norm.wgsl");

// Binding numbers of norm.wgsl: 1 x, 2 gamma, 3 beta, 4 dy, 5 mean, 6 rstd (read);
// 7 y/dx, 8 mean, 9 rstd, 10 partials (read_write); 11 partials (read);
// 12 dgamma, 13 dbeta (read_write).
const FORWARD: Bindings = &[
    (1, true),
    (2, true),
    (3, true),
    (7, false),
    (8, false),
    (9, false),
];
const DX: Bindings = &[
    (1, true),
    (2, true),
    (4, true),
    (5, true),
    (6, true),
    (7, false),
];
const LN_PARTIALS: Bindings = &[(1, true), (4, true), (5, true), (6, true), (10, false)];
const GN_BACKWARD: Bindings = &[
    (1, true),
    (2, true),
    (4, true),
    (5, true),
    (6, true),
    (7, false),
    (10, false),
];
const COL_SUM: Bindings = &[(11, true), (10, false)];
const COL_SUM_FINAL: Bindings = &[(11, true), (12, false), (13, false)];

const NORM_FORWARD: Kernel = Kernel::new(&SHADER, "norm_forward", FORWARD);
const LAYERNORM_DX: Kernel = Kernel::new(&SHADER, "layernorm_dx", DX);
const LAYERNORM_PARAM_PARTIALS: Kernel =
    Kernel::new(&SHADER, "layernorm_param_partials", LN_PARTIALS);
const GROUPNORM_BACKWARD: Kernel = Kernel::new(&SHADER, "groupnorm_backward", GN_BACKWARD);
const COL_SUM_KERNEL: Kernel = Kernel::new(&SHADER, "col_sum", COL_SUM);
const COL_SUM_FINAL_KERNEL: Kernel = Kernel::new(&SHADER, "col_sum_final", COL_SUM_FINAL);

/// Rows per block of the column sums (the shader's `RB`).
const RB: usize = 128;
/// Columns per workgroup of the column sums (the shader's `TC`).
const TC: usize = 64;
/// Invocations per workgroup.
const WG: usize = 256;

/// The shape of one norm call as the shader's `Params` sees it.
#[derive(Clone, Copy)]
struct Rows {
    /// Rows sharing statistics (LayerNorm rows, or N·G).
    rows: usize,
    /// Values per row.
    len: usize,
    /// Values per channel within a row (LayerNorm: 1).
    spatial: usize,
    /// Groups (LayerNorm: 1).
    groups: usize,
    /// Channels per group (LayerNorm: cols).
    cpg: usize,
    /// γ's length.
    channels: usize,
}

impl Rows {
    fn layernorm(rows: usize, cols: usize) -> Self {
        Rows {
            rows,
            len: cols,
            spatial: 1,
            groups: 1,
            cpg: cols,
            channels: cols,
        }
    }

    fn groupnorm(s: &GroupNormShape) -> Self {
        let cpg = s.channels / s.groups;
        Rows {
            rows: s.batch * s.groups,
            len: cpg * s.spatial,
            spatial: s.spatial,
            groups: s.groups,
            cpg,
            channels: s.channels,
        }
    }

    /// The same shape over `rows` rows (one range of a chunked dispatch).
    fn with_rows(self, rows: usize) -> Self {
        Rows { rows, ..self }
    }

    /// Invocations per row in the row kernels: the power of 2 ≥ len, at most a
    /// workgroup (short rows share one).
    fn row_seg(&self) -> usize {
        self.len.next_power_of_two().min(WG)
    }

    /// Workgroups of the row kernels.
    fn row_groups(&self) -> u64 {
        self.rows.div_ceil(WG / self.row_seg()) as u64
    }

    /// The shader's `Params`, with `seg` invocations per segment.
    fn params(&self, op: &'static str, eps: f64, seg: usize) -> Result<Params> {
        Params::new()
            .u(op, self.rows)?
            .u(op, self.len)?
            .u(op, self.spatial)?
            .u(op, self.groups)?
            .u(op, self.cpg)?
            .u(op, self.channels)?
            .u(op, seg)?
            .f(eps)
            .u(op, self.rows * self.len)
    }
}

/// The column-sum parameters: `rows` × `width` input, `channels` = width/2.
fn col_params(op: &'static str, rows: usize, width: usize, channels: usize) -> Result<Params> {
    Params::new()
        .u(op, rows)?
        .u(op, width)?
        .u(op, 1)?
        .u(op, 1)?
        .u(op, width)?
        .u(op, channels)?
        .u(op, 1)?
        .f(0.0)
        .u(op, rows * width)
}

/// `dgamma[c] += Σ_r part[r, c]`, `dbeta[c] += Σ_r part[r, C + c]` over `part[rows, 2·C]`:
/// blocks of `RB` rows summed level by level, the last level added into the outputs.
fn add_column_sums(
    be: &WgpuBackend,
    op: &'static str,
    part: wgpu::Buffer,
    mut rows: usize,
    channels: usize,
    dgamma: &wgpu::Buffer,
    dbeta: &wgpu::Buffer,
) -> Result<()> {
    let width = 2 * channels;
    let tiles = width.div_ceil(TC) as u64;
    let mut part = part;
    while rows > RB {
        let blocks = rows.div_ceil(RB);
        let next = be.gpu.alloc(blocks * width)?;
        let parts = [Part::Rows(&part, width), Part::Blocks(&next, RB, width)];
        be.gpu
            .dispatch_rows(op, COL_SUM_KERNEL, &parts, rows, |_, n| {
                let params = col_params(op, n, width, channels)?;
                Ok((params, n.div_ceil(RB) as u64 * tiles))
            })?;
        part = next;
        rows = blocks;
    }
    let params = col_params(op, rows, width, channels)?;
    be.gpu.dispatch(
        op,
        COL_SUM_FINAL_KERNEL,
        &params,
        &[&part, dgamma, dbeta],
        tiles,
    )
}

/// LayerNorm over the last dim of `x[rows, cols]`; saves `mean[rows]`, `rstd[rows]`.
pub(crate) fn layernorm_forward(
    be: &WgpuBackend,
    x: &WgpuBuffer,
    gamma: &WgpuBuffer,
    beta: &WgpuBuffer,
    y: &mut WgpuBuffer,
    mean: &mut WgpuBuffer,
    rstd: &mut WgpuBuffer,
    rows: usize,
    cols: usize,
    eps: f64,
) -> Result<()> {
    const OP: &str = "layernorm_forward";
    check::layernorm(
        OP,
        x.len,
        gamma.len,
        beta.len,
        (mean.len, rstd.len),
        rows,
        cols,
    )?;
    same_len(OP, "y", y.len, x.len)?;
    let shape = Rows::layernorm(rows, cols);
    forward(be, OP, &shape, x, gamma, beta, y, mean, rstd, eps)
}

/// The forward kernel of both norms, one workgroup per row. Rows beyond one storage
/// binding are normalised in ranges of whole batch items (multiples of the groups, so
/// that a row's channels stay where the kernel finds them).
fn forward(
    be: &WgpuBackend,
    op: &'static str,
    shape: &Rows,
    x: &WgpuBuffer,
    gamma: &WgpuBuffer,
    beta: &WgpuBuffer,
    y: &WgpuBuffer,
    mean: &WgpuBuffer,
    rstd: &WgpuBuffer,
    eps: f64,
) -> Result<()> {
    shape.params(op, eps, shape.row_seg())?; // refuse what u32 cannot index
    let parts = [
        Part::Rows(&x.buf, shape.len),
        Part::Whole(&gamma.buf),
        Part::Whole(&beta.buf),
        Part::Rows(&y.buf, shape.len),
        Part::Rows(&mean.buf, 1),
        Part::Rows(&rstd.buf, 1),
    ];
    let multiple = shape.groups.max(1);
    be.gpu
        .dispatch_rows_by(op, NORM_FORWARD, &parts, shape.rows, multiple, |_, n| {
            let s = shape.with_rows(n);
            Ok((s.params(op, eps, s.row_seg())?, s.row_groups()))
        })
}

/// `dx` overwritten; `dgamma += Σ dy·x̂`, `dbeta += Σ dy`.
pub(crate) fn layernorm_backward(
    be: &WgpuBackend,
    dy: &WgpuBuffer,
    x: &WgpuBuffer,
    gamma: &WgpuBuffer,
    mean: &WgpuBuffer,
    rstd: &WgpuBuffer,
    dx: &mut WgpuBuffer,
    dgamma: &mut WgpuBuffer,
    dbeta: &mut WgpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "layernorm_backward";
    check::layernorm(
        OP,
        x.len,
        dgamma.len,
        dbeta.len,
        (mean.len, rstd.len),
        rows,
        cols,
    )?;
    same_len(OP, "gamma", gamma.len, cols)?;
    same_len(OP, "dy", dy.len, x.len)?;
    same_len(OP, "dx", dx.len, x.len)?;
    if rows == 0 {
        return Ok(()); // no dx to write, nothing to add
    }
    let shape = Rows::layernorm(rows, cols);
    shape.params(OP, 0.0, shape.row_seg())?; // refuse what u32 cannot index
                                             // Rows beyond one storage binding go in ranges of rows (whole RB blocks for the
                                             // partials, so that every block sums the rows it sums in one dispatch).
    let parts = [
        Part::Rows(&x.buf, cols),
        Part::Whole(&gamma.buf),
        Part::Rows(&dy.buf, cols),
        Part::Rows(&mean.buf, 1),
        Part::Rows(&rstd.buf, 1),
        Part::Rows(&dx.buf, cols),
    ];
    be.gpu
        .dispatch_rows(OP, LAYERNORM_DX, &parts, rows, |_, n| {
            let s = shape.with_rows(n);
            Ok((s.params(OP, 0.0, s.row_seg())?, s.row_groups()))
        })?;
    let blocks = rows.div_ceil(RB);
    let part = be.gpu.alloc(blocks * 2 * cols)?;
    let parts = [
        Part::Rows(&x.buf, cols),
        Part::Rows(&dy.buf, cols),
        Part::Rows(&mean.buf, 1),
        Part::Rows(&rstd.buf, 1),
        Part::Blocks(&part, RB, 2 * cols),
    ];
    let tiles = cols.div_ceil(TC) as u64;
    be.gpu
        .dispatch_rows(OP, LAYERNORM_PARAM_PARTIALS, &parts, rows, |_, n| {
            let s = shape.with_rows(n);
            Ok((
                s.params(OP, 0.0, s.row_seg())?,
                n.div_ceil(RB) as u64 * tiles,
            ))
        })?;
    add_column_sums(be, OP, part, blocks, cols, &dgamma.buf, &dbeta.buf)
}

/// GroupNorm on `x[N, C, spatial]`; saves `mean[N·G]`, `rstd[N·G]`.
pub(crate) fn groupnorm_forward(
    be: &WgpuBackend,
    x: &WgpuBuffer,
    gamma: &WgpuBuffer,
    beta: &WgpuBuffer,
    y: &mut WgpuBuffer,
    mean: &mut WgpuBuffer,
    rstd: &mut WgpuBuffer,
    shape: &GroupNormShape,
    eps: f64,
) -> Result<()> {
    const OP: &str = "groupnorm_forward";
    check::groupnorm(OP, x.len, gamma.len, beta.len, (mean.len, rstd.len), shape)?;
    same_len(OP, "y", y.len, x.len)?;
    // Zero channels still dispatches: the kernel writes the 0/0 statistics (NaN).
    forward(
        be,
        OP,
        &Rows::groupnorm(shape),
        x,
        gamma,
        beta,
        y,
        mean,
        rstd,
        eps,
    )
}

/// `dx` overwritten; `dgamma`, `dbeta` accumulated.
pub(crate) fn groupnorm_backward(
    be: &WgpuBackend,
    dy: &WgpuBuffer,
    x: &WgpuBuffer,
    gamma: &WgpuBuffer,
    mean: &WgpuBuffer,
    rstd: &WgpuBuffer,
    dx: &mut WgpuBuffer,
    dgamma: &mut WgpuBuffer,
    dbeta: &mut WgpuBuffer,
    shape: &GroupNormShape,
) -> Result<()> {
    const OP: &str = "groupnorm_backward";
    check::groupnorm(
        OP,
        x.len,
        dgamma.len,
        dbeta.len,
        (mean.len, rstd.len),
        shape,
    )?;
    same_len(OP, "gamma", gamma.len, shape.channels)?;
    same_len(OP, "dy", dy.len, x.len)?;
    same_len(OP, "dx", dx.len, x.len)?;
    let rows = Rows::groupnorm(shape);
    if rows.rows == 0 || rows.len == 0 {
        return Ok(()); // no dx to write, nothing to add
    }
    // One segment of invocations per channel, the power of 2 ≥ S (at most 256).
    let seg = shape.spatial.next_power_of_two().min(WG);
    let params = rows.params(OP, 0.0, seg)?;
    // Per-(n, c) sums of dy·x̂ and dy: [N, 2·C], reduced over n afterwards.
    let part = be.gpu.alloc(shape.batch * 2 * shape.channels)?;
    be.gpu.dispatch(
        OP,
        GROUPNORM_BACKWARD,
        &params,
        &[
            &x.buf, &gamma.buf, &dy.buf, &mean.buf, &rstd.buf, &dx.buf, &part,
        ],
        rows.rows as u64,
    )?;
    add_column_sums(
        be,
        OP,
        part,
        shape.batch,
        shape.channels,
        &dgamma.buf,
        &dbeta.buf,
    )
}
