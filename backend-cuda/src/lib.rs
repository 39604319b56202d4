//! # backend-cuda
//!
//! The CUDA implementation of [`brain_core::Backend`]: f32 kernels written in CUDA C,
//! compiled at run time by NVRTC, and GEMM through cuBLAS, all through
//! [cudarc](https://docs.rs/cudarc) with **dynamic loading**: nothing CUDA is linked
//! at build time, so the crate builds and its tests run on machines without CUDA,
//! where every entry point returns a typed error instead.
//!
//! ```
//! use backend_cuda::CudaBackend;
//! use brain_core::{Backend, BrainError};
//!
//! # fn main() -> Result<(), BrainError> {
//! let be = match CudaBackend::new() {
//!     Ok(be) => be,
//!     // No driver, no GPU, no NVRTC or no cuBLAS: a typed error, never a panic.
//!     Err(e) => {
//!         assert!(matches!(e, BrainError::Unsupported(_)));
//!         return Ok(());
//!     }
//! };
//! // y[2,3] = x[2,4] · W[3,4]ᵀ + b[3]
//! let x = be.upload(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])?;
//! let w = be.upload(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0])?;
//! let b = be.upload(&[0.5, 0.5, 0.5])?;
//! let mut y = be.alloc(6)?;
//! be.linear_forward(&x, &w, Some(&b), &mut y, 2, 4, 3)?;
//! assert_eq!(be.download_vec(&y)?, vec![1.5, 2.5, 7.5, 5.5, 6.5, 15.5]);
//! // Wrong lengths are an error, not a panic.
//! assert!(be.linear_forward(&x, &w, Some(&b), &mut y, 2, 4, 2).is_err());
//! # Ok(())
//! # }
//! ```
//!
//! ## Design
//!
//! - **Device** (`src/device.rs`): one context, one non-blocking stream on which every
//!   call is queued in order, one cuBLAS handle bound to that stream. Calls are
//!   asynchronous; only [`Backend::download`] and [`Backend::sync`] wait. No kernel
//!   call reads anything back to the host (loss values stay in 1-element buffers).
//!   cudarc's per-buffer event tracking is off (one stream needs none).
//! - **Buffers** ([`CudaBuffer`]): device f32, stream-ordered allocation, freed in
//!   stream order on drop; a buffer can only be used with the backend that made it
//!   (an error otherwise). Out of memory is [`BrainError::OutOfMemory`].
//! - **Kernels** (`kernels/<family>.cu`): one CUDA C file per kernel family, embedded
//!   with `include_str!`, with the shared `kernels/common.cuh` (Philox4x32-10 exactly as
//!   `brain_core::philox`, warp and block reductions) handed to NVRTC as an in-memory
//!   header. `src/module_cache.rs` compiles a family the first time one of its
//!   kernels is used on a device, loads it and caches the module and every function
//!   looked up in it. For the device's own architecture NVRTC emits a CUBIN (no
//!   driver JIT); for a GPU newer than NVRTC knows, PTX for the newest architecture it
//!   does know, which the driver JIT-compiles. [`compile_ptx`] is the same compile to
//!   PTX, usable without a driver (CI checks every kernel with it).
//! - **Ops** (`src/ops/<family>.rs`): plain functions, one per Backend method, that
//!   launch the family's kernels; the [`Backend`] impl in this file only checks the
//!   arguments (with the same `brain_core::check` calls as the reference backend, so
//!   bad input gets the same typed error everywhere) and calls one of them.
//! - **GEMM**: `cublasSgemmStridedBatched`, row-major by operand swap (C is passed as
//!   Cᵀ in column-major, with A and B swapped). f32 math by default; TF32 tensor cores
//!   only after [`CudaBackend::set_tf32`]`(true)`. Linear = GEMM + a bias kernel.
//! - **Errors**: a missing library (probed with cudarc's `is_culib_present()` before
//!   anything else is touched), no device, or a too-old driver is
//!   [`BrainError::Unsupported`]; device faults and ECC errors are
//!   [`BrainError::DeviceLost`]; nothing in the crate panics on user input or missing
//!   hardware.
//! - **Emulator** (`src/emu.rs`, `emu/`): [`CudaBackend::emulated`] runs the same
//!   kernel sources and host code without a GPU: g++ compiles each family against a
//!   CUDA shim, blocks run in sequence and a block's threads as fibers that switch at
//!   barriers and warp collectives; memory is host memory and cuBLAS a CPU loop with
//!   its column-major semantics. Every launch checks the argument sizes against the
//!   kernel's parameters. `tests/conformance_emulated.rs` runs the whole conformance
//!   suite on it (in CI, which has no GPU).
//!
//! Status: every kernel of the trait is written (one `kernels/<family>.cu` per
//! family) and compiles with NVRTC for sm_80 and sm_90 in CI, where ptxas reports
//! their registers and spills. **No kernel has run on a GPU yet** (none was available
//! to this project so far); `tests/conformance_emulated.rs` runs the whole conformance
//! suite on the same kernel sources and host code through the CPU emulator
//! ([`CudaBackend::emulated`]), which checks their indexing, synchronisation structure
//! and numerics against the f64 reference.
//!
//! ## CUDA version
//!
//! cudarc is built with the explicit feature `cuda-13000` (CUDA 13.0 API). The GPU
//! machines this project measures on run driver 580 (CUDA 13.0) with CUDA 13
//! libraries (the 13.0 toolkit, PyTorch's `nvidia-*-cu13` wheels); CI has no GPU and
//! compiles the kernels with the `nvidia-cuda-nvrtc-cu12` 12.8 wheel. The feature
//! decides two things:
//! - the library names cudarc tries: with `cuda-13000` these include `libnvrtc.so.13`
//!   *and* `libnvrtc.so.12` (likewise cuBLAS), so both the CUDA 13 libraries of the
//!   GPU machine and the CUDA 12 wheels of CI are found; a 12.x feature would never
//!   look for `.so.13`;
//! - the declarations the bindings use; every function this crate calls (context,
//!   stream, memory, module, launch; `nvrtcCreateProgram`/`Compile`/`GetPTX`/`GetCUBIN`;
//!   `cublasCreate`/`SetStream`/`SetMathMode`/`SgemmStridedBatched`) has the same ABI
//!   in CUDA 12 and 13, and the driver API calls exist in any driver ≥ 12.0.
//!
//! What a driver accepts is decided by the NVRTC that is loaded, not by the feature:
//! PTX of NVRTC 12.x loads on a 13.0 driver, but PTX of an NVRTC newer than the driver
//! (say 13.2 on driver 580 / 13.0) does not (`CUDA_ERROR_UNSUPPORTED_PTX_VERSION`).
//! That is why a device gets a CUBIN for its own architecture: CUDA's minor-version
//! compatibility lets an NVRTC 13.x CUBIN run on any 13.0+ driver. Only a GPU newer
//! than the loaded NVRTC falls back to PTX (JIT), which then needs a driver at least
//! as new as that NVRTC; the failure is a typed [`BrainError::Unsupported`].
//!
//! ## Running on a GPU machine
//!
//! The GPU machines have no Rust toolchain. Build the test and bench binaries here:
//!
//! ```text
//! cargo test --release -p backend-cuda --no-run        # prints target/release/deps/<test>-<hash>
//! ```
//!
//! copy the executables it names (`target/release/deps/conformance-<hash>`,
//! `compile_kernels-<hash>`, `backend_cuda-<hash>`; `strip --strip-debug` takes the
//! conformance one from ~45 MB to ~11 MB) to the GPU machine and run them there with
//! the CUDA libraries on the loader path, e.g. those of PyTorch's CUDA 13 wheels:
//!
//! ```text
//! export LD_LIBRARY_PATH=$(python3 -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13", "lib"))'):$LD_LIBRARY_PATH
//! ./conformance-<hash>
//! ```
//!
//! The test binaries read nothing from the source tree (the golden data is compiled
//! in).
//!
//! (libcuda comes with the driver; NVRTC and cuBLAS from a toolkit, e.g.
//! `/usr/local/cuda/lib64`, or from the wheels.) Without a driver every test prints
//! `skipped: <test>: unsupported: cuda: no CUDA driver (libcuda not found)` and passes.
//!
//! ## CI
//!
//! `.ci/cuda-toolchain` installs the NVRTC, nvcc (ptxas) and runtime-header wheels and
//! prints the environment that makes them visible; `tests/compile_kernels.rs` then
//! compiles every family to PTX for sm_80 and sm_90 and assembles it with
//! `ptxas -v`, printing registers and spills per kernel.
#![warn(missing_docs)]
// Kernel functions take the Backend trait's arguments one for one.
#![allow(clippy::too_many_arguments)]

mod device;
mod emu;
mod launch;
mod module_cache;
mod ops;

pub use device::{cublas_available, driver_available, CudaBuffer};
pub use module_cache::{
    compile_options, compile_ptx, nvrtc_available, nvrtc_supported_archs, nvrtc_version, Family,
    COMMON_HEADER, INCLUDE_ENV,
};

use brain_core::check;
#[cfg(doc)]
use brain_core::BrainError;
use brain_core::{
    Activation, AdamW, AdamWTensor, Backend, ContrastiveLoss, Dropout, Gemm, GroupNormShape,
    HsicEstimator, ImageShape, Result, RowReduce, SchedulerStep, SobelLossForm, UpsampleMode,
    UpsampleShape,
};
use device::Device;

/// The CUDA backend: f32 kernels on one GPU, queued asynchronously on one stream.
pub struct CudaBackend {
    dev: Device,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.dev.name())
            .field("ordinal", &self.dev.ordinal())
            .field("target", &self.dev.target())
            .field("tf32", &self.dev.tf32())
            .finish()
    }
}

impl CudaBackend {
    /// The backend on GPU 0. See [`CudaBackend::with_ordinal`].
    pub fn new() -> Result<Self> {
        Self::with_ordinal(0)
    }

    /// The backend on GPU `ordinal`. Probes libcuda first, then NVRTC and cuBLAS,
    /// before touching anything else: a missing library, no device, or no device
    /// `ordinal` is [`BrainError::Unsupported`]
    /// (`"cuda: no CUDA driver (libcuda not found)"` on a machine without a driver).
    pub fn with_ordinal(ordinal: usize) -> Result<Self> {
        Ok(CudaBackend {
            dev: Device::new(ordinal)?,
        })
    }

    /// The CPU emulator instead of a GPU: the same kernel sources (compiled by the host
    /// C++ compiler, `g++` or `$BRAIN_CUDA_EMU_CXX`, on first use of each family) and
    /// the same host code, with buffers in host memory and kernels run on the CPU,
    /// slowly. For testing without a GPU (`tests/conformance_emulated.rs`); see the
    /// `emu` module's docs in `src/emu.rs`. [`BrainError::Unsupported`] where no C++
    /// compiler runs.
    pub fn emulated() -> Result<Self> {
        Ok(CudaBackend {
            dev: Device::emulated()?,
        })
    }

    /// How many CUDA devices the driver sees (ordinals `0..n` for
    /// [`CudaBackend::with_ordinal`]); [`BrainError::Unsupported`] when no CUDA driver
    /// can be loaded.
    pub fn device_count() -> Result<usize> {
        device::device_count()
    }

    /// Run `f` between two CUDA events recorded on the backend's stream and return
    /// the device time between them (`cuEventElapsedTime`), for benchmarks. `None`
    /// for the time on the emulator, which has no device clock. Waits for the stream
    /// before and after `f`.
    #[doc(hidden)]
    pub fn time_on_device<T>(
        &self,
        f: impl FnOnce(&Self) -> Result<T>,
    ) -> Result<(T, Option<std::time::Duration>)> {
        self.dev.time(|| f(self))
    }

    /// The device's compute capability `(major, minor)` (`(0, 0)` for the emulator).
    pub fn compute_capability(&self) -> (i32, i32) {
        self.dev.compute_capability()
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.dev.ordinal()
    }

    /// Let cuBLAS use TF32 tensor cores for f32 GEMM (`true`), or not (`false`, the
    /// default: full f32 products, as the conformance suite expects). TF32 rounds the
    /// operands to 10 mantissa bits: faster, about 1e-3 relative error.
    pub fn set_tf32(&self, on: bool) -> Result<()> {
        self.dev.set_tf32(on)
    }

    /// Whether TF32 is allowed (see [`CudaBackend::set_tf32`]).
    pub fn tf32(&self) -> bool {
        self.dev.tf32()
    }
}

fn same_len(op: &'static str, arg: &'static str, got: usize, expected: usize) -> Result<()> {
    check::len(op, arg, got, expected)
}

impl Backend for CudaBackend {
    type Elem = f32;
    type Buffer = CudaBuffer;

    fn name(&self) -> String {
        format!("cuda ({}, {})", self.dev.name(), self.dev.target())
    }

    // ---------------------------------------------------------------- memory

    fn alloc(&self, len: usize) -> Result<CudaBuffer> {
        self.dev.alloc_zeros(len)
    }
    fn upload(&self, data: &[f32]) -> Result<CudaBuffer> {
        self.dev.upload(data)
    }
    fn write(&self, dst: &mut CudaBuffer, data: &[f32]) -> Result<()> {
        same_len("write", "data", data.len(), dst.len())?;
        self.dev.write(dst, data)
    }
    fn download(&self, src: &CudaBuffer, dst: &mut [f32]) -> Result<()> {
        same_len("download", "dst", dst.len(), src.len())?;
        self.dev.download(src, dst)
    }
    fn len(&self, buf: &CudaBuffer) -> usize {
        buf.len()
    }
    fn sync(&self) -> Result<()> {
        self.dev.sync()
    }
    fn copy(&self, src: &CudaBuffer, dst: &mut CudaBuffer) -> Result<()> {
        same_len("copy", "dst", dst.len(), src.len())?;
        self.dev.copy(src, dst)
    }
    fn fill(&self, dst: &mut CudaBuffer, value: f64) -> Result<()> {
        self.dev.fill(dst, value as f32)
    }

    // ---------------------------------------------------------------- GEMM

    fn gemm(&self, g: &Gemm, a: &CudaBuffer, b: &CudaBuffer, c: &mut CudaBuffer) -> Result<()> {
        check::gemm(g, a.len(), b.len(), c.len())?;
        ops::gemm::gemm(&self.dev, g, a, b, c)
    }

    // ---------------------------------------------------------------- Linear

    fn linear_forward(
        &self,
        x: &CudaBuffer,
        weight: &CudaBuffer,
        bias: Option<&CudaBuffer>,
        y: &mut CudaBuffer,
        rows: usize,
        in_features: usize,
        out_features: usize,
    ) -> Result<()> {
        check::linear(
            "linear_forward",
            x.len(),
            weight.len(),
            bias.map(|b| b.len()),
            y.len(),
            rows,
            in_features,
            out_features,
        )?;
        ops::gemm::linear_forward(
            &self.dev,
            x,
            weight,
            bias,
            y,
            rows,
            in_features,
            out_features,
        )
    }

    fn linear_backward(
        &self,
        dy: &CudaBuffer,
        x: &CudaBuffer,
        weight: &CudaBuffer,
        dx: Option<&mut CudaBuffer>,
        dweight: Option<&mut CudaBuffer>,
        dbias: Option<&mut CudaBuffer>,
        rows: usize,
        in_features: usize,
        out_features: usize,
    ) -> Result<()> {
        const OP: &str = "linear_backward";
        check::linear(
            OP,
            x.len(),
            weight.len(),
            dbias.as_ref().map(|b| b.len()),
            dy.len(),
            rows,
            in_features,
            out_features,
        )?;
        if let Some(dx) = &dx {
            same_len(OP, "dx", dx.len(), x.len())?;
        }
        if let Some(dw) = &dweight {
            same_len(OP, "dweight", dw.len(), weight.len())?;
        }
        ops::gemm::linear_backward(
            &self.dev,
            dy,
            x,
            weight,
            dx,
            dweight,
            dbias,
            rows,
            in_features,
            out_features,
        )
    }

    // ---------------------------------------------------------------- bias

    fn bias_add(
        &self,
        y: &mut CudaBuffer,
        bias: &CudaBuffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        check::bias("bias_add", y.len(), bias.len(), outer, channels, inner)?;
        ops::bias::bias_add(&self.dev, y, bias, outer, channels, inner)
    }
    fn bias_backward(
        &self,
        dy: &CudaBuffer,
        dbias: &mut CudaBuffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        check::bias(
            "bias_backward",
            dy.len(),
            dbias.len(),
            outer,
            channels,
            inner,
        )?;
        ops::bias::bias_backward(&self.dev, dy, dbias, outer, channels, inner)
    }

    // ---------------------------------------------------------------- activations

    fn activation_forward(
        &self,
        act: Activation,
        x: &CudaBuffer,
        y: &mut CudaBuffer,
    ) -> Result<()> {
        same_len("activation_forward", "y", y.len(), x.len())?;
        ops::activation::activation_forward(&self.dev, act, x, y)
    }
    fn activation_backward(
        &self,
        act: Activation,
        x: &CudaBuffer,
        dy: &CudaBuffer,
        dx: &mut CudaBuffer,
    ) -> Result<()> {
        same_len("activation_backward", "dy", dy.len(), x.len())?;
        same_len("activation_backward", "dx", dx.len(), x.len())?;
        ops::activation::activation_backward(&self.dev, act, x, dy, dx)
    }

    // ---------------------------------------------------------------- normalisation

    fn layernorm_forward(
        &self,
        x: &CudaBuffer,
        gamma: &CudaBuffer,
        beta: &CudaBuffer,
        y: &mut CudaBuffer,
        mean: &mut CudaBuffer,
        rstd: &mut CudaBuffer,
        rows: usize,
        cols: usize,
        eps: f64,
    ) -> Result<()> {
        const OP: &str = "layernorm_forward";
        check::layernorm(
            OP,
            x.len(),
            gamma.len(),
            beta.len(),
            (mean.len(), rstd.len()),
            rows,
            cols,
        )?;
        same_len(OP, "y", y.len(), x.len())?;
        ops::norm::layernorm_forward(&self.dev, x, gamma, beta, y, mean, rstd, rows, cols, eps)
    }
    fn layernorm_backward(
        &self,
        dy: &CudaBuffer,
        x: &CudaBuffer,
        gamma: &CudaBuffer,
        mean: &CudaBuffer,
        rstd: &CudaBuffer,
        dx: &mut CudaBuffer,
        dgamma: &mut CudaBuffer,
        dbeta: &mut CudaBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "layernorm_backward";
        check::layernorm(
            OP,
            x.len(),
            dgamma.len(),
            dbeta.len(),
            (mean.len(), rstd.len()),
            rows,
            cols,
        )?;
        same_len(OP, "gamma", gamma.len(), cols)?;
        same_len(OP, "dy", dy.len(), x.len())?;
        same_len(OP, "dx", dx.len(), x.len())?;
        ops::norm::layernorm_backward(
            &self.dev, dy, x, gamma, mean, rstd, dx, dgamma, dbeta, rows, cols,
        )
    }

    fn groupnorm_forward(
        &self,
        x: &CudaBuffer,
        gamma: &CudaBuffer,
        beta: &CudaBuffer,
        y: &mut CudaBuffer,
        mean: &mut CudaBuffer,
        rstd: &mut CudaBuffer,
        shape: &GroupNormShape,
        eps: f64,
    ) -> Result<()> {
        const OP: &str = "groupnorm_forward";
        check::groupnorm(
            OP,
            x.len(),
            gamma.len(),
            beta.len(),
            (mean.len(), rstd.len()),
            shape,
        )?;
        same_len(OP, "y", y.len(), x.len())?;
        ops::norm::groupnorm_forward(&self.dev, x, gamma, beta, y, mean, rstd, shape, eps)
    }
    fn groupnorm_backward(
        &self,
        dy: &CudaBuffer,
        x: &CudaBuffer,
        gamma: &CudaBuffer,
        mean: &CudaBuffer,
        rstd: &CudaBuffer,
        dx: &mut CudaBuffer,
        dgamma: &mut CudaBuffer,
        dbeta: &mut CudaBuffer,
        shape: &GroupNormShape,
    ) -> Result<()> {
        const OP: &str = "groupnorm_backward";
        check::groupnorm(
            OP,
            x.len(),
            dgamma.len(),
            dbeta.len(),
            (mean.len(), rstd.len()),
            shape,
        )?;
        same_len(OP, "gamma", gamma.len(), shape.channels)?;
        same_len(OP, "dy", dy.len(), x.len())?;
        same_len(OP, "dx", dx.len(), x.len())?;
        ops::norm::groupnorm_backward(
            &self.dev, dy, x, gamma, mean, rstd, dx, dgamma, dbeta, shape,
        )
    }

    // ---------------------------------------------------------------- dropout

    fn dropout_forward(&self, d: &Dropout, x: &CudaBuffer, y: &mut CudaBuffer) -> Result<()> {
        check::dropout("dropout_forward", d)?;
        same_len("dropout_forward", "y", y.len(), x.len())?;
        ops::dropout_random::dropout_forward(&self.dev, d, x, y)
    }
    fn dropout_backward(&self, d: &Dropout, dy: &CudaBuffer, dx: &mut CudaBuffer) -> Result<()> {
        check::dropout("dropout_backward", d)?;
        same_len("dropout_backward", "dx", dx.len(), dy.len())?;
        ops::dropout_random::dropout_backward(&self.dev, d, dy, dx)
    }

    // ---------------------------------------------------------------- upsampling

    fn upsample_forward(
        &self,
        mode: UpsampleMode,
        shape: &UpsampleShape,
        x: &CudaBuffer,
        y: &mut CudaBuffer,
    ) -> Result<()> {
        check::upsample("upsample_forward", x.len(), y.len(), shape)?;
        ops::upsample::upsample_forward(&self.dev, mode, shape, x, y)
    }
    fn upsample_backward(
        &self,
        mode: UpsampleMode,
        shape: &UpsampleShape,
        dy: &CudaBuffer,
        dx: &mut CudaBuffer,
    ) -> Result<()> {
        check::upsample("upsample_backward", dx.len(), dy.len(), shape)?;
        ops::upsample::upsample_backward(&self.dev, mode, shape, dy, dx)
    }

    // ---------------------------------------------------------------- element-wise

    fn add(&self, a: &CudaBuffer, b: &CudaBuffer, out: &mut CudaBuffer) -> Result<()> {
        same_len("add", "b", b.len(), a.len())?;
        same_len("add", "out", out.len(), a.len())?;
        ops::elementwise::add(&self.dev, a, b, out)
    }
    fn scale(&self, x: &mut CudaBuffer, alpha: f64) -> Result<()> {
        ops::elementwise::scale(&self.dev, x, alpha)
    }
    fn axpy(&self, alpha: f64, x: &CudaBuffer, y: &mut CudaBuffer) -> Result<()> {
        same_len("axpy", "y", y.len(), x.len())?;
        ops::elementwise::axpy(&self.dev, alpha, x, y)
    }

    // ---------------------------------------------------------------- reductions

    fn reduce_rows(
        &self,
        op: RowReduce,
        x: &CudaBuffer,
        out: &mut CudaBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        check::reduce_rows("reduce_rows", x.len(), out.len(), rows, cols)?;
        ops::reduce::reduce_rows(&self.dev, op, x, out, rows, cols)
    }

    // ---------------------------------------------------------------- optimizer

    fn adamw_step(
        &self,
        cfg: &AdamW,
        tensors: &mut [AdamWTensor<'_, Self>],
        grad_norm: Option<&mut CudaBuffer>,
    ) -> Result<()> {
        const OP: &str = "adamw_step";
        check::adamw(cfg)?;
        for t in tensors.iter() {
            same_len(OP, "grad", t.grad.len(), t.param.len())?;
            same_len(OP, "exp_avg", t.exp_avg.len(), t.param.len())?;
            same_len(OP, "exp_avg_sq", t.exp_avg_sq.len(), t.param.len())?;
        }
        if let Some(n) = &grad_norm {
            same_len(OP, "grad_norm", n.len(), 1)?;
        }
        ops::adamw::adamw_step(&self.dev, cfg, tensors, grad_norm)
    }

    // ---------------------------------------------------------------- randomness

    fn fill_uniform(&self, out: &mut CudaBuffer, seed: u64, offset: u64) -> Result<()> {
        ops::dropout_random::fill_uniform(&self.dev, out, seed, offset)
    }
    fn fill_normal(
        &self,
        out: &mut CudaBuffer,
        seed: u64,
        offset: u64,
        mean: f64,
        std: f64,
    ) -> Result<()> {
        ops::dropout_random::fill_normal(&self.dev, out, seed, offset, mean, std)
    }
    fn philox_bits(&self, out: &mut CudaBuffer, seed: u64, offset: u64) -> Result<()> {
        if out.len() % 2 != 0 {
            return Err(check::invalid(
                "philox_bits",
                format!(
                    "output length {} must be even (two halves per word)",
                    out.len()
                ),
            ));
        }
        ops::dropout_random::philox_bits(&self.dev, out, seed, offset)
    }

    // ---------------------------------------------------------------- losses

    fn mse_forward(&self, a: &CudaBuffer, b: &CudaBuffer, loss: &mut CudaBuffer) -> Result<()> {
        check::mse_forward(a.len(), b.len(), loss.len())?;
        ops::mse::mse_forward(&self.dev, a, b, loss)
    }
    fn mse_backward(
        &self,
        a: &CudaBuffer,
        b: &CudaBuffer,
        scale: f64,
        da: Option<&mut CudaBuffer>,
        db: Option<&mut CudaBuffer>,
    ) -> Result<()> {
        check::mse_backward(
            a.len(),
            b.len(),
            scale,
            da.as_ref().map(|d| d.len()),
            db.as_ref().map(|d| d.len()),
        )?;
        ops::mse::mse_backward(&self.dev, a, b, scale, da, db)
    }

    fn cka_grams_forward(
        &self,
        k: &CudaBuffer,
        l: &CudaBuffer,
        n: usize,
        estimator: HsicEstimator,
        out: &mut CudaBuffer,
    ) -> Result<()> {
        check::cka_grams_forward(k.len(), l.len(), n, estimator, out.len())?;
        ops::cka::cka_grams_forward(&self.dev, k, l, n, estimator, out)
    }
    fn cka_grams_backward(
        &self,
        k: &CudaBuffer,
        l: &CudaBuffer,
        n: usize,
        estimator: HsicEstimator,
        scale: f64,
        dk: Option<&mut CudaBuffer>,
        dl: Option<&mut CudaBuffer>,
    ) -> Result<()> {
        check::cka_grams_backward(
            k.len(),
            l.len(),
            n,
            estimator,
            scale,
            dk.as_ref().map(|d| d.len()),
            dl.as_ref().map(|d| d.len()),
        )?;
        ops::cka::cka_grams_backward(&self.dev, k, l, n, estimator, scale, dk, dl)
    }

    fn sims_forward(
        &self,
        a: &CudaBuffer,
        b: &CudaBuffer,
        batch: usize,
        tokens: usize,
        dim: usize,
        loss: &mut CudaBuffer,
    ) -> Result<()> {
        check::sims_forward(a.len(), b.len(), batch, tokens, dim, loss.len())?;
        ops::sims::sims_forward(&self.dev, a, b, batch, tokens, dim, loss)
    }
    fn sims_backward(
        &self,
        a: &CudaBuffer,
        b: &CudaBuffer,
        batch: usize,
        tokens: usize,
        dim: usize,
        scale: f64,
        da: Option<&mut CudaBuffer>,
        db: Option<&mut CudaBuffer>,
    ) -> Result<()> {
        check::sims_backward(
            a.len(),
            b.len(),
            batch,
            tokens,
            dim,
            scale,
            da.as_ref().map(|d| d.len()),
            db.as_ref().map(|d| d.len()),
        )?;
        ops::sims::sims_backward(&self.dev, a, b, batch, tokens, dim, scale, da, db)
    }

    fn l2_normalize_rows_forward(
        &self,
        x: &CudaBuffer,
        y: &mut CudaBuffer,
        norms: &mut CudaBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        check::l2_normalize_rows_forward(x.len(), y.len(), norms.len(), rows, cols)?;
        ops::contrastive::l2_normalize_rows_forward(&self.dev, x, y, norms, rows, cols)
    }
    fn l2_normalize_rows_backward(
        &self,
        dy: &CudaBuffer,
        x: &CudaBuffer,
        norms: &CudaBuffer,
        dx: &mut CudaBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        check::l2_normalize_rows_backward(dy.len(), x.len(), norms.len(), dx.len(), rows, cols)?;
        ops::contrastive::l2_normalize_rows_backward(&self.dev, dy, x, norms, dx, rows, cols)
    }

    fn contrastive_forward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &CudaBuffer,
        logits_tt: Option<&CudaBuffer>,
        n: usize,
        loss: &mut CudaBuffer,
    ) -> Result<()> {
        check::contrastive_forward(
            kind,
            logits_pt.len(),
            logits_tt.map(|b| b.len()),
            n,
            loss.len(),
        )?;
        ops::contrastive::contrastive_forward(&self.dev, kind, logits_pt, logits_tt, n, loss)
    }
    fn contrastive_backward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &CudaBuffer,
        logits_tt: Option<&CudaBuffer>,
        n: usize,
        scale: f64,
        dlogits_pt: &mut CudaBuffer,
        dlogits_tt: Option<&mut CudaBuffer>,
    ) -> Result<()> {
        check::contrastive_backward(
            kind,
            logits_pt.len(),
            logits_tt.map(|b| b.len()),
            n,
            scale,
            dlogits_pt.len(),
            dlogits_tt.as_ref().map(|b| b.len()),
        )?;
        ops::contrastive::contrastive_backward(
            &self.dev, kind, logits_pt, logits_tt, n, scale, dlogits_pt, dlogits_tt,
        )
    }

    fn clip_logits_forward(
        &self,
        kind: ContrastiveLoss,
        g_pt: &CudaBuffer,
        g_tt: Option<&CudaBuffer>,
        p_sq: &CudaBuffer,
        t_sq: &CudaBuffer,
        n: usize,
        temperature: f64,
        logits_pt: &mut CudaBuffer,
        logits_tt: Option<&mut CudaBuffer>,
    ) -> Result<()> {
        check::clip_logits_forward(
            kind,
            g_pt.len(),
            g_tt.map(|b| b.len()),
            p_sq.len(),
            t_sq.len(),
            n,
            temperature,
            logits_pt.len(),
            logits_tt.as_ref().map(|b| b.len()),
        )?;
        ops::contrastive::clip_logits_forward(
            &self.dev,
            kind,
            g_pt,
            g_tt,
            p_sq,
            t_sq,
            n,
            temperature,
            logits_pt,
            logits_tt,
        )
    }
    fn clip_logits_backward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &CudaBuffer,
        logits_tt: Option<&CudaBuffer>,
        dlogits_pt: &CudaBuffer,
        dlogits_tt: Option<&CudaBuffer>,
        p_sq: &CudaBuffer,
        t_sq: &CudaBuffer,
        n: usize,
        temperature: f64,
        w_pt: &mut CudaBuffer,
        d_p: Option<&mut CudaBuffer>,
        w_tt: Option<&mut CudaBuffer>,
    ) -> Result<()> {
        check::clip_logits_backward(
            kind,
            logits_pt.len(),
            logits_tt.map(|b| b.len()),
            dlogits_pt.len(),
            dlogits_tt.map(|b| b.len()),
            p_sq.len(),
            t_sq.len(),
            n,
            temperature,
            w_pt.len(),
            d_p.as_ref().map(|b| b.len()),
            w_tt.as_ref().map(|b| b.len()),
        )?;
        ops::contrastive::clip_logits_backward(
            &self.dev,
            kind,
            logits_pt,
            logits_tt,
            dlogits_pt,
            dlogits_tt,
            p_sq,
            t_sq,
            n,
            temperature,
            w_pt,
            d_p,
            w_tt,
        )
    }
    fn clip_grams_forward(
        &self,
        kind: ContrastiveLoss,
        preds: &CudaBuffer,
        targets: &CudaBuffer,
        n: usize,
        d: usize,
        p_sq: &mut CudaBuffer,
        t_sq: &mut CudaBuffer,
        g_pt: &mut CudaBuffer,
        g_tt: Option<&mut CudaBuffer>,
    ) -> Result<()> {
        check::clip_grams_forward(
            kind,
            preds.len(),
            targets.len(),
            n,
            d,
            p_sq.len(),
            t_sq.len(),
            g_pt.len(),
            g_tt.as_ref().map(|b| b.len()),
        )?;
        ops::contrastive::clip_grams_forward(
            &self.dev, kind, preds, targets, n, d, p_sq, t_sq, g_pt, g_tt,
        )
    }
    fn clip_inputs_backward(
        &self,
        kind: ContrastiveLoss,
        w_pt: &CudaBuffer,
        d_p: &CudaBuffer,
        w_tt: &CudaBuffer,
        preds: &CudaBuffer,
        targets: &CudaBuffer,
        n: usize,
        d: usize,
        dpreds: Option<&mut CudaBuffer>,
        dtargets: Option<&mut CudaBuffer>,
    ) -> Result<()> {
        check::clip_inputs_backward(
            w_pt.len(),
            d_p.len(),
            w_tt.len(),
            preds.len(),
            targets.len(),
            n,
            d,
            dpreds.as_ref().map(|b| b.len()),
            dtargets.as_ref().map(|b| b.len()),
        )?;
        ops::contrastive::clip_inputs_backward(
            &self.dev, kind, w_pt, d_p, w_tt, preds, targets, n, d, dpreds, dtargets,
        )
    }

    fn sobel_forward(
        &self,
        x: &CudaBuffer,
        shape: &ImageShape,
        gx: &mut CudaBuffer,
        gy: &mut CudaBuffer,
        magnitude: &mut CudaBuffer,
    ) -> Result<()> {
        check::sobel_forward(x.len(), shape, gx.len(), gy.len(), magnitude.len())?;
        ops::sobel::sobel_forward(&self.dev, x, shape, gx, gy, magnitude)
    }
    fn sobel_backward(
        &self,
        x: &CudaBuffer,
        shape: &ImageShape,
        dgx: Option<&CudaBuffer>,
        dgy: Option<&CudaBuffer>,
        dmagnitude: Option<&CudaBuffer>,
        dx: &mut CudaBuffer,
    ) -> Result<()> {
        check::sobel_backward(
            x.len(),
            shape,
            dgx.map(|b| b.len()),
            dgy.map(|b| b.len()),
            dmagnitude.map(|b| b.len()),
            dx.len(),
        )?;
        ops::sobel::sobel_backward(&self.dev, x, shape, dgx, dgy, dmagnitude, dx)
    }
    fn sobel_loss_forward(
        &self,
        pred: &CudaBuffer,
        target: &CudaBuffer,
        shape: &ImageShape,
        form: SobelLossForm,
        loss: &mut CudaBuffer,
    ) -> Result<()> {
        check::sobel_loss_forward(pred.len(), target.len(), shape, loss.len())?;
        ops::sobel::sobel_loss_forward(&self.dev, pred, target, shape, form, loss)
    }
    fn sobel_loss_backward(
        &self,
        pred: &CudaBuffer,
        target: &CudaBuffer,
        shape: &ImageShape,
        form: SobelLossForm,
        scale: f64,
        dpred: Option<&mut CudaBuffer>,
        dtarget: Option<&mut CudaBuffer>,
    ) -> Result<()> {
        check::sobel_loss_backward(
            pred.len(),
            target.len(),
            shape,
            scale,
            dpred.as_ref().map(|b| b.len()),
            dtarget.as_ref().map(|b| b.len()),
        )?;
        ops::sobel::sobel_loss_backward(&self.dev, pred, target, shape, form, scale, dpred, dtarget)
    }

    // ---------------------------------------------------------------- diffusion

    fn scheduler_step(
        &self,
        step: &SchedulerStep,
        model_output: &CudaBuffer,
        sample: &CudaBuffer,
        noise: Option<&CudaBuffer>,
        prev_sample: &mut CudaBuffer,
        pred_x0: Option<&mut CudaBuffer>,
    ) -> Result<()> {
        check::scheduler_step(
            step,
            model_output.len(),
            sample.len(),
            noise.map(|b| b.len()),
            prev_sample.len(),
            pred_x0.as_ref().map(|b| b.len()),
        )?;
        ops::diffusion::scheduler_step(
            &self.dev,
            step,
            model_output,
            sample,
            noise,
            prev_sample,
            pred_x0,
        )
    }
    fn add_noise(
        &self,
        x0: &CudaBuffer,
        noise: &CudaBuffer,
        sqrt_alpha_prod: &[f64],
        sqrt_one_minus_alpha_prod: &[f64],
        out: &mut CudaBuffer,
    ) -> Result<()> {
        check::add_noise(
            x0.len(),
            noise.len(),
            sqrt_alpha_prod,
            sqrt_one_minus_alpha_prod,
            out.len(),
        )?;
        ops::diffusion::add_noise(
            &self.dev,
            x0,
            noise,
            sqrt_alpha_prod,
            sqrt_one_minus_alpha_prod,
            out,
        )
    }
    fn guidance_combine(
        &self,
        uncond: &CudaBuffer,
        cond: &CudaBuffer,
        scale: f64,
        out: &mut CudaBuffer,
    ) -> Result<()> {
        check::guidance_combine(uncond.len(), cond.len(), scale, out.len())?;
        ops::diffusion::guidance_combine(&self.dev, uncond, cond, scale, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brain_core::BrainError;

    #[test]
    fn every_family_has_a_source_that_includes_the_common_header() {
        for f in Family::ALL {
            assert!(
                f.source().contains("#include \"common.cuh\""),
                "{}.cu does not include common.cuh",
                f.name()
            );
        }
        let mut names: Vec<_> = Family::ALL.iter().map(|f| f.name()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "family names must be distinct");
    }

    #[test]
    fn no_driver_is_a_typed_error_not_a_panic() {
        match CudaBackend::new() {
            Ok(be) => println!("CUDA present: {}", be.name()),
            Err(e) => assert!(
                matches!(e, BrainError::Unsupported(_) | BrainError::DeviceLost(_)),
                "{e:?}"
            ),
        }
    }

    #[test]
    fn backend_and_buffers_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<CudaBackend>();
        send_sync::<CudaBuffer>();
    }

    #[test]
    fn compile_options_target_the_architecture() {
        let o = compile_options("compute_90");
        assert_eq!(o[0], "--gpu-architecture=compute_90");
        assert!(o.iter().any(|s| s == "-default-device"));
    }
}
