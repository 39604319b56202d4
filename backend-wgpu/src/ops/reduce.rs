//! Row reductions (sum, mean, max, logsumexp, sum of squares): a segment of
//! invocations per row (a whole workgroup for rows of 256 values or more, a power-of-2
//! share of one for shorter rows), a strided share per invocation, then a tree in
//! workgroup memory. Rows beyond one storage binding are reduced in ranges of rows.

use crate::gpu::{Kernel, Params, Part, Shader, READ_RW};
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
    Params::new().u(OP, x.len)?; // refuse what u32 cannot index
                                 // Rows beyond one storage binding are reduced in ranges of rows (no dispatch for
                                 // no rows); a single row wider than a binding is refused (Unsupported).
    let parts = [Part::Rows(&x.buf, cols), Part::Rows(&out.buf, 1)];
    be.gpu.dispatch_rows(OP, REDUCE_ROWS, &parts, rows, |_, n| {
        let params = Params::new()
            .u(OP, n)?
            .u(OP, cols)?
            .u(OP, op_code(op))?
            .u(OP, seg)?
            .u(OP, n * cols)?;
        Ok((params, n.div_ceil(WG / seg) as u64))
    })
}
