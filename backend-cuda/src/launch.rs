//! Small helpers for launching kernels: grid sizes, checked dimensions, and the
//! mapping of driver, cuBLAS and lock errors to [`BrainError`].

use brain_core::{BrainError, Result};
use cudarc::cublas::result::CublasError;
use cudarc::cublas::sys::cublasStatus_t;
use cudarc::driver::sys::cudaError_enum as E;
use cudarc::driver::{DriverError, LaunchArgs, LaunchConfig};
use std::sync::{Mutex, MutexGuard};

/// Threads per block of the 1-D element-wise kernels.
pub(crate) const BLOCK: u32 = 256;

/// Most blocks a grid-stride kernel is launched with: enough to fill any current GPU
/// many times over; larger problems loop inside the kernel.
pub(crate) const MAX_GRID: u32 = 1 << 16;

/// A 1-D launch of `block` threads per block for a grid-stride loop over `n` items:
/// ⌈n / block⌉ blocks, at most [`MAX_GRID`] (and at least 1).
pub(crate) fn grid_1d(n: usize, block: u32) -> LaunchConfig {
    let block = block.max(1);
    let blocks = n.div_ceil(block as usize).clamp(1, MAX_GRID as usize) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// [`grid_1d`] with [`BLOCK`] threads per block.
pub(crate) fn elementwise(n: usize) -> LaunchConfig {
    grid_1d(n, BLOCK)
}

/// `n` items as one block each, for kernels that loop over blocks with a stride of
/// `gridDim.x` (e.g. one row per block): at most [`MAX_GRID`] blocks.
pub(crate) fn blocks(n: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.clamp(1, MAX_GRID as usize) as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `v` as a kernel's `u64` argument (sizes cross as 64-bit; `usize` is at most 64 bits
/// on every supported host).
pub(crate) fn u64_of(v: usize) -> u64 {
    v as u64
}

/// `v` as an `i32` dimension (cuBLAS's `int`), or a typed error naming it.
pub(crate) fn i32_dim(op: &'static str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| BrainError::InvalidArgument {
        op,
        reason: format!("{what} = {v} exceeds the 32-bit limit of the CUDA call"),
    })
}

/// `v` as a `u32` dimension (grid sizes), or a typed error naming it.
pub(crate) fn u32_dim(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| BrainError::InvalidArgument {
        op,
        reason: format!("{what} = {v} exceeds the 32-bit limit of the CUDA launch"),
    })
}

/// `v` as an `i64` stride (cuBLAS's `long long`).
pub(crate) fn i64_dim(op: &'static str, what: &str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| BrainError::InvalidArgument {
        op,
        reason: format!("{what} = {v} exceeds the 64-bit signed limit of the CUDA call"),
    })
}

/// Launch the kernel set up in `args` on its stream (asynchronous: errors in the
/// kernel itself surface at the next synchronising call).
pub(crate) fn run(name: &str, args: &mut LaunchArgs<'_>, cfg: LaunchConfig) -> Result<()> {
    // SAFETY: callers build `args` with `launch_kernel!`, whose contract is that the
    // arguments match the kernel's parameter list in type and order, and that every
    // pointer argument comes from a live buffer of this device with as many elements
    // as the kernel will touch (the Backend impl checks the lengths first).
    unsafe { args.launch(cfg) }
        .map(|_| ())
        .map_err(|e| driver_error(name, e))
}

/// Launch `$name` of `$family` on `$dev` (on the GPU, or run by the emulator) with
/// `$cfg` and the given arguments
/// (identifiers of locals: pointers as `u64` from [`Device::ptr`], scalars as the
/// kernel's type: `f32`, `u64`, `u32`, `i32`).
///
/// Contract (what makes the launch sound): the arguments match the kernel's parameter
/// list in type and order, and every pointer's buffer holds every element the kernel
/// touches.
///
/// [`Device::ptr`]: crate::device::Device::ptr
macro_rules! launch_kernel {
    ($dev:expr, $family:expr, $name:expr, $cfg:expr; $($arg:ident),* $(,)?) => {{
        let dev: &$crate::device::Device = &*$dev;
        match dev.kind() {
            $crate::device::Kind::Gpu(gpu) => {
                use cudarc::driver::PushKernelArg as _;
                let function = gpu.function($family, $name)?;
                let mut args = gpu.stream().launch_builder(&function);
                $( args.arg(&$arg); )*
                $crate::launch::run($name, &mut args, $cfg)
            }
            $crate::device::Kind::Emu(emu) => {
                let args: &[$crate::emu::Arg<'_>] = &[$( $crate::emu::Arg::new(&$arg) ),*];
                emu.launch($family, $name, $cfg, args)
            }
        }
    }};
}
pub(crate) use launch_kernel;

/// Lock a mutex; a poisoned one (a panic on another thread while it was held) is an
/// error, not a second panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock().map_err(|_| {
        BrainError::Backend("cuda: internal state poisoned by a panic on another thread".into())
    })
}

fn driver_error_name(e: &DriverError) -> String {
    match e.error_string() {
        Ok(s) => format!("{:?} ({})", e.0, s.to_string_lossy()),
        Err(_) => format!("{:?}", e.0),
    }
}

/// A driver error as a [`BrainError`]: out of memory, device lost (faults, ECC, the
/// device gone), unsupported (no device, PTX or driver too old), or a backend error
/// with the driver's text.
pub(crate) fn driver_error(op: &str, e: DriverError) -> BrainError {
    let what = driver_error_name(&e);
    match e.0 {
        E::CUDA_ERROR_OUT_OF_MEMORY => BrainError::OutOfMemory { bytes: 0 },
        E::CUDA_ERROR_NO_DEVICE
        | E::CUDA_ERROR_INVALID_DEVICE
        | E::CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER
        | E::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
        | E::CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE
        | E::CUDA_ERROR_UNSUPPORTED_PTX_VERSION
        | E::CUDA_ERROR_NO_BINARY_FOR_GPU
        | E::CUDA_ERROR_JIT_COMPILER_NOT_FOUND
        | E::CUDA_ERROR_NOT_SUPPORTED
        | E::CUDA_ERROR_STUB_LIBRARY => BrainError::Unsupported(format!("cuda: {op}: {what}")),
        E::CUDA_ERROR_ILLEGAL_ADDRESS
        | E::CUDA_ERROR_ILLEGAL_INSTRUCTION
        | E::CUDA_ERROR_MISALIGNED_ADDRESS
        | E::CUDA_ERROR_INVALID_ADDRESS_SPACE
        | E::CUDA_ERROR_INVALID_PC
        | E::CUDA_ERROR_HARDWARE_STACK_ERROR
        | E::CUDA_ERROR_LAUNCH_FAILED
        | E::CUDA_ERROR_LAUNCH_TIMEOUT
        | E::CUDA_ERROR_ECC_UNCORRECTABLE
        | E::CUDA_ERROR_NVLINK_UNCORRECTABLE
        | E::CUDA_ERROR_DEVICE_UNAVAILABLE
        | E::CUDA_ERROR_DEINITIALIZED
        | E::CUDA_ERROR_CONTEXT_IS_DESTROYED
        | E::CUDA_ERROR_ASSERT => BrainError::DeviceLost(format!("cuda: {op}: {what}")),
        _ => BrainError::Backend(format!("cuda: {op}: {what}")),
    }
}

/// A driver error of an allocation of `bytes`: out of memory carries the size.
pub(crate) fn alloc_error(op: &str, bytes: usize, e: DriverError) -> BrainError {
    match driver_error(op, e) {
        BrainError::OutOfMemory { .. } => BrainError::OutOfMemory { bytes },
        other => other,
    }
}

/// A cuBLAS error as a [`BrainError`].
pub(crate) fn cublas_error(op: &str, e: CublasError) -> BrainError {
    match e.0 {
        cublasStatus_t::CUBLAS_STATUS_ALLOC_FAILED => BrainError::OutOfMemory { bytes: 0 },
        cublasStatus_t::CUBLAS_STATUS_ARCH_MISMATCH
        | cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED
        | cublasStatus_t::CUBLAS_STATUS_NOT_INITIALIZED => {
            BrainError::Unsupported(format!("cuda: {op}: cuBLAS {:?}", e.0))
        }
        cublasStatus_t::CUBLAS_STATUS_EXECUTION_FAILED => {
            BrainError::DeviceLost(format!("cuda: {op}: cuBLAS {:?}", e.0))
        }
        s => BrainError::Backend(format!("cuda: {op}: cuBLAS {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_are_capped_and_never_empty() {
        assert_eq!(elementwise(0).grid_dim.0, 1);
        assert_eq!(elementwise(1).grid_dim.0, 1);
        assert_eq!(elementwise(257).grid_dim.0, 2);
        assert_eq!(elementwise(usize::MAX).grid_dim.0, MAX_GRID);
        assert_eq!(blocks(3, 128).grid_dim, (3, 1, 1));
        assert_eq!(blocks(usize::MAX, 128).grid_dim.0, MAX_GRID);
    }

    #[test]
    fn dims_out_of_range_are_errors() {
        assert_eq!(i32_dim("gemm", "m", 7), Ok(7));
        assert!(matches!(
            i32_dim("gemm", "m", 1 << 31),
            Err(BrainError::InvalidArgument { op: "gemm", .. })
        ));
        assert!(u32_dim("x", "n", usize::MAX).is_err());
    }
}
