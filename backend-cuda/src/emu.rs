//! The CPU emulator: the crate's own kernel sources and host code, run without a GPU.
//!
//! [`CudaBackend::emulated`](crate::CudaBackend::emulated) gives a backend whose
//! buffers live in host memory (a device address is the host address, aligned to 256
//! bytes like `cuMemAlloc`'s) and whose kernels are the CUDA C of `kernels/*.cu`,
//! compiled by the host C++ compiler against a shim (`emu/cuda_emu.h`) and run on the
//! CPU: the blocks of a grid one after another, the threads of a block as fibers that
//! switch at `__syncthreads` and warp collectives (`emu/cuda_emu_entry.h`). Everything
//! else is the real backend: the `Backend` impl, its checks, the launch configurations
//! and argument lists of `src/ops`, the two-level reductions. cuBLAS is replaced by a
//! CPU loop with cuBLAS's column-major semantics ([`sgemm`]), so the operand swap of
//! `ops/gemm.rs` is exercised too.
//!
//! Its purpose is testing (`tests/conformance_emulated.rs` runs the whole conformance
//! suite on it, in CI, which has no GPU): it is slow, and the GPU's floating-point
//! details (FMA contraction, the accuracy of `expf`, …) are the host's. What it checks:
//! indexing, launch geometry, barriers and warp shuffles, shared memory use, argument
//! lists (each argument's size is compared with the kernel's parameter type at every
//! launch: a mismatch is an error), and the numerics of the algorithms.
//!
//! Compilation: each kernel family becomes one shared library, built on first use with
//! `g++` (or `$BRAIN_CUDA_EMU_CXX`) into a cache directory keyed by a hash of the
//! sources and flags (`$BRAIN_CUDA_EMU_DIR`, else `<temp dir>/brain-cuda-emu`), then
//! loaded with `dlopen`. The kernels of a family are found by preprocessing its source
//! and reading the `extern "C" __global__` declarations.

use crate::device::Sgemm;
use crate::module_cache::{Family, COMMON_HEADER};
use brain_core::{BrainError, Result};
use cudarc::driver::{DeviceRepr, LaunchConfig};
use std::ffi::{c_char, c_void, CString};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The shim header every family is compiled with (`-include`).
const SHIM: &str = include_str!("../emu/cuda_emu.h");
/// The launch entry included after each family's source.
const ENTRY: &str = include_str!("../emu/cuda_emu_entry.h");

/// Environment variable naming the C++ compiler (default `g++`).
pub const CXX_ENV: &str = "BRAIN_CUDA_EMU_CXX";
/// Environment variable naming the cache directory of the compiled families.
pub const DIR_ENV: &str = "BRAIN_CUDA_EMU_DIR";

const FLAGS: &[&str] = &[
    "-std=c++17",
    "-O2",
    "-fPIC",
    "-shared",
    "-fno-fast-math",
    "-ffp-contract=off",
    "-Wno-unknown-pragmas",
];

fn cxx() -> String {
    std::env::var(CXX_ENV).unwrap_or_else(|_| "g++".to_string())
}

fn emu_error(what: impl std::fmt::Display) -> BrainError {
    BrainError::Backend(format!("cuda (emulator): {what}"))
}

/// The emulator's state: nothing per device (the compiled families are shared by the
/// process).
pub(crate) struct Emu {
    compiler: String,
}

impl Emu {
    /// Checks that the C++ compiler runs; [`BrainError::Unsupported`] otherwise.
    pub(crate) fn new() -> Result<Self> {
        let cxx = cxx();
        let out = Command::new(&cxx).arg("--version").output().map_err(|e| {
            BrainError::Unsupported(format!(
                "cuda emulator: no C++ compiler ({cxx}: {e}; set {CXX_ENV})"
            ))
        })?;
        if !out.status.success() {
            return Err(BrainError::Unsupported(format!(
                "cuda emulator: {cxx} --version failed"
            )));
        }
        let version = String::from_utf8_lossy(&out.stdout);
        let compiler = version.lines().next().unwrap_or(&cxx).trim().to_string();
        Ok(Emu { compiler })
    }

    /// The compiler, in words.
    pub(crate) fn target(&self) -> String {
        format!("emulated on the CPU, {}", self.compiler)
    }

    /// Run kernel `name` of `family` with `cfg` and `args` to completion.
    pub(crate) fn launch(
        &self,
        family: Family,
        name: &str,
        cfg: LaunchConfig,
        args: &[Arg<'_>],
    ) -> Result<()> {
        let module = module(family)?;
        let dims = [
            cfg.grid_dim.0,
            cfg.grid_dim.1,
            cfg.grid_dim.2,
            cfg.block_dim.0,
            cfg.block_dim.1,
            cfg.block_dim.2,
            cfg.shared_mem_bytes,
        ];
        let ptrs: Vec<*mut c_void> = args.iter().map(|a| a.ptr).collect();
        let sizes: Vec<usize> = args.iter().map(|a| a.size).collect();
        let cname = CString::new(name).map_err(emu_error)?;
        let mut err = [0u8; 512];
        // SAFETY: `launch` is `brain_emu_launch` of the family's library (kept loaded
        // by `module`); every pointer is valid for the call: the name a C string, dims
        // 7 u32, `ptrs` and `sizes` `args.len()` entries, each `ptrs[i]` pointing to a
        // live value of `sizes[i]` bytes (`Arg::new`), `err` 512 writable bytes. The
        // entry compares the count and sizes with the kernel's parameters before
        // calling it. The kernel then reads and writes the buffers its arguments
        // address: the caller's contract (`launch_kernel!`) is that they are live
        // buffers of this device, holding every element the kernel touches.
        let rc = unsafe {
            (module.launch)(
                cname.as_ptr(),
                dims.as_ptr(),
                ptrs.as_ptr(),
                sizes.as_ptr(),
                ptrs.len(),
                err.as_mut_ptr().cast::<c_char>(),
                err.len(),
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let end = err.iter().position(|&b| b == 0).unwrap_or(err.len());
        let msg = String::from_utf8_lossy(&err[..end]);
        Err(emu_error(format_args!("{}: {name}: {msg}", family.name())))
    }
}

/// One kernel argument as `cuLaunchKernel` takes it: the address of the value, and its
/// size (checked against the kernel's parameter type).
pub(crate) struct Arg<'a> {
    ptr: *mut c_void,
    size: usize,
    _value: std::marker::PhantomData<&'a ()>,
}

impl<'a> Arg<'a> {
    /// The argument `v` (the same bound as cudarc's `PushKernelArg`).
    pub(crate) fn new<T: DeviceRepr>(v: &'a T) -> Self {
        Arg {
            ptr: (v as *const T).cast_mut().cast::<c_void>(),
            size: std::mem::size_of::<T>(),
            _value: std::marker::PhantomData,
        }
    }
}

// ------------------------------------------------------------------ memory

/// Alignment of emulated allocations (as `cuMemAlloc`'s).
const ALIGN: usize = 256;

/// A zero-initialised host allocation of f32, standing in for device memory.
#[derive(Debug)]
pub(crate) struct HostMem {
    ptr: std::ptr::NonNull<f32>,
    len: usize,
}

// SAFETY: an owned allocation like a Box<[f32]>; kernels write through its address
// only during calls that hold a `&mut` of the buffer (`Device::ptr_mut`).
unsafe impl Send for HostMem {}
// SAFETY: as above; shared references only read.
unsafe impl Sync for HostMem {}

impl HostMem {
    fn layout(len: usize) -> Result<std::alloc::Layout> {
        std::alloc::Layout::array::<f32>(len)
            .and_then(|l| l.align_to(ALIGN))
            .map_err(|_| BrainError::SizeOverflow { op: "alloc" })
    }

    /// `len ≥ 1` zeros.
    pub(crate) fn zeroed(len: usize) -> Result<Self> {
        let layout = Self::layout(len.max(1))?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = std::ptr::NonNull::new(raw.cast::<f32>()).ok_or(BrainError::OutOfMemory {
            bytes: layout.size(),
        })?;
        Ok(HostMem { ptr, len })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The "device address".
    pub(crate) fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        // SAFETY: `len` initialised f32 owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: `len` initialised f32 owned by self, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for HostMem {
    fn drop(&mut self) {
        if let Ok(layout) = Self::layout(self.len.max(1)) {
            // SAFETY: allocated in `zeroed` with this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast::<u8>(), layout) };
        }
    }
}

// ------------------------------------------------------------------ cuBLAS

/// Rounds to TF32 (10 mantissa bits, to nearest even), as tensor cores read operands.
fn tf32(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    let b = x.to_bits();
    let r = b.wrapping_add(0xfff + ((b >> 13) & 1)) & !0x1fff;
    f32::from_bits(r)
}

/// `cublasSgemmStridedBatched` on host memory: f32 products accumulated in f32 in
/// order of k (cuBLAS's order is unspecified).
///
/// # Safety
/// The addresses in `g` are host allocations of f32 in which every matrix of the
/// batch lies (what `Device::sgemm` requires of its caller).
pub(crate) unsafe fn sgemm(g: &Sgemm, tf32_on: bool) {
    let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
    let (lda, ldb, ldc) = (g.lda as usize, g.ldb as usize, g.ldc as usize);
    let rd = |x: f32| if tf32_on { tf32(x) } else { x };
    for batch in 0..g.batch.max(0) as i64 {
        // SAFETY: the caller's contract: every matrix of the batch lies in its buffer.
        let (a, b, c) = unsafe {
            (
                (g.a as *const f32).offset((batch * g.stride_a) as isize),
                (g.b as *const f32).offset((batch * g.stride_b) as isize),
                (g.c as *mut f32).offset((batch * g.stride_c) as isize),
            )
        };
        for j in 0..n {
            for i in 0..m {
                let mut acc = 0.0f32;
                for l in 0..k {
                    let ai = if g.trans_a { l + i * lda } else { i + l * lda };
                    let bi = if g.trans_b { j + l * ldb } else { l + j * ldb };
                    // SAFETY: inside the matrices (caller's contract).
                    let (x, y) = unsafe { (*a.add(ai), *b.add(bi)) };
                    acc += rd(x) * rd(y);
                }
                // SAFETY: inside C (caller's contract).
                let cij = unsafe { &mut *c.add(i + j * ldc) };
                *cij = if g.beta == 0.0 {
                    g.alpha * acc
                } else {
                    g.alpha * acc + g.beta * *cij
                };
            }
        }
    }
}

// ------------------------------------------------------------------ compiled families

type LaunchFn = unsafe extern "C" fn(
    *const c_char,
    *const u32,
    *const *mut c_void,
    *const usize,
    usize,
    *mut c_char,
    usize,
) -> i32;

struct Module {
    launch: LaunchFn,
    _lib: libloading::Library,
}

fn module(family: Family) -> Result<Arc<Module>> {
    static MODULES: [OnceLock<std::result::Result<Arc<Module>, BrainError>>; Family::ALL.len()] =
        [const { OnceLock::new() }; Family::ALL.len()];
    let i = Family::ALL
        .iter()
        .position(|&f| f == family)
        .ok_or_else(|| emu_error("unknown family"))?;
    MODULES[i]
        .get_or_init(|| build(family).map(Arc::new))
        .clone()
}

fn cache_dir(hash: u64) -> PathBuf {
    let root = std::env::var_os(DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("brain-cuda-emu"));
    root.join(format!("{hash:016x}"))
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    // Written under a unique name, then renamed: other processes may read it.
    let tmp = unique(path);
    std::fs::write(&tmp, text).map_err(|e| emu_error(format_args!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| emu_error(format_args!("{}: {e}", path.display())))
}

fn unique(path: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}.{n}", std::process::id()));
    path.with_file_name(name)
}

fn run(cmd: &mut Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd
        .output()
        .map_err(|e| emu_error(format_args!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(emu_error(format_args!(
            "{what} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out.stdout)
}

/// The names of the `extern "C" __global__` kernels in preprocessed text where
/// `__global__` reads `BRAIN_EMU_GLOBAL`: the identifier before the first `(` after
/// each marker.
pub(crate) fn kernel_names(preprocessed: &str) -> Vec<String> {
    let mut names = Vec::new();
    for part in preprocessed.split("BRAIN_EMU_GLOBAL").skip(1) {
        let head = part.split('(').next().unwrap_or("");
        if let Some(name) = head.split_whitespace().last() {
            if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_string());
            }
        }
    }
    names
}

fn build(family: Family) -> Result<Module> {
    let cxx = cxx();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (SHIM, ENTRY, COMMON_HEADER, family.source(), FLAGS, &cxx).hash(&mut h);
    let dir = cache_dir(h.finish());
    std::fs::create_dir_all(&dir).map_err(|e| emu_error(format_args!("{}: {e}", dir.display())))?;
    let lib = dir.join(format!("lib{}.so", family.name()));
    if !lib.exists() {
        write_if_changed(&dir.join("cuda_emu.h"), SHIM)?;
        write_if_changed(&dir.join("cuda_emu_entry.h"), ENTRY)?;
        write_if_changed(&dir.join("common.cuh"), COMMON_HEADER)?;
        let src = dir.join(format!("{}.cu", family.name()));
        write_if_changed(&src, family.source())?;
        let pre = run(
            Command::new(&cxx)
                .args(["-E", "-P", "-std=c++17", "-D__global__=BRAIN_EMU_GLOBAL"])
                .arg("-I")
                .arg(&dir)
                .args(["-include", "cuda_emu.h", "-x", "c++"])
                .arg(&src),
            &format!("{cxx} -E {}.cu", family.name()),
        )?;
        let names = kernel_names(&String::from_utf8_lossy(&pre));
        let list: String = names.iter().map(|n| format!(" X({n})")).collect();
        let unit = dir.join(format!("{}_emu.cpp", family.name()));
        write_if_changed(
            &unit,
            &format!(
                "#include \"{}.cu\"\n#define EMU_KERNELS(X){list}\n#include \"cuda_emu_entry.h\"\n",
                family.name()
            ),
        )?;
        let tmp = unique(&lib);
        run(
            Command::new(&cxx)
                .args(FLAGS)
                .arg("-I")
                .arg(&dir)
                .args(["-include", "cuda_emu.h"])
                .arg(&unit)
                .arg("-o")
                .arg(&tmp),
            &format!("{cxx} {}_emu.cpp", family.name()),
        )?;
        std::fs::rename(&tmp, &lib)
            .map_err(|e| emu_error(format_args!("{}: {e}", lib.display())))?;
    }
    // SAFETY: a library this function compiled from the crate's own sources; its
    // initialisers only set up static tables.
    let lib_handle = unsafe { libloading::Library::new(&lib) }
        .map_err(|e| emu_error(format_args!("loading {}: {e}", lib.display())))?;
    // SAFETY: `brain_emu_launch` has the signature of `LaunchFn` (cuda_emu_entry.h).
    let launch: LaunchFn = unsafe { lib_handle.get::<LaunchFn>(b"brain_emu_launch\0") }
        .map(|s| *s)
        .map_err(|e| emu_error(format_args!("{}: {e}", lib.display())))?;
    Ok(Module {
        launch,
        _lib: lib_handle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_read_from_preprocessed_text() {
        let text = "static void f(int);\nextern \"C\" BRAIN_EMU_GLOBAL void\n  a_f32(int x) {}\n\
                    extern \"C\" BRAIN_EMU_GLOBAL void b_f32 (float* __restrict__ y);";
        assert_eq!(kernel_names(text), ["a_f32", "b_f32"]);
    }

    /// A launch whose argument list disagrees with the kernel's parameters is an error,
    /// not a misread (`scale_f32(float*, float, u64)` given a u32 count).
    #[test]
    fn argument_sizes_are_checked() {
        let emu = match Emu::new() {
            Ok(e) => e,
            Err(e) if std::env::var_os("BRAIN_CUDA_EMU_OPTIONAL").is_some() => {
                return println!("skipped: argument_sizes_are_checked: {e}");
            }
            Err(e) => panic!("the CUDA emulator is unavailable: {e}"),
        };
        let mut mem = HostMem::zeroed(4).unwrap();
        mem.as_mut_slice().fill(1.5);
        let (x, alpha) = (mem.addr(), 2.0f32);
        let cfg = crate::launch::elementwise(4);
        let (n32, n64) = (4u32, 4u64);
        let bad = emu.launch(
            Family::Elementwise,
            "scale_f32",
            cfg,
            &[Arg::new(&x), Arg::new(&alpha), Arg::new(&n32)],
        );
        assert!(
            matches!(&bad, Err(BrainError::Backend(m)) if m.contains("argument 2 is 8 byte(s) in the kernel, 4 in the launch")),
            "{bad:?}"
        );
        emu.launch(
            Family::Elementwise,
            "scale_f32",
            cfg,
            &[Arg::new(&x), Arg::new(&alpha), Arg::new(&n64)],
        )
        .unwrap();
        assert_eq!(mem.as_slice(), [3.0; 4]);
    }

    #[test]
    fn tf32_keeps_ten_mantissa_bits() {
        assert_eq!(tf32(1.0), 1.0);
        assert_eq!(tf32(1.0 + f32::EPSILON), 1.0);
        assert_eq!(tf32(f32::INFINITY), f32::INFINITY);
        assert_eq!(tf32(1.0 + 1.0 / 1024.0), 1.0 + 1.0 / 1024.0);
    }
}
