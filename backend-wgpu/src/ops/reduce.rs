//! reduce kernels on wgpu: not written yet (issue 6).

use crate::{not_yet, WgpuBackend, WgpuBuffer};
use brain_core::*;

pub(crate) fn reduce_rows(
    _be: &WgpuBackend,
    _op: RowReduce,
    _x: &WgpuBuffer,
    _out: &mut WgpuBuffer,
    _rows: usize,
    _cols: usize,
) -> Result<()> {
    Err(not_yet("reduce_rows"))
}
