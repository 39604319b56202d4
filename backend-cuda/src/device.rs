//! One CUDA device as the backend uses it: a context, one stream every call is queued
//! on, the cuBLAS handle, the kernel modules, and the buffers.
//!
//! Everything is queued on the one non-blocking stream, in call order, so no event
//! tracking is needed between calls (cudarc's per-buffer events are switched off);
//! only [`Device::download`] and [`Device::sync`] wait for the device.
//!
//! A [`Device`] is either a GPU (`Kind::Gpu`, through cudarc) or the CPU emulator
//! (`Kind::Emu`, see [`crate::emu`]): the same kernels and host code, with memory in
//! host allocations and kernels run by the emulator, synchronously.

use crate::emu::{Emu, HostMem};
use crate::launch::{alloc_error, cublas_error, driver_error, lock};
use crate::module_cache::{nvrtc_available, Family, ModuleCache, Target};
use brain_core::{BrainError, Result};
use cudarc::cublas::result as blas;
use cudarc::cublas::sys as blas_sys;
use cudarc::driver::{
    sys as drv, CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Fails with the typed error the backend returns when no CUDA driver can be loaded.
/// Touches nothing but the dynamic loader.
pub fn driver_available() -> Result<()> {
    // SAFETY: only tries to dlopen libcuda under cudarc's candidate names.
    if unsafe { drv::is_culib_present() } {
        Ok(())
    } else {
        Err(BrainError::Unsupported(
            "cuda: no CUDA driver (libcuda not found)".into(),
        ))
    }
}

/// Fails with a typed error unless cuBLAS can be loaded.
pub fn cublas_available() -> Result<()> {
    // SAFETY: only tries to dlopen libcublas under cudarc's candidate names.
    if unsafe { blas_sys::is_culib_present() } {
        Ok(())
    } else {
        Err(BrainError::Unsupported(
            "cuda: cuBLAS not found (libcublas.so.13 or .so.12 must be on LD_LIBRARY_PATH)".into(),
        ))
    }
}

/// How many CUDA devices the driver sees ([`BrainError::Unsupported`] without a
/// driver).
pub fn device_count() -> Result<usize> {
    driver_available()?;
    let count = CudaContext::device_count().map_err(|e| driver_error("cuInit", e))?;
    Ok(usize::try_from(count).unwrap_or(0))
}

static NEXT_DEVICE_ID: AtomicU64 = AtomicU64::new(1);

/// A buffer of f32 in the memory of one [`CudaBackend`](crate::CudaBackend).
///
/// A buffer may only be passed to the backend that made it (others return
/// [`BrainError::InvalidArgument`]). Dropping it frees the memory in stream order.
#[derive(Debug)]
pub struct CudaBuffer {
    /// `None` for an empty buffer (CUDA cannot allocate 0 bytes).
    slice: Option<Mem>,
    len: usize,
    owner: u64,
}

impl CudaBuffer {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The memory of a non-empty buffer: on the GPU, or in the host for the emulator.
#[derive(Debug)]
enum Mem {
    Gpu(CudaSlice<f32>),
    Host(HostMem),
}

impl Mem {
    fn len(&self) -> usize {
        match self {
            Mem::Gpu(s) => s.len(),
            Mem::Host(h) => h.len(),
        }
    }
}

/// A cuBLAS handle bound to the device's stream, destroyed on drop.
struct Blas {
    handle: blas_sys::cublasHandle_t,
}

// SAFETY: the handle is only used under the Device's mutex, one thread at a time.
unsafe impl Send for Blas {}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: created by cublasCreate, destroyed once, here. Errors (a lost device)
        // cannot be reported from drop.
        let _ = unsafe { blas::destroy_handle(self.handle) };
    }
}

/// The device state behind a [`CudaBackend`](crate::CudaBackend).
pub(crate) struct Device {
    kind: Kind,
    id: u64,
    tf32: AtomicBool,
}

/// What runs the kernels.
pub(crate) enum Kind {
    /// A CUDA device.
    Gpu(Gpu),
    /// The CPU emulator.
    Emu(Emu),
}

/// A CUDA device: context, stream, cuBLAS handle and modules.
pub(crate) struct Gpu {
    // Field order is drop order: the handle and modules go before the stream and
    // the context they live in.
    blas: Mutex<Blas>,
    modules: ModuleCache,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    ordinal: usize,
    name: String,
    compute_capability: (i32, i32),
}

impl Gpu {
    /// The stream every call is queued on.
    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Kernel `name` of `family` (compiled and loaded on first use, then cached).
    pub(crate) fn function(&self, family: Family, name: &'static str) -> Result<CudaFunction> {
        self.modules.function(&self.ctx, family, name)
    }

    fn bind(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| driver_error("cuCtxSetCurrent", e))
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // Finish queued work with the context current, so that the cuBLAS handle and
        // the modules are released from a quiet device. Errors cannot be reported here.
        let _ = self.ctx.bind_to_thread();
        let _ = self.stream.synchronize();
    }
}

impl Device {
    /// Open device `ordinal`: probes the driver, NVRTC and cuBLAS libraries first (a
    /// missing one is [`BrainError::Unsupported`], never a panic), then creates the
    /// context, the stream and the cuBLAS handle.
    pub(crate) fn new(ordinal: usize) -> Result<Self> {
        driver_available()?;
        nvrtc_available()?;
        cublas_available()?;
        let count = CudaContext::device_count().map_err(|e| driver_error("cuInit", e))?;
        let count = usize::try_from(count).unwrap_or(0);
        if count == 0 {
            return Err(BrainError::Unsupported("cuda: no CUDA device".into()));
        }
        if ordinal >= count {
            return Err(BrainError::Unsupported(format!(
                "cuda: no device {ordinal} ({count} CUDA device(s) present)"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| driver_error("cuCtxCreate", e))?;
        // One stream, in-order: cudarc's per-buffer events would only add overhead.
        // SAFETY: every buffer is used on `stream` alone (checked by `Device::ptr`).
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| driver_error("cuStreamCreate", e))?;
        let name = ctx.name().map_err(|e| driver_error("cuDeviceGetName", e))?;
        let compute_capability = ctx
            .compute_capability()
            .map_err(|e| driver_error("cuDeviceGetAttribute", e))?;
        let target = Target::for_device(compute_capability.0, compute_capability.1)?;
        ctx.bind_to_thread()
            .map_err(|e| driver_error("cuCtxSetCurrent", e))?;
        let handle = blas::create_handle().map_err(|e| cublas_error("cublasCreate", e))?;
        let blas = Blas { handle };
        // SAFETY: live handle and stream of this context.
        unsafe { blas::set_stream(blas.handle, stream.cu_stream() as _) }
            .map_err(|e| cublas_error("cublasSetStream", e))?;
        // SAFETY: live handle.
        unsafe {
            blas_sys::cublasSetMathMode(blas.handle, blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH)
        }
        .result()
        .map_err(|e| cublas_error("cublasSetMathMode", e))?;
        Ok(Device::with_kind(Kind::Gpu(Gpu {
            blas: Mutex::new(blas),
            modules: ModuleCache::new(target),
            stream,
            ctx,
            ordinal,
            name,
            compute_capability,
        })))
    }

    /// The CPU emulator (see [`crate::emu`]): a typed
    /// [`BrainError::Unsupported`] when no C++ compiler is found.
    pub(crate) fn emulated() -> Result<Self> {
        Ok(Device::with_kind(Kind::Emu(Emu::new()?)))
    }

    fn with_kind(kind: Kind) -> Self {
        Device {
            kind,
            id: NEXT_DEVICE_ID.fetch_add(1, Ordering::Relaxed),
            tf32: AtomicBool::new(false),
        }
    }

    /// What runs the kernels (`launch_kernel!` dispatches on it).
    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }

    pub(crate) fn name(&self) -> &str {
        match &self.kind {
            Kind::Gpu(g) => &g.name,
            Kind::Emu(_) => "CPU emulator",
        }
    }
    pub(crate) fn ordinal(&self) -> usize {
        match &self.kind {
            Kind::Gpu(g) => g.ordinal,
            Kind::Emu(_) => 0,
        }
    }
    /// The GPU's compute capability; `(0, 0)` for the emulator.
    pub(crate) fn compute_capability(&self) -> (i32, i32) {
        match &self.kind {
            Kind::Gpu(g) => g.compute_capability,
            Kind::Emu(_) => (0, 0),
        }
    }
    /// What the kernels are compiled for, in words (`sm_90`, `compute_90 PTX`, or the
    /// emulator's compiler).
    pub(crate) fn target(&self) -> String {
        match &self.kind {
            Kind::Gpu(g) => g.modules.target().to_string(),
            Kind::Emu(e) => e.target(),
        }
    }

    fn own(&self, buf: &CudaBuffer) -> Result<()> {
        if buf.owner == self.id {
            Ok(())
        } else {
            Err(BrainError::InvalidArgument {
                op: "CudaBackend",
                reason: "a buffer made by another CudaBackend was passed to this one".into(),
            })
        }
    }

    /// The device address of `buf` for a kernel that reads it (0 for an empty buffer,
    /// which kernels never dereference); an error if another backend made it.
    pub(crate) fn ptr(&self, buf: &CudaBuffer) -> Result<u64> {
        self.own(buf)?;
        Ok(match (&buf.slice, &self.kind) {
            (Some(Mem::Gpu(s)), Kind::Gpu(g)) => s.device_ptr(&g.stream).0,
            (Some(Mem::Host(h)), _) => h.addr(),
            (None, _) => 0,
            (Some(Mem::Gpu(_)), Kind::Emu(_)) => return Err(kind_bug()),
        })
    }

    /// The device address of `buf` for a kernel that writes it.
    pub(crate) fn ptr_mut(&self, buf: &mut CudaBuffer) -> Result<u64> {
        self.own(buf)?;
        Ok(match (&mut buf.slice, &self.kind) {
            (Some(Mem::Gpu(s)), Kind::Gpu(g)) => s.device_ptr_mut(&g.stream).0,
            (Some(Mem::Host(h)), _) => h.addr(),
            (None, _) => 0,
            (Some(Mem::Gpu(_)), Kind::Emu(_)) => return Err(kind_bug()),
        })
    }

    // ------------------------------------------------------------ memory

    fn bytes(op: &'static str, len: usize) -> Result<usize> {
        len.checked_mul(std::mem::size_of::<f32>())
            .ok_or(BrainError::SizeOverflow { op })
    }

    fn empty(&self) -> CudaBuffer {
        CudaBuffer {
            slice: None,
            len: 0,
            owner: self.id,
        }
    }

    /// A zero-filled buffer.
    pub(crate) fn alloc_zeros(&self, len: usize) -> Result<CudaBuffer> {
        let bytes = Self::bytes("alloc", len)?;
        if len == 0 {
            return Ok(self.empty());
        }
        let slice = match &self.kind {
            Kind::Gpu(g) => Mem::Gpu(
                g.stream
                    .alloc_zeros::<f32>(len)
                    .map_err(|e| alloc_error("alloc", bytes, e))?,
            ),
            Kind::Emu(_) => Mem::Host(HostMem::zeroed(len)?),
        };
        Ok(CudaBuffer {
            slice: Some(slice),
            len,
            owner: self.id,
        })
    }

    /// A buffer of `len` f32 with unspecified contents, for temporaries whose every
    /// element is written before it is read: uninitialised device memory on a GPU;
    /// on the emulator every element is NaN, so that reading one that was not written
    /// shows in the results.
    pub(crate) fn alloc_uninit(&self, op: &'static str, len: usize) -> Result<CudaBuffer> {
        let bytes = Self::bytes(op, len)?;
        if len == 0 {
            return Ok(self.empty());
        }
        let slice = match &self.kind {
            // SAFETY: the caller writes every element before reading it.
            Kind::Gpu(g) => Mem::Gpu(
                unsafe { g.stream.alloc::<f32>(len) }.map_err(|e| alloc_error(op, bytes, e))?,
            ),
            Kind::Emu(_) => {
                let mut h = HostMem::zeroed(len)?;
                h.as_mut_slice().fill(f32::NAN);
                Mem::Host(h)
            }
        };
        Ok(CudaBuffer {
            slice: Some(slice),
            len,
            owner: self.id,
        })
    }

    /// A buffer holding a copy of `data`.
    pub(crate) fn upload(&self, data: &[f32]) -> Result<CudaBuffer> {
        let bytes = Self::bytes("upload", data.len())?;
        if data.is_empty() {
            return Ok(self.empty());
        }
        let slice = match &self.kind {
            Kind::Gpu(g) => Mem::Gpu(
                g.stream
                    .clone_htod(data)
                    .map_err(|e| alloc_error("upload", bytes, e))?,
            ),
            Kind::Emu(_) => {
                let mut h = HostMem::zeroed(data.len())?;
                h.as_mut_slice().copy_from_slice(data);
                Mem::Host(h)
            }
        };
        Ok(CudaBuffer {
            slice: Some(slice),
            len: data.len(),
            owner: self.id,
        })
    }

    /// Overwrite `dst` with `data` (lengths already checked equal).
    pub(crate) fn write(&self, dst: &mut CudaBuffer, data: &[f32]) -> Result<()> {
        self.own(dst)?;
        match (&mut dst.slice, &self.kind) {
            (Some(s), _) if s.len() != data.len() => Err(length_bug("write")),
            (Some(Mem::Gpu(s)), Kind::Gpu(g)) => g
                .stream
                .memcpy_htod(data, s)
                .map_err(|e| driver_error("write", e)),
            (Some(Mem::Host(h)), _) => {
                h.as_mut_slice().copy_from_slice(data);
                Ok(())
            }
            (None, _) if data.is_empty() => Ok(()),
            (None, _) => Err(length_bug("write")),
            (Some(Mem::Gpu(_)), Kind::Emu(_)) => Err(kind_bug()),
        }
    }

    /// Copy `src` to `dst` on the host (lengths already checked equal) and wait.
    pub(crate) fn download(&self, src: &CudaBuffer, dst: &mut [f32]) -> Result<()> {
        self.own(src)?;
        match (&src.slice, &self.kind) {
            (Some(s), _) if s.len() != dst.len() => Err(length_bug("download")),
            (Some(Mem::Gpu(s)), Kind::Gpu(g)) => {
                g.stream
                    .memcpy_dtoh(s, dst)
                    .map_err(|e| driver_error("download", e))?;
                self.sync()
            }
            (Some(Mem::Host(h)), _) => {
                dst.copy_from_slice(h.as_slice());
                Ok(())
            }
            (None, _) if dst.is_empty() => Ok(()),
            (None, _) => Err(length_bug("download")),
            (Some(Mem::Gpu(_)), Kind::Emu(_)) => Err(kind_bug()),
        }
    }

    /// Device-side copy (lengths already checked equal).
    pub(crate) fn copy(&self, src: &CudaBuffer, dst: &mut CudaBuffer) -> Result<()> {
        self.own(src)?;
        self.own(dst)?;
        match (&src.slice, &mut dst.slice, &self.kind) {
            (Some(s), Some(d), _) if s.len() != d.len() => Err(length_bug("copy")),
            (Some(Mem::Gpu(s)), Some(Mem::Gpu(d)), Kind::Gpu(g)) => g
                .stream
                .memcpy_dtod(s, d)
                .map_err(|e| driver_error("copy", e)),
            (Some(Mem::Host(s)), Some(Mem::Host(d)), _) => {
                d.as_mut_slice().copy_from_slice(s.as_slice());
                Ok(())
            }
            (None, None, _) => Ok(()),
            (None, _, _) | (_, None, _) => Err(length_bug("copy")),
            _ => Err(kind_bug()),
        }
    }

    /// Set every element of `dst` to `value` (a 32-bit memset of its bit pattern).
    pub(crate) fn fill(&self, dst: &mut CudaBuffer, value: f32) -> Result<()> {
        let n = dst.len();
        if n == 0 {
            return self.own(dst);
        }
        let ptr = self.ptr_mut(dst)?;
        match (&self.kind, &mut dst.slice) {
            (Kind::Gpu(g), _) => {
                g.bind()?;
                // SAFETY: `ptr` addresses `n` f32 of a live buffer of this context.
                unsafe { drv::cuMemsetD32Async(ptr, value.to_bits(), n, g.stream.cu_stream()) }
                    .result()
                    .map_err(|e| driver_error("fill", e))
            }
            (Kind::Emu(_), Some(Mem::Host(h))) => {
                h.as_mut_slice().fill(value);
                Ok(())
            }
            (Kind::Emu(_), _) => Err(kind_bug()),
        }
    }

    /// Wait for all queued work; also reports errors recorded where none could be
    /// returned (frees in drop).
    pub(crate) fn sync(&self) -> Result<()> {
        match &self.kind {
            Kind::Gpu(g) => {
                g.stream
                    .synchronize()
                    .map_err(|e| driver_error("sync", e))?;
                g.ctx.check_err().map_err(|e| driver_error("sync", e))
            }
            // The emulator runs every call to completion before returning.
            Kind::Emu(_) => Ok(()),
        }
    }

    /// Run `f` between two CUDA events recorded on the stream and return the device
    /// time between them (`None` on the emulator, which has no device clock). Waits
    /// for the stream before and after.
    pub(crate) fn time<T>(
        &self,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<(T, Option<std::time::Duration>)> {
        let g = match &self.kind {
            Kind::Gpu(g) => g,
            Kind::Emu(_) => return Ok((f()?, None)),
        };
        self.sync()?;
        let flags = Some(drv::CUevent_flags::CU_EVENT_DEFAULT);
        let start = g
            .stream
            .record_event(flags)
            .map_err(|e| driver_error("cuEventRecord", e))?;
        let out = f();
        let end = g
            .stream
            .record_event(flags)
            .map_err(|e| driver_error("cuEventRecord", e));
        // Errors of `f` first; then wait, so that a failed call leaves a quiet stream.
        let out = out?;
        let end = end?;
        let ms = start
            .elapsed_ms(&end)
            .map_err(|e| driver_error("cuEventElapsedTime", e))?;
        self.sync()?;
        let secs = f64::from(ms.max(0.0)) * 1e-3;
        Ok((out, Some(std::time::Duration::from_secs_f64(secs))))
    }

    // ------------------------------------------------------------ cuBLAS

    /// Whether cuBLAS may use TF32 tensor cores for f32 GEMM.
    pub(crate) fn tf32(&self) -> bool {
        self.tf32.load(Ordering::Relaxed)
    }

    /// Allow (or forbid, the default) TF32 tensor cores in cuBLAS's f32 GEMM.
    pub(crate) fn set_tf32(&self, on: bool) -> Result<()> {
        let g = match &self.kind {
            Kind::Gpu(g) => g,
            Kind::Emu(_) => {
                self.tf32.store(on, Ordering::Relaxed);
                return Ok(());
            }
        };
        let blas = lock(&g.blas)?;
        g.bind()?;
        let mode = if on {
            blas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: live handle, used under its mutex.
        unsafe { blas_sys::cublasSetMathMode(blas.handle, mode) }
            .result()
            .map_err(|e| cublas_error("cublasSetMathMode", e))?;
        self.tf32.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// `sgemm_strided_batched` as cuBLAS defines it (column-major), on this device's
    /// stream; on the emulator, a plain CPU loop with the same semantics.
    ///
    /// # Safety
    /// The addresses in `g` are f32 buffers of this device in which every matrix of
    /// the batch lies.
    pub(crate) unsafe fn sgemm(&self, g: &Sgemm) -> Result<()> {
        let gpu = match &self.kind {
            Kind::Gpu(gpu) => gpu,
            Kind::Emu(_) => {
                // SAFETY: forwarded from the caller.
                unsafe { crate::emu::sgemm(g, self.tf32()) };
                return Ok(());
            }
        };
        let op = |t: bool| {
            if t {
                blas_sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                blas_sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let handle = lock(&gpu.blas)?;
        gpu.bind()?;
        // SAFETY: live handle on this device's stream, used under its mutex; the
        // pointers address f32 buffers of this device in which every matrix of the
        // batch lies (the caller's contract); alpha and beta are host values (the
        // handle's default pointer mode), read before the call returns.
        unsafe {
            blas::sgemm_strided_batched(
                handle.handle,
                op(g.trans_a),
                op(g.trans_b),
                g.m,
                g.n,
                g.k,
                &g.alpha,
                g.a as *const f32,
                g.lda,
                g.stride_a,
                g.b as *const f32,
                g.ldb,
                g.stride_b,
                &g.beta,
                g.c as *mut f32,
                g.ldc,
                g.stride_c,
                g.batch,
            )
        }
        .map_err(|e| cublas_error("gemm", e))
    }
}

/// The arguments of cuBLAS's `cublasSgemmStridedBatched`, column-major:
/// `C_i = alpha·op(A_i)·op(B_i) + beta·C_i` with `op(A)` `m×k`, `op(B)` `k×n`, `C`
/// `m×n` (leading dimension `ldc`), matrix `i` of each at `stride·i` elements; C is
/// not read when `beta` is 0.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sgemm {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub alpha: f32,
    pub a: u64,
    pub lda: i32,
    pub stride_a: i64,
    pub b: u64,
    pub ldb: i32,
    pub stride_b: i64,
    pub beta: f32,
    pub c: u64,
    pub ldc: i32,
    pub stride_c: i64,
    pub batch: i32,
}

fn kind_bug() -> BrainError {
    BrainError::Backend(
        "cuda: a GPU buffer reached the emulator or the reverse (a bug in backend-cuda)".into(),
    )
}

/// The Backend impl checks lengths before any call reaches here; a mismatch at this
/// level is a bug of this crate, reported as an error rather than a panic.
fn length_bug(op: &'static str) -> BrainError {
    BrainError::Backend(format!(
        "cuda: {op}: buffer lengths disagree after the checks (a bug in backend-cuda)"
    ))
}
