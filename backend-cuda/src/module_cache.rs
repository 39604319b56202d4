//! NVRTC compilation of the kernel families, and the per-device cache of loaded
//! modules and functions.
//!
//! Each family is one CUDA C file under `kernels/`, embedded in the crate with
//! `include_str!`; `kernels/common.cuh` reaches NVRTC as an in-memory header, so
//! compiling needs no file system and no CUDA headers. A family is compiled the first
//! time one of its kernels is launched (once per process and target, shared by every
//! device); each device loads it as a module and keeps it, and every function looked
//! up in it, for the device's lifetime.
//!
//! What NVRTC produces for a device: a CUBIN for the device's own architecture when
//! the loaded NVRTC knows that architecture (no JIT at load time, and minor-version
//! compatibility lets a newer NVRTC of the same major version serve an older driver);
//! otherwise PTX for the newest architecture NVRTC knows, which the driver JIT-compiles
//! (it must then be at least as new as NVRTC). The CI check ([`compile_ptx`]) compiles
//! PTX with the same options and assembles it with `ptxas`.

use crate::launch::{driver_error, lock};
use brain_core::{BrainError, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::sys as nvrtc;
use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::sync::{Arc, Mutex, OnceLock};

/// The shared header every family includes as `#include "common.cuh"`.
pub const COMMON_HEADER: &str = include_str!("../kernels/common.cuh");

/// Environment variable with extra include directories for NVRTC (`:`-separated),
/// for kernels that include CUDA headers (e.g. `cuda_fp16.h` from the
/// `nvidia-cuda-runtime-cu12` wheel); the kernels of this crate need none today.
pub const INCLUDE_ENV: &str = "BRAIN_CUDA_INCLUDE";

/// One CUDA C source file of kernels (`kernels/<name>.cu`), compiled as one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// add, scale, axpy, GEMM's β·C pass.
    Elementwise,
    /// GELU (erf, tanh), SiLU.
    Activation,
    /// Bias add and its gradient.
    Bias,
    /// LayerNorm, GroupNorm.
    Norm,
    /// Philox fills and dropout.
    DropoutRandom,
    /// Nearest and bilinear upsampling.
    Upsample,
    /// Row reductions.
    Reduce,
    /// Fused multi-tensor AdamW.
    Adamw,
    /// MSE loss.
    Mse,
    /// Linear CKA on Gram matrices.
    Cka,
    /// Sims token loss.
    Sims,
    /// Row L2 normalisation and the contrastive (SoftCLIP / InfoNCE) kernels.
    Contrastive,
    /// Sobel and the Sobel loss.
    Sobel,
    /// Scheduler step, add_noise, guidance.
    Diffusion,
}

impl Family {
    /// Every family, in file-name order of `kernels/`.
    pub const ALL: [Family; 14] = [
        Family::Activation,
        Family::Adamw,
        Family::Bias,
        Family::Cka,
        Family::Contrastive,
        Family::Diffusion,
        Family::DropoutRandom,
        Family::Elementwise,
        Family::Mse,
        Family::Norm,
        Family::Reduce,
        Family::Sims,
        Family::Sobel,
        Family::Upsample,
    ];

    /// File stem under `kernels/` (also the NVRTC program name, with `.cu`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Elementwise => "elementwise",
            Family::Activation => "activation",
            Family::Bias => "bias",
            Family::Norm => "norm",
            Family::DropoutRandom => "dropout_random",
            Family::Upsample => "upsample",
            Family::Reduce => "reduce",
            Family::Adamw => "adamw",
            Family::Mse => "mse",
            Family::Cka => "cka",
            Family::Sims => "sims",
            Family::Contrastive => "contrastive",
            Family::Sobel => "sobel",
            Family::Diffusion => "diffusion",
        }
    }

    /// The CUDA C source.
    pub fn source(self) -> &'static str {
        match self {
            Family::Elementwise => include_str!("../kernels/elementwise.cu"),
            Family::Activation => include_str!("../kernels/activation.cu"),
            Family::Bias => include_str!("../kernels/bias.cu"),
            Family::Norm => include_str!("../kernels/norm.cu"),
            Family::DropoutRandom => include_str!("../kernels/dropout_random.cu"),
            Family::Upsample => include_str!("../kernels/upsample.cu"),
            Family::Reduce => include_str!("../kernels/reduce.cu"),
            Family::Adamw => include_str!("../kernels/adamw.cu"),
            Family::Mse => include_str!("../kernels/mse.cu"),
            Family::Cka => include_str!("../kernels/cka.cu"),
            Family::Sims => include_str!("../kernels/sims.cu"),
            Family::Contrastive => include_str!("../kernels/contrastive.cu"),
            Family::Sobel => include_str!("../kernels/sobel.cu"),
            Family::Diffusion => include_str!("../kernels/diffusion.cu"),
        }
    }
}

/// The NVRTC options every compile uses, for `--gpu-architecture=<arch>` (`compute_90`
/// for PTX, `sm_90` for a CUBIN): C++17, `-default-device` (functions without
/// qualifiers are device functions), line info for profilers, precise division and
/// square root and FMA contraction as nvcc's defaults, no fast math; plus one
/// `--include-path` per directory of [`INCLUDE_ENV`].
pub fn compile_options(gpu_architecture: &str) -> Vec<String> {
    let mut opts = vec![
        format!("--gpu-architecture={gpu_architecture}"),
        "-default-device".to_string(),
        "--std=c++17".to_string(),
        "--generate-line-info".to_string(),
        "--fmad=true".to_string(),
        "--prec-div=true".to_string(),
        "--prec-sqrt=true".to_string(),
    ];
    if let Some(dirs) = std::env::var_os(INCLUDE_ENV) {
        for dir in std::env::split_paths(&dirs) {
            if !dir.as_os_str().is_empty() {
                opts.push(format!("--include-path={}", dir.display()));
            }
        }
    }
    opts
}

/// Fails with a typed error unless the NVRTC library can be loaded (cudarc would
/// panic on first use otherwise).
pub fn nvrtc_available() -> Result<()> {
    // SAFETY: only tries to dlopen the library under cudarc's candidate names.
    if unsafe { nvrtc::is_culib_present() } {
        Ok(())
    } else {
        Err(BrainError::Unsupported(
            "cuda: NVRTC not found (libnvrtc.so.13 or .so.12 must be on LD_LIBRARY_PATH)".into(),
        ))
    }
}

/// `(major, minor)` of the NVRTC library that was loaded.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    nvrtc_available()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two valid out-pointers.
    check(
        unsafe { nvrtc::nvrtcVersion(&mut major, &mut minor) },
        "nvrtcVersion",
    )?;
    Ok((major, minor))
}

/// The real architectures (`90` for sm_90) the loaded NVRTC can compile for.
pub fn nvrtc_supported_archs() -> Result<Vec<u32>> {
    nvrtc_available()?;
    let mut count = 0;
    // SAFETY: valid out-pointer.
    check(
        unsafe { nvrtc::nvrtcGetNumSupportedArchs(&mut count) },
        "nvrtcGetNumSupportedArchs",
    )?;
    let mut archs = vec![0i32; usize::try_from(count).unwrap_or(0)];
    if !archs.is_empty() {
        // SAFETY: `archs` has room for the `count` entries NVRTC writes.
        check(
            unsafe { nvrtc::nvrtcGetSupportedArchs(archs.as_mut_ptr()) },
            "nvrtcGetSupportedArchs",
        )?;
    }
    Ok(archs
        .into_iter()
        .filter_map(|a| u32::try_from(a).ok())
        .collect())
}

/// Compile one family to PTX for `compute_<arch>` (e.g. `arch = 90`), with the same
/// options a device uses ([`compile_options`]). Needs NVRTC, not a driver or a GPU:
/// this is what CI runs to check every kernel.
pub fn compile_ptx(family: Family, arch: u32) -> Result<String> {
    let out = compile(family, &format!("compute_{arch}"), Output::Ptx)?;
    String::from_utf8(out).map_err(|_| {
        BrainError::Backend(format!(
            "cuda: NVRTC returned PTX for {}.cu that is not UTF-8",
            family.name()
        ))
    })
}

/// Compile one family to a CUBIN for `sm_<arch>`.
pub(crate) fn compile_cubin(family: Family, arch: u32) -> Result<Vec<u8>> {
    compile(family, &format!("sm_{arch}"), Output::Cubin)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Ptx,
    Cubin,
}

fn check(r: nvrtc::nvrtcResult, what: &str) -> Result<()> {
    match r {
        nvrtc::nvrtcResult::NVRTC_SUCCESS => Ok(()),
        nvrtc::nvrtcResult::NVRTC_ERROR_OUT_OF_MEMORY => Err(BrainError::Backend(format!(
            "cuda: {what}: NVRTC ran out of host memory"
        ))),
        e => Err(BrainError::Backend(format!("cuda: {what}: {e:?}"))),
    }
}

/// An NVRTC program, destroyed on drop.
struct Program(nvrtc::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: created by nvrtcCreateProgram and destroyed once, here.
        let _ = unsafe { nvrtc::nvrtcDestroyProgram(&mut self.0) };
    }
}

impl Program {
    fn log(&self) -> String {
        let mut size = 0usize;
        // SAFETY: valid program and out-pointer.
        let ok = unsafe { nvrtc::nvrtcGetProgramLogSize(self.0, &mut size) };
        if ok != nvrtc::nvrtcResult::NVRTC_SUCCESS || size == 0 {
            return String::new();
        }
        let mut buf = vec![0u8; size];
        // SAFETY: `buf` has the `size` bytes NVRTC asked for.
        let ok = unsafe { nvrtc::nvrtcGetProgramLog(self.0, buf.as_mut_ptr().cast::<c_char>()) };
        if ok != nvrtc::nvrtcResult::NVRTC_SUCCESS {
            return String::new();
        }
        let text = CStr::from_bytes_until_nul(&buf)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| String::from_utf8_lossy(&buf).into_owned());
        text.trim_end().to_string()
    }
}

fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| BrainError::Backend(format!("cuda: {what} contains a NUL byte")))
}

fn compile(family: Family, gpu_architecture: &str, output: Output) -> Result<Vec<u8>> {
    nvrtc_available()?;
    let file = format!("{}.cu", family.name());
    let src = cstring(&file, family.source())?;
    let name = cstring("program name", &file)?;
    let header = cstring("common.cuh", COMMON_HEADER)?;
    let header_name = cstring("header name", "common.cuh")?;
    let headers = [header.as_ptr()];
    let header_names = [header_name.as_ptr()];
    let mut prog: nvrtc::nvrtcProgram = std::ptr::null_mut();
    // SAFETY: every pointer is a NUL-terminated string alive for the call; NVRTC
    // copies the sources.
    check(
        unsafe {
            nvrtc::nvrtcCreateProgram(
                &mut prog,
                src.as_ptr(),
                name.as_ptr(),
                1,
                headers.as_ptr(),
                header_names.as_ptr(),
            )
        },
        "nvrtcCreateProgram",
    )?;
    let prog = Program(prog);
    let options = compile_options(gpu_architecture);
    let c_options = options
        .iter()
        .map(|o| cstring("an NVRTC option", o))
        .collect::<Result<Vec<_>>>()?;
    let option_ptrs: Vec<*const c_char> = c_options.iter().map(|o| o.as_ptr()).collect();
    let n_options = i32::try_from(option_ptrs.len())
        .map_err(|_| BrainError::Backend("cuda: too many NVRTC options".into()))?;
    // SAFETY: valid program; `option_ptrs` holds `n_options` live C strings.
    let r = unsafe { nvrtc::nvrtcCompileProgram(prog.0, n_options, option_ptrs.as_ptr()) };
    if r != nvrtc::nvrtcResult::NVRTC_SUCCESS {
        return Err(BrainError::Backend(format!(
            "cuda: NVRTC could not compile {file} for {gpu_architecture} ({r:?}; options {}):\n{}",
            options.join(" "),
            prog.log()
        )));
    }
    let mut size = 0usize;
    let mut out;
    match output {
        Output::Ptx => {
            // SAFETY: compiled program, valid out-pointer.
            check(
                unsafe { nvrtc::nvrtcGetPTXSize(prog.0, &mut size) },
                "nvrtcGetPTXSize",
            )?;
            out = vec![0u8; size];
            // SAFETY: `out` has the `size` bytes NVRTC reported.
            check(
                unsafe { nvrtc::nvrtcGetPTX(prog.0, out.as_mut_ptr().cast::<c_char>()) },
                "nvrtcGetPTX",
            )?;
            // The PTX text is NUL-terminated; keep the text only.
            while out.last() == Some(&0) {
                out.pop();
            }
            if out.contains(&0) {
                return Err(BrainError::Backend(format!(
                    "cuda: NVRTC returned PTX for {file} with a NUL byte inside"
                )));
            }
        }
        Output::Cubin => {
            // SAFETY: compiled program, valid out-pointer.
            check(
                unsafe { nvrtc::nvrtcGetCUBINSize(prog.0, &mut size) },
                "nvrtcGetCUBINSize",
            )?;
            out = vec![0u8; size];
            // SAFETY: `out` has the `size` bytes NVRTC reported.
            check(
                unsafe { nvrtc::nvrtcGetCUBIN(prog.0, out.as_mut_ptr().cast::<c_char>()) },
                "nvrtcGetCUBIN",
            )?;
        }
    }
    Ok(out)
}

/// What a device's modules are compiled to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// A CUBIN for `sm_<arch>` (the device's own architecture).
    Cubin(u32),
    /// PTX for `compute_<arch>`, JIT-compiled by the driver (a device newer than NVRTC).
    Ptx(u32),
}

impl Target {
    /// The target for a device of compute capability `major.minor`.
    pub(crate) fn for_device(major: i32, minor: i32) -> Result<Target> {
        let arch = u32::try_from(major * 10 + minor).map_err(|_| {
            BrainError::Unsupported(format!(
                "cuda: compute capability {major}.{minor} is not valid"
            ))
        })?;
        let supported = nvrtc_supported_archs()?;
        if supported.contains(&arch) {
            return Ok(Target::Cubin(arch));
        }
        match supported.iter().copied().filter(|&a| a < arch).max() {
            Some(older) => Ok(Target::Ptx(older)),
            None => Err(BrainError::Unsupported(format!(
                "cuda: the loaded NVRTC cannot compile for sm_{arch} or any older \
                 architecture (it supports {supported:?})"
            ))),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Cubin(a) => write!(f, "sm_{a}"),
            Target::Ptx(a) => write!(f, "compute_{a} PTX"),
        }
    }
}

/// A compiled family, as loaded into a module.
#[derive(Clone)]
enum Image {
    Cubin(Vec<u8>),
    Ptx(String),
}

/// Compiled families, shared by every device of the process (NVRTC runs once per
/// family and target, however many backends are created).
static COMPILED: OnceLock<Mutex<HashMap<(Family, Target), Image>>> = OnceLock::new();

fn compiled(family: Family, target: Target) -> Result<Image> {
    let cache = COMPILED.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(image) = lock(cache)?.get(&(family, target)) {
        return Ok(image.clone());
    }
    // Compile without holding the lock; a race compiles twice, harmlessly.
    let image = match target {
        Target::Cubin(arch) => Image::Cubin(compile_cubin(family, arch)?),
        Target::Ptx(arch) => Image::Ptx(compile_ptx(family, arch)?),
    };
    lock(cache)?.insert((family, target), image.clone());
    Ok(image)
}

#[derive(Default)]
struct CacheState {
    modules: HashMap<Family, Arc<CudaModule>>,
    functions: HashMap<(Family, &'static str), CudaFunction>,
}

/// The modules and functions one device has loaded.
pub(crate) struct ModuleCache {
    target: Target,
    state: Mutex<CacheState>,
}

impl ModuleCache {
    pub(crate) fn new(target: Target) -> Self {
        ModuleCache {
            target,
            state: Mutex::new(CacheState::default()),
        }
    }

    pub(crate) fn target(&self) -> Target {
        self.target
    }

    /// Kernel `name` of `family`, compiling and loading the family on first use.
    pub(crate) fn function(
        &self,
        ctx: &Arc<CudaContext>,
        family: Family,
        name: &'static str,
    ) -> Result<CudaFunction> {
        let mut state = lock(&self.state)?;
        if let Some(f) = state.functions.get(&(family, name)) {
            return Ok(f.clone());
        }
        let module = match state.modules.get(&family) {
            Some(m) => m.clone(),
            None => {
                let image = match compiled(family, self.target)? {
                    Image::Cubin(bytes) => cudarc::nvrtc::Ptx::from_binary(bytes),
                    Image::Ptx(text) => cudarc::nvrtc::Ptx::from_src(text),
                };
                let m = ctx
                    .load_module(image)
                    .map_err(|e| driver_error("load_module", e))?;
                state.modules.insert(family, m.clone());
                m
            }
        };
        let f = module.load_function(name).map_err(|e| {
            BrainError::Backend(format!(
                "cuda: kernel `{name}` not found in {}.cu: {e}",
                family.name()
            ))
        })?;
        state.functions.insert((family, name), f.clone());
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runtime path (a CUBIN for the device's architecture) compiles every family,
    /// where NVRTC is present (CI installs it; see tests/compile_kernels.rs).
    #[test]
    fn cubins_compile() {
        if let Err(e) = nvrtc_available() {
            println!("skipped: cubins_compile: {e}");
            return;
        }
        let archs = nvrtc_supported_archs().expect("supported archs");
        assert!(archs.contains(&90), "NVRTC without sm_90: {archs:?}");
        for family in Family::ALL {
            let cubin = compile_cubin(family, 90).expect("CUBIN");
            assert!(
                cubin.starts_with(b"\x7fELF"),
                "{}: not an ELF",
                family.name()
            );
        }
        assert_eq!(Target::for_device(9, 0).expect("target"), Target::Cubin(90));
        // The process-wide cache hands out what NVRTC produced, once compiled.
        for _ in 0..2 {
            match compiled(Family::Reduce, Target::Cubin(90)).expect("cached CUBIN") {
                Image::Cubin(bytes) => assert!(bytes.starts_with(b"\x7fELF")),
                Image::Ptx(_) => panic!("a CUBIN target gave PTX"),
            }
        }
        // A GPU newer than NVRTC knows gets PTX of the newest architecture it knows.
        let newest = archs.iter().copied().max().expect("an architecture");
        assert_eq!(
            Target::for_device(99, 9).expect("target"),
            Target::Ptx(newest)
        );
    }
}
