//! Row reductions (sum, mean, max, logsumexp, sum of squares): a segment of
//! invocations per row (a whole workgroup for rows of 256 values or more, a power-of-2
//! share of one for shorter rows), a strided share per invocation, then a tree in
//! workgroup memory.

use crate::gpu::{Kernel, Params, Shader, READ_RW};
use crate::{WgpuBackend, WgpuBuffer};
use brain_core::{check, Result, RowReduce};

static SHADER: Shader = shader!("reduce.wgsl");
const REDUCE_ROWS: Kernel = Kernel::new(&SHADER, "reduce_rows", READ_RW);
/// Invocations per workgroup.
const WG: usize = 256;

/// The shader's code of `op`.
fn op_code(op: RowReduce) -> usize {
    match op {
        RowReduce::Sum => 0,
        RowReduce::Mean => 1,
        RowReduce::Max => 2,
        RowReduce::LogSumExp => 3,
        RowReduce::SumSquares => 4,
    }
}

/// `out[r] = reduce(x[r, :])`.
pub(crate) fn reduce_rows(
    be: &WgpuBackend,
    op: RowReduce,
    x: &WgpuBuffer,
    out: &mut WgpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "reduce_rows";
    check::reduce_rows(OP, x.len, out.len, rows, cols)?;
    // Invocations per row: the power of 2 ≥ cols, at most a workgroup.
    let seg = cols.next_power_of_two().min(WG);
    let params = Params::new()
        .u(OP, rows)?
        .u(OP, cols)?
        .u(OP, op_code(op))?
        .u(OP, seg)?
        .u(OP, x.len)?;
    // No rows, no dispatch.
    let groups = rows.div_ceil(WG / seg) as u64;
    be.gpu
        .dispatch(OP, REDUCE_ROWS, &params, &[&x.buf, &out.buf], groups)
}
