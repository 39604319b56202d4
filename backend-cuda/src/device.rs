//! One CUDA device as the backend uses it: a context, one stream every call is queued
//! on, the cuBLAS handle, the kernel modules, and the buffers.
//!
//! Everything is queued on the one non-blocking stream, in call order, so no event
//! tracking is needed between calls (cudarc's per-buffer events are switched off);
//! only [`Device::download`] and [`Device::sync`] wait for the device.

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

static NEXT_DEVICE_ID: AtomicU64 = AtomicU64::new(1);

/// A buffer of f32 in the memory of one [`CudaBackend`](crate::CudaBackend).
///
/// A buffer may only be passed to the backend that made it (others return
/// [`BrainError::InvalidArgument`]). Dropping it frees the memory in stream order.
#[derive(Debug)]
pub struct CudaBuffer {
    /// `None` for an empty buffer (CUDA cannot allocate 0 bytes).
    slice: Option<CudaSlice<f32>>,
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
    // Field order is drop order: the handle and modules go before the stream and
    // the context they live in.
    blas: Mutex<Blas>,
    modules: ModuleCache,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    id: u64,
    ordinal: usize,
    name: String,
    compute_capability: (i32, i32),
    tf32: AtomicBool,
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
        Ok(Device {
            blas: Mutex::new(blas),
            modules: ModuleCache::new(target),
            stream,
            ctx,
            id: NEXT_DEVICE_ID.fetch_add(1, Ordering::Relaxed),
            ordinal,
            name,
            compute_capability,
            tf32: AtomicBool::new(false),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
    pub(crate) fn ordinal(&self) -> usize {
        self.ordinal
    }
    pub(crate) fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }
    pub(crate) fn target(&self) -> Target {
        self.modules.target()
    }

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
        Ok(match &buf.slice {
            Some(s) => s.device_ptr(&self.stream).0,
            None => 0,
        })
    }

    /// The device address of `buf` for a kernel that writes it.
    pub(crate) fn ptr_mut(&self, buf: &mut CudaBuffer) -> Result<u64> {
        self.own(buf)?;
        Ok(match &mut buf.slice {
            Some(s) => s.device_ptr_mut(&self.stream).0,
            None => 0,
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
        let slice = self
            .stream
            .alloc_zeros::<f32>(len)
            .map_err(|e| alloc_error("alloc", bytes, e))?;
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
        let slice = self
            .stream
            .clone_htod(data)
            .map_err(|e| alloc_error("upload", bytes, e))?;
        Ok(CudaBuffer {
            slice: Some(slice),
            len: data.len(),
            owner: self.id,
        })
    }

    /// Overwrite `dst` with `data` (lengths already checked equal).
    pub(crate) fn write(&self, dst: &mut CudaBuffer, data: &[f32]) -> Result<()> {
        self.own(dst)?;
        match &mut dst.slice {
            Some(s) if s.len() == data.len() => self
                .stream
                .memcpy_htod(data, s)
                .map_err(|e| driver_error("write", e)),
            None if data.is_empty() => Ok(()),
            _ => Err(length_bug("write")),
        }
    }

    /// Copy `src` to `dst` on the host (lengths already checked equal) and wait.
    pub(crate) fn download(&self, src: &CudaBuffer, dst: &mut [f32]) -> Result<()> {
        self.own(src)?;
        match &src.slice {
            Some(s) if s.len() == dst.len() => {
                self.stream
                    .memcpy_dtoh(s, dst)
                    .map_err(|e| driver_error("download", e))?;
                self.sync()
            }
            None if dst.is_empty() => Ok(()),
            _ => Err(length_bug("download")),
        }
    }

    /// Device-side copy (lengths already checked equal).
    pub(crate) fn copy(&self, src: &CudaBuffer, dst: &mut CudaBuffer) -> Result<()> {
        self.own(src)?;
        self.own(dst)?;
        match (&src.slice, &mut dst.slice) {
            (Some(s), Some(d)) if s.len() == d.len() => self
                .stream
                .memcpy_dtod(s, d)
                .map_err(|e| driver_error("copy", e)),
            (None, None) => Ok(()),
            _ => Err(length_bug("copy")),
        }
    }

    /// Set every element of `dst` to `value` (a 32-bit memset of its bit pattern).
    pub(crate) fn fill(&self, dst: &mut CudaBuffer, value: f32) -> Result<()> {
        let n = dst.len();
        if n == 0 {
            return self.own(dst);
        }
        let ptr = self.ptr_mut(dst)?;
        self.bind()?;
        // SAFETY: `ptr` addresses `n` f32 of a live buffer of this context.
        unsafe { drv::cuMemsetD32Async(ptr, value.to_bits(), n, self.stream.cu_stream()) }
            .result()
            .map_err(|e| driver_error("fill", e))
    }

    /// Wait for all queued work; also reports errors recorded where none could be
    /// returned (frees in drop).
    pub(crate) fn sync(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| driver_error("sync", e))?;
        self.ctx.check_err().map_err(|e| driver_error("sync", e))
    }

    // ------------------------------------------------------------ cuBLAS

    /// Whether cuBLAS may use TF32 tensor cores for f32 GEMM.
    pub(crate) fn tf32(&self) -> bool {
        self.tf32.load(Ordering::Relaxed)
    }

    /// Allow (or forbid, the default) TF32 tensor cores in cuBLAS's f32 GEMM.
    pub(crate) fn set_tf32(&self, on: bool) -> Result<()> {
        let blas = lock(&self.blas)?;
        self.bind()?;
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

    /// Run `f` with the cuBLAS handle (bound to this device's stream), the context
    /// current on this thread.
    pub(crate) fn with_blas<R>(
        &self,
        f: impl FnOnce(blas_sys::cublasHandle_t) -> Result<R>,
    ) -> Result<R> {
        let blas = lock(&self.blas)?;
        self.bind()?;
        f(blas.handle)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // Finish queued work with the context current, so that the cuBLAS handle and
        // the modules are released from a quiet device. Errors cannot be reported here.
        let _ = self.ctx.bind_to_thread();
        let _ = self.stream.synchronize();
    }
}

/// The Backend impl checks lengths before any call reaches here; a mismatch at this
/// level is a bug of this crate, reported as an error rather than a panic.
fn length_bug(op: &'static str) -> BrainError {
    BrainError::Backend(format!(
        "cuda: {op}: buffer lengths disagree after the checks (a bug in backend-cuda)"
    ))
}
