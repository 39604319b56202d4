//! The f16-storage backend: [`WgpuF16Backend`], on a device with `SHADER_F16`.
//!
//! Tensors are stored as f16, two per 32-bit word (first element in the low half).
//! Kernels compute in f32 and round each output once to f16, to nearest with ties to
//! even on every adapter (`f16_bits` in `shaders/half_round.wgsl`: WGSL lets an
//! f32→f16 conversion of a value between two f16 return either of them):
//!
//! - fill, add, scale, axpy and copy run natively on the f16 words
//!   (`shaders/half.wgsl`: loads widened to f32, one rounding per store);
//! - the activations (forward and backward) and bias_add run natively too, in f16
//!   variants generated from the f32 shaders ([`f16_variant`]: `array<f16>` bindings,
//!   each read widened, each store rounded once);
//! - every other kernel widens its f16 inputs to f32 device temporaries (exact),
//!   runs the f32 backend's kernel on the same device, and narrows its outputs back
//!   (rounded once). Outputs the kernel accumulates into (parameter gradients, loss
//!   input gradients) and outputs it updates in place are widened first, so the
//!   accumulation happens in f32 and is rounded once. The numerics are those of a
//!   native f16-storage kernel; the cost is the extra passes and f32 temporaries.
//!
//! Nothing is read back to the host inside a kernel call; the temporaries come from
//! the device's buffer pool.

use crate::gpu::{Gpu, Kernel, Params, Part, Shader};
use crate::{WgpuBackend, WgpuBuffer, WG};
use brain_core::half::f16;
use brain_core::{
    check, Activation, AdamW, AdamWTensor, Backend, ContrastiveLoss, Dropout, Gemm, GroupNormShape,
    HsicEstimator, ImageShape, Result, RowReduce, SchedulerStep, SobelLossForm, UpsampleMode,
    UpsampleShape,
};
use std::sync::OnceLock;

static SHADER: Shader = Shader {
    label: "half.wgsl",
    parts: &[
        "enable f16;\n",
        include_str!("shaders/common.wgsl"),
        include_str!("shaders/half_round.wgsl"),
        include_str!("shaders/half.wgsl"),
    ],
};
const WIDEN: Kernel = Kernel::new(&SHADER, "widen", &[(1, true), (5, false)]);
const NARROW: Kernel = Kernel::new(&SHADER, "narrow", &[(4, true), (3, false)]);
const FILL: Kernel = Kernel::new(&SHADER, "fill", &[(3, false)]);
const ADD: Kernel = Kernel::new(&SHADER, "add", &[(1, true), (2, true), (3, false)]);
const SCALE: Kernel = Kernel::new(&SHADER, "scale", &[(3, false)]);
const AXPY: Kernel = Kernel::new(&SHADER, "axpy", &[(1, true), (3, false)]);

/// The f16 variant of an f32 one-element-per-invocation shader: its storage arrays
/// `names` become `array<f16>`, each read of one is widened to f32 and each store
/// (`name[..] = expr;`) rounds `expr` once (`round16`). Generated once per device.
fn f16_variant(src: &str, names: &[&str]) -> String {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(src.len() + 1024);
    for line in src.lines() {
        if line.contains("var<storage") && names.iter().any(|n| line.contains(&format!(" {n}: "))) {
            out.push_str(&line.replace("array<f32>", "array<f16>"));
            out.push('\n');
            continue;
        }
        let mut rest = line;
        let mut done = String::new();
        // The earliest access `name[` (at an identifier boundary) in `rest`.
        let first = |rest: &str| {
            names
                .iter()
                .filter_map(|name| {
                    let pat = format!("{name}[");
                    rest.match_indices(&pat)
                        .map(|(at, _)| at)
                        .find(|&at| rest[..at].chars().next_back().is_none_or(|c| !is_ident(c)))
                        .map(|at| (at, name.len()))
                })
                .min()
        };
        while let Some((at, len)) = first(rest) {
            // The matching bracket.
            let open = at + len;
            let mut depth = 0;
            let mut close = None;
            for (k, c) in rest[open..].char_indices() {
                match c {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            close = Some(open + k);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(close) = close else { break };
            let access = &rest[at..=close];
            let after = rest[close + 1..].trim_start();
            done.push_str(&rest[..at]);
            if after.starts_with('=') && !after.starts_with("==") {
                // A store: round the right-hand side (with its reads widened).
                let rhs_end = after.find(';').unwrap_or(after.len());
                let rhs = f16_variant(&after[1..rhs_end], names);
                done.push_str(&format!("{access} = round16({});", rhs.trim()));
                rest = after.get(rhs_end + 1..).unwrap_or("");
            } else {
                done.push_str(&format!("f32({access})"));
                rest = &rest[close + 1..];
            }
        }
        done.push_str(rest);
        out.push_str(&done);
        out.push('\n');
    }
    out
}

/// A generated f16 shader (leaked: one per process, like the static ones).
fn generated(label: &'static str, family: &str, names: &[&str]) -> Shader {
    let body: &'static str = Box::leak(f16_variant(family, names).into_boxed_str());
    let parts: Vec<&'static str> = vec![
        "enable f16;\n",
        include_str!("shaders/common.wgsl"),
        include_str!("shaders/half_round.wgsl"),
        body,
    ];
    Shader {
        label,
        parts: Box::leak(parts.into_boxed_slice()),
    }
}

static ACTIVATION: OnceLock<Shader> = OnceLock::new();
static BIAS: OnceLock<Shader> = OnceLock::new();

fn activation_shader() -> &'static Shader {
    ACTIVATION.get_or_init(|| {
        generated(
            "half/activation.wgsl",
            include_str!("shaders/activation.wgsl"),
            &["x", "dy", "out"],
        )
    })
}

fn bias_shader() -> &'static Shader {
    BIAS.get_or_init(|| {
        generated(
            "half/bias.wgsl",
            include_str!("shaders/bias.wgsl"),
            &["src", "dst"],
        )
    })
}

/// A device buffer of `len` f16, packed two per 32-bit word. Dropping it returns its
/// memory to the device's pool.
#[derive(Debug)]
pub struct WgpuF16Buffer {
    /// The words (`ceil(len/2)` of them); the upper half of the last word of an odd
    /// tensor is padding.
    words: WgpuBuffer,
    len: usize,
}

impl WgpuF16Buffer {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The underlying wgpu buffer (f16 pairs; at least 4 bytes, possibly larger than
    /// `2·len`).
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.words.buf
    }
}

/// The wgpu backend with f16 storage: available where the adapter offers
/// `SHADER_F16`, which its device enables.
pub struct WgpuF16Backend {
    /// The f32 backend on the same device, whose kernels the converted calls run.
    f32: WgpuBackend,
}

impl std::fmt::Debug for WgpuF16Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgpuF16Backend")
            .field("adapter", &self.f32.gpu.info().name)
            .finish()
    }
}

fn words(len: usize) -> usize {
    len.div_ceil(2)
}

/// Two f16 as one word (first element in the low half, as WGSL's `vec2<f16>` lays out).
fn pack(lo: f16, hi: f16) -> f32 {
    f32::from_bits(u32::from(lo.to_bits()) | (u32::from(hi.to_bits()) << 16))
}

fn pack_all(data: &[f16]) -> Vec<f32> {
    data.chunks(2)
        .map(|c| pack(c[0], c.get(1).copied().unwrap_or(f16::ZERO)))
        .collect()
}

impl WgpuF16Backend {
    /// Open the adapter [`WgpuBackend::new`] would, with `SHADER_F16` enabled.
    ///
    /// # Errors
    /// [`BrainError::Unsupported`](brain_core::BrainError::Unsupported) when there is
    /// no Vulkan adapter, or it does not offer `SHADER_F16`.
    pub fn new() -> Result<Self> {
        let gpu = Gpu::with_features(wgpu::Features::SHADER_F16)?;
        Ok(WgpuF16Backend {
            f32: WgpuBackend { gpu },
        })
    }

    /// The adapter's description (name, driver, device type).
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        self.f32.gpu.info()
    }

    /// The f32 backend on the same device (buffers of one are not buffers of the other).
    pub fn f32_backend(&self) -> &WgpuBackend {
        &self.f32
    }

    /// As [`WgpuBackend::limit_storage_binding_size`], for the f16 kernels and the f32
    /// kernels the others run through.
    #[doc(hidden)]
    pub fn limit_storage_binding_size(&mut self, bytes: u64) {
        self.f32.limit_storage_binding_size(bytes);
    }

    fn gpu(&self) -> &Gpu {
        &self.f32.gpu
    }

    /// Dispatch a one-word-per-invocation kernel over `n` words, chunked past the
    /// binding limit: `parts` gives each buffer's words per word of the f16 side (1 for
    /// f16 pairs and raw words, 2 for f32 pairs).
    fn per_word(
        &self,
        op: &'static str,
        kernel: Kernel,
        params: Params,
        parts: &[Part<'_>],
        n: usize,
    ) -> Result<()> {
        self.gpu().dispatch_rows(op, kernel, parts, n, |_, len| {
            let p = Params::new().u(op, len)?.extend(params.clone());
            Ok((p, (len as u64).div_ceil(WG)))
        })
    }

    /// Dispatch a one-element-per-invocation kernel (an [`f16_variant`]) over `len`
    /// f16 elements, chunked by whole words past the binding limit (every `parts` entry
    /// is an f16 tensor indexed by the element index, or bound whole). `params(first,
    /// n)` gives the Params words after `n` for the chunk starting at element `first`.
    fn per_elem(
        &self,
        op: &'static str,
        kernel: Kernel,
        parts: &[Part<'_>],
        len: usize,
        params: impl Fn(usize, usize) -> Result<Params>,
    ) -> Result<()> {
        self.gpu()
            .dispatch_rows(op, kernel, parts, words(len), |first, n| {
                let first = 2 * first;
                let n = (2 * n).min(len - first);
                let p = Params::new().u(op, n)?.extend(params(first, n)?);
                Ok((p, (n as u64).div_ceil(WG)))
            })
    }

    /// An f32 device temporary holding `x` widened (exact).
    fn wide(&self, x: &WgpuF16Buffer) -> Result<WgpuBuffer> {
        let n = words(x.len);
        let mut t = self.f32.alloc(2 * n)?;
        t.len = x.len;
        self.per_word(
            "f16 widen",
            WIDEN,
            Params::new(),
            &[Part::Rows(&x.words.buf, 1), Part::Rows(&t.buf, 2)],
            n,
        )?;
        Ok(t)
    }

    fn wide_opt(&self, x: Option<&WgpuF16Buffer>) -> Result<Option<WgpuBuffer>> {
        x.map(|x| self.wide(x)).transpose()
    }

    fn wide_mut(&self, x: &Option<&mut WgpuF16Buffer>) -> Result<Option<WgpuBuffer>> {
        x.as_ref().map(|x| self.wide(x)).transpose()
    }

    /// Round the f32 temporary `t` (as long as `dst`, in a buffer of whole pairs) into `dst`.
    fn narrow(&self, t: &WgpuBuffer, dst: &mut WgpuF16Buffer) -> Result<()> {
        check::len("f16 narrow", "dst", dst.len, t.len)?;
        let n = words(dst.len);
        self.per_word(
            "f16 narrow",
            NARROW,
            Params::new(),
            &[Part::Rows(&t.buf, 2), Part::Rows(&dst.words.buf, 1)],
            n,
        )
    }

    fn narrow_opt(&self, t: Option<WgpuBuffer>, dst: Option<&mut WgpuF16Buffer>) -> Result<()> {
        match (t, dst) {
            (Some(t), Some(d)) => self.narrow(&t, d),
            _ => Ok(()),
        }
    }

    /// Run the f32 kernel `f` on the widened `out` (read and updated), then narrow it back.
    fn through(
        &self,
        out: &mut WgpuF16Buffer,
        f: impl FnOnce(&mut WgpuBuffer) -> Result<()>,
    ) -> Result<()> {
        let mut t = self.wide(out)?;
        f(&mut t)?;
        self.narrow(&t, out)
    }

    fn wrap(&self, buf: wgpu::Buffer, len: usize) -> WgpuF16Buffer {
        WgpuF16Buffer {
            words: self.f32.wrap(buf, words(len)),
            len,
        }
    }
}

impl Backend for WgpuF16Backend {
    type Elem = f16;
    type Buffer = WgpuF16Buffer;

    fn name(&self) -> String {
        format!("{} with f16 storage", self.f32.name())
    }

    // ---------------------------------------------------------------- memory (native)

    fn alloc(&self, len: usize) -> Result<WgpuF16Buffer> {
        Ok(self.wrap(self.gpu().alloc(words(len))?, len))
    }
    fn upload(&self, data: &[f16]) -> Result<WgpuF16Buffer> {
        Ok(self.wrap(self.gpu().upload(&pack_all(data))?, data.len()))
    }
    fn write(&self, dst: &mut WgpuF16Buffer, data: &[f16]) -> Result<()> {
        check::len("write", "data", data.len(), dst.len)?;
        self.gpu().write(&dst.words.buf, &pack_all(data));
        Ok(())
    }
    fn download(&self, src: &WgpuF16Buffer, dst: &mut [f16]) -> Result<()> {
        check::len("download", "dst", dst.len(), src.len)?;
        let mut w = vec![0f32; words(src.len)];
        self.gpu().download(&src.words.buf, &mut w)?;
        for (pair, word) in dst.chunks_mut(2).zip(&w) {
            let bits = word.to_bits();
            pair[0] = f16::from_bits(bits as u16);
            if let Some(hi) = pair.get_mut(1) {
                *hi = f16::from_bits((bits >> 16) as u16);
            }
        }
        Ok(())
    }
    fn len(&self, buf: &WgpuF16Buffer) -> usize {
        buf.len
    }
    fn sync(&self) -> Result<()> {
        self.f32.sync()
    }
    fn copy(&self, src: &WgpuF16Buffer, dst: &mut WgpuF16Buffer) -> Result<()> {
        check::len("copy", "dst", dst.len, src.len)?;
        // Whole words: an odd tensor's padding half is copied along, harmlessly.
        self.gpu()
            .copy(&src.words.buf, &dst.words.buf, words(src.len));
        Ok(())
    }
    fn fill(&self, dst: &mut WgpuF16Buffer, value: f64) -> Result<()> {
        let bits = u32::from(f16::from_f64(value).to_bits());
        let params = Params::new()
            .f(0.0)
            .u("fill", (bits | (bits << 16)) as usize)?;
        let n = words(dst.len);
        self.per_word("fill", FILL, params, &[Part::Rows(&dst.words.buf, 1)], n)
    }

    // ---------------------------------------------------------------- element-wise (native)

    fn add(&self, a: &WgpuF16Buffer, b: &WgpuF16Buffer, out: &mut WgpuF16Buffer) -> Result<()> {
        check::len("add", "b", b.len, a.len)?;
        check::len("add", "out", out.len, a.len)?;
        let parts = [
            Part::Rows(&a.words.buf, 1),
            Part::Rows(&b.words.buf, 1),
            Part::Rows(&out.words.buf, 1),
        ];
        self.per_word("add", ADD, Params::new(), &parts, words(a.len))
    }
    fn scale(&self, x: &mut WgpuF16Buffer, alpha: f64) -> Result<()> {
        let params = Params::new().f(alpha);
        let n = words(x.len);
        self.per_word("scale", SCALE, params, &[Part::Rows(&x.words.buf, 1)], n)
    }
    fn axpy(&self, alpha: f64, x: &WgpuF16Buffer, y: &mut WgpuF16Buffer) -> Result<()> {
        check::len("axpy", "y", y.len, x.len)?;
        let params = Params::new().f(alpha);
        let parts = [Part::Rows(&x.words.buf, 1), Part::Rows(&y.words.buf, 1)];
        self.per_word("axpy", AXPY, params, &parts, words(x.len))
    }

    // ---------------------------------------------------------------- through f32

    fn gemm(
        &self,
        g: &Gemm,
        a: &WgpuF16Buffer,
        b: &WgpuF16Buffer,
        c: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let (a, b) = (self.wide(a)?, self.wide(b)?);
        self.through(c, |c| self.f32.gemm(g, &a, &b, c))
    }
    fn linear_forward(
        &self,
        x: &WgpuF16Buffer,
        weight: &WgpuF16Buffer,
        bias: Option<&WgpuF16Buffer>,
        y: &mut WgpuF16Buffer,
        rows: usize,
        in_features: usize,
        out_features: usize,
    ) -> Result<()> {
        let (x, w, b) = (self.wide(x)?, self.wide(weight)?, self.wide_opt(bias)?);
        self.through(y, |y| {
            self.f32
                .linear_forward(&x, &w, b.as_ref(), y, rows, in_features, out_features)
        })
    }
    fn linear_backward(
        &self,
        dy: &WgpuF16Buffer,
        x: &WgpuF16Buffer,
        weight: &WgpuF16Buffer,
        dx: Option<&mut WgpuF16Buffer>,
        dweight: Option<&mut WgpuF16Buffer>,
        dbias: Option<&mut WgpuF16Buffer>,
        rows: usize,
        in_features: usize,
        out_features: usize,
    ) -> Result<()> {
        let (dy32, x32, w32) = (self.wide(dy)?, self.wide(x)?, self.wide(weight)?);
        let (mut dx32, mut dw32, mut db32) = (
            self.wide_mut(&dx)?,
            self.wide_mut(&dweight)?,
            self.wide_mut(&dbias)?,
        );
        self.f32.linear_backward(
            &dy32,
            &x32,
            &w32,
            dx32.as_mut(),
            dw32.as_mut(),
            db32.as_mut(),
            rows,
            in_features,
            out_features,
        )?;
        self.narrow_opt(dx32, dx)?;
        self.narrow_opt(dw32, dweight)?;
        self.narrow_opt(db32, dbias)
    }
    fn bias_add(
        &self,
        y: &mut WgpuF16Buffer,
        bias: &WgpuF16Buffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        const OP: &str = "bias_add";
        check::bias(OP, y.len, bias.len, outer, channels, inner)?;
        Params::new().u(OP, y.len)?; // element indices of the whole tensor fit 32 bits
        let k = Kernel::new(bias_shader(), "bias_add", &[(1, true), (3, false)]);
        let parts = [Part::Whole(&bias.words.buf), Part::Rows(&y.words.buf, 1)];
        self.per_elem(OP, k, &parts, y.len, |first, _| {
            Params::new()
                .u(OP, channels)?
                .u(OP, inner)?
                .u(OP, outer)?
                .u(OP, first)
        })
    }
    fn bias_backward(
        &self,
        dy: &WgpuF16Buffer,
        dbias: &mut WgpuF16Buffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        let dy = self.wide(dy)?;
        self.through(dbias, |db| {
            self.f32.bias_backward(&dy, db, outer, channels, inner)
        })
    }
    fn activation_forward(
        &self,
        act: Activation,
        x: &WgpuF16Buffer,
        y: &mut WgpuF16Buffer,
    ) -> Result<()> {
        const OP: &str = "activation_forward";
        check::len(OP, "y", y.len, x.len)?;
        let entry = match act {
            Activation::GeluErf => "gelu_erf_forward",
            Activation::GeluTanh => "gelu_tanh_forward",
            Activation::Silu => "silu_forward",
        };
        let k = Kernel::new(activation_shader(), entry, &[(1, true), (3, false)]);
        let parts = [Part::Rows(&x.words.buf, 1), Part::Rows(&y.words.buf, 1)];
        self.per_elem(OP, k, &parts, x.len, |_, _| Ok(Params::new()))
    }
    fn activation_backward(
        &self,
        act: Activation,
        x: &WgpuF16Buffer,
        dy: &WgpuF16Buffer,
        dx: &mut WgpuF16Buffer,
    ) -> Result<()> {
        const OP: &str = "activation_backward";
        check::len(OP, "dy", dy.len, x.len)?;
        check::len(OP, "dx", dx.len, x.len)?;
        let entry = match act {
            Activation::GeluErf => "gelu_erf_backward",
            Activation::GeluTanh => "gelu_tanh_backward",
            Activation::Silu => "silu_backward",
        };
        let k = Kernel::new(
            activation_shader(),
            entry,
            &[(1, true), (2, true), (3, false)],
        );
        let parts = [
            Part::Rows(&x.words.buf, 1),
            Part::Rows(&dy.words.buf, 1),
            Part::Rows(&dx.words.buf, 1),
        ];
        self.per_elem(OP, k, &parts, x.len, |_, _| Ok(Params::new()))
    }
    fn layernorm_forward(
        &self,
        x: &WgpuF16Buffer,
        gamma: &WgpuF16Buffer,
        beta: &WgpuF16Buffer,
        y: &mut WgpuF16Buffer,
        mean: &mut WgpuF16Buffer,
        rstd: &mut WgpuF16Buffer,
        rows: usize,
        cols: usize,
        eps: f64,
    ) -> Result<()> {
        let (x32, g32, b32) = (self.wide(x)?, self.wide(gamma)?, self.wide(beta)?);
        let (mut y32, mut m32, mut r32) = (self.wide(y)?, self.wide(mean)?, self.wide(rstd)?);
        self.f32.layernorm_forward(
            &x32, &g32, &b32, &mut y32, &mut m32, &mut r32, rows, cols, eps,
        )?;
        self.narrow(&y32, y)?;
        self.narrow(&m32, mean)?;
        self.narrow(&r32, rstd)
    }
    fn layernorm_backward(
        &self,
        dy: &WgpuF16Buffer,
        x: &WgpuF16Buffer,
        gamma: &WgpuF16Buffer,
        mean: &WgpuF16Buffer,
        rstd: &WgpuF16Buffer,
        dx: &mut WgpuF16Buffer,
        dgamma: &mut WgpuF16Buffer,
        dbeta: &mut WgpuF16Buffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let (dy32, x32, g32) = (self.wide(dy)?, self.wide(x)?, self.wide(gamma)?);
        let (m32, r32) = (self.wide(mean)?, self.wide(rstd)?);
        let (mut dx32, mut dg32, mut db32) =
            (self.wide(dx)?, self.wide(dgamma)?, self.wide(dbeta)?);
        self.f32.layernorm_backward(
            &dy32, &x32, &g32, &m32, &r32, &mut dx32, &mut dg32, &mut db32, rows, cols,
        )?;
        self.narrow(&dx32, dx)?;
        self.narrow(&dg32, dgamma)?;
        self.narrow(&db32, dbeta)
    }
    fn groupnorm_forward(
        &self,
        x: &WgpuF16Buffer,
        gamma: &WgpuF16Buffer,
        beta: &WgpuF16Buffer,
        y: &mut WgpuF16Buffer,
        mean: &mut WgpuF16Buffer,
        rstd: &mut WgpuF16Buffer,
        shape: &GroupNormShape,
        eps: f64,
    ) -> Result<()> {
        let (x32, g32, b32) = (self.wide(x)?, self.wide(gamma)?, self.wide(beta)?);
        let (mut y32, mut m32, mut r32) = (self.wide(y)?, self.wide(mean)?, self.wide(rstd)?);
        self.f32
            .groupnorm_forward(&x32, &g32, &b32, &mut y32, &mut m32, &mut r32, shape, eps)?;
        self.narrow(&y32, y)?;
        self.narrow(&m32, mean)?;
        self.narrow(&r32, rstd)
    }
    fn groupnorm_backward(
        &self,
        dy: &WgpuF16Buffer,
        x: &WgpuF16Buffer,
        gamma: &WgpuF16Buffer,
        mean: &WgpuF16Buffer,
        rstd: &WgpuF16Buffer,
        dx: &mut WgpuF16Buffer,
        dgamma: &mut WgpuF16Buffer,
        dbeta: &mut WgpuF16Buffer,
        shape: &GroupNormShape,
    ) -> Result<()> {
        let (dy32, x32, g32) = (self.wide(dy)?, self.wide(x)?, self.wide(gamma)?);
        let (m32, r32) = (self.wide(mean)?, self.wide(rstd)?);
        let (mut dx32, mut dg32, mut db32) =
            (self.wide(dx)?, self.wide(dgamma)?, self.wide(dbeta)?);
        self.f32.groupnorm_backward(
            &dy32, &x32, &g32, &m32, &r32, &mut dx32, &mut dg32, &mut db32, shape,
        )?;
        self.narrow(&dx32, dx)?;
        self.narrow(&dg32, dgamma)?;
        self.narrow(&db32, dbeta)
    }
    fn dropout_forward(&self, d: &Dropout, x: &WgpuF16Buffer, y: &mut WgpuF16Buffer) -> Result<()> {
        let x = self.wide(x)?;
        self.through(y, |y| self.f32.dropout_forward(d, &x, y))
    }
    fn dropout_backward(
        &self,
        d: &Dropout,
        dy: &WgpuF16Buffer,
        dx: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let dy = self.wide(dy)?;
        self.through(dx, |dx| self.f32.dropout_backward(d, &dy, dx))
    }
    fn upsample_forward(
        &self,
        mode: UpsampleMode,
        shape: &UpsampleShape,
        x: &WgpuF16Buffer,
        y: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let x = self.wide(x)?;
        self.through(y, |y| self.f32.upsample_forward(mode, shape, &x, y))
    }
    fn upsample_backward(
        &self,
        mode: UpsampleMode,
        shape: &UpsampleShape,
        dy: &WgpuF16Buffer,
        dx: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let dy = self.wide(dy)?;
        self.through(dx, |dx| self.f32.upsample_backward(mode, shape, &dy, dx))
    }
    fn reduce_rows(
        &self,
        op: RowReduce,
        x: &WgpuF16Buffer,
        out: &mut WgpuF16Buffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let x = self.wide(x)?;
        self.through(out, |o| self.f32.reduce_rows(op, &x, o, rows, cols))
    }
    fn adamw_step(
        &self,
        cfg: &AdamW,
        tensors: &mut [AdamWTensor<'_, WgpuF16Backend>],
        grad_norm: Option<&mut WgpuF16Buffer>,
    ) -> Result<()> {
        let mut wide = Vec::with_capacity(tensors.len());
        for t in tensors.iter() {
            wide.push((
                self.wide(t.param)?,
                self.wide(t.grad)?,
                self.wide(t.exp_avg)?,
                self.wide(t.exp_avg_sq)?,
            ));
        }
        let mut norm32 = self.wide_mut(&grad_norm)?;
        {
            let mut ts: Vec<AdamWTensor<'_, WgpuBackend>> = wide
                .iter_mut()
                .map(|(p, g, m, v)| AdamWTensor {
                    param: p,
                    grad: &*g,
                    exp_avg: m,
                    exp_avg_sq: v,
                })
                .collect();
            self.f32.adamw_step(cfg, &mut ts, norm32.as_mut())?;
        }
        for (t, (p, _, m, v)) in tensors.iter_mut().zip(&wide) {
            self.narrow(p, t.param)?;
            self.narrow(m, t.exp_avg)?;
            self.narrow(v, t.exp_avg_sq)?;
        }
        self.narrow_opt(norm32, grad_norm)
    }
    fn fill_uniform(&self, out: &mut WgpuF16Buffer, seed: u64, offset: u64) -> Result<()> {
        self.through(out, |o| self.f32.fill_uniform(o, seed, offset))
    }
    fn fill_normal(
        &self,
        out: &mut WgpuF16Buffer,
        seed: u64,
        offset: u64,
        mean: f64,
        std: f64,
    ) -> Result<()> {
        self.through(out, |o| self.f32.fill_normal(o, seed, offset, mean, std))
    }
    fn philox_bits(&self, out: &mut WgpuF16Buffer, seed: u64, offset: u64) -> Result<()> {
        self.through(out, |o| self.f32.philox_bits(o, seed, offset))
    }
    fn mse_forward(
        &self,
        a: &WgpuF16Buffer,
        b: &WgpuF16Buffer,
        loss: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let (a, b) = (self.wide(a)?, self.wide(b)?);
        self.through(loss, |l| self.f32.mse_forward(&a, &b, l))
    }
    fn mse_backward(
        &self,
        a: &WgpuF16Buffer,
        b: &WgpuF16Buffer,
        scale: f64,
        da: Option<&mut WgpuF16Buffer>,
        db: Option<&mut WgpuF16Buffer>,
    ) -> Result<()> {
        let (a32, b32) = (self.wide(a)?, self.wide(b)?);
        let (mut da32, mut db32) = (self.wide_mut(&da)?, self.wide_mut(&db)?);
        self.f32
            .mse_backward(&a32, &b32, scale, da32.as_mut(), db32.as_mut())?;
        self.narrow_opt(da32, da)?;
        self.narrow_opt(db32, db)
    }
    fn cka_grams_forward(
        &self,
        k: &WgpuF16Buffer,
        l: &WgpuF16Buffer,
        n: usize,
        estimator: HsicEstimator,
        out: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let (k, l) = (self.wide(k)?, self.wide(l)?);
        self.through(out, |o| self.f32.cka_grams_forward(&k, &l, n, estimator, o))
    }
    fn cka_grams_backward(
        &self,
        k: &WgpuF16Buffer,
        l: &WgpuF16Buffer,
        n: usize,
        estimator: HsicEstimator,
        scale: f64,
        dk: Option<&mut WgpuF16Buffer>,
        dl: Option<&mut WgpuF16Buffer>,
    ) -> Result<()> {
        let (k32, l32) = (self.wide(k)?, self.wide(l)?);
        let (mut dk32, mut dl32) = (self.wide_mut(&dk)?, self.wide_mut(&dl)?);
        self.f32.cka_grams_backward(
            &k32,
            &l32,
            n,
            estimator,
            scale,
            dk32.as_mut(),
            dl32.as_mut(),
        )?;
        self.narrow_opt(dk32, dk)?;
        self.narrow_opt(dl32, dl)
    }
    fn sims_forward(
        &self,
        a: &WgpuF16Buffer,
        b: &WgpuF16Buffer,
        batch: usize,
        tokens: usize,
        dim: usize,
        loss: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let (a, b) = (self.wide(a)?, self.wide(b)?);
        self.through(loss, |l| {
            self.f32.sims_forward(&a, &b, batch, tokens, dim, l)
        })
    }
    fn sims_backward(
        &self,
        a: &WgpuF16Buffer,
        b: &WgpuF16Buffer,
        batch: usize,
        tokens: usize,
        dim: usize,
        scale: f64,
        da: Option<&mut WgpuF16Buffer>,
        db: Option<&mut WgpuF16Buffer>,
    ) -> Result<()> {
        let (a32, b32) = (self.wide(a)?, self.wide(b)?);
        let (mut da32, mut db32) = (self.wide_mut(&da)?, self.wide_mut(&db)?);
        self.f32.sims_backward(
            &a32,
            &b32,
            batch,
            tokens,
            dim,
            scale,
            da32.as_mut(),
            db32.as_mut(),
        )?;
        self.narrow_opt(da32, da)?;
        self.narrow_opt(db32, db)
    }
    fn l2_normalize_rows_forward(
        &self,
        x: &WgpuF16Buffer,
        y: &mut WgpuF16Buffer,
        norms: &mut WgpuF16Buffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let x32 = self.wide(x)?;
        let (mut y32, mut n32) = (self.wide(y)?, self.wide(norms)?);
        self.f32
            .l2_normalize_rows_forward(&x32, &mut y32, &mut n32, rows, cols)?;
        self.narrow(&y32, y)?;
        self.narrow(&n32, norms)
    }
    fn l2_normalize_rows_backward(
        &self,
        dy: &WgpuF16Buffer,
        x: &WgpuF16Buffer,
        norms: &WgpuF16Buffer,
        dx: &mut WgpuF16Buffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let (dy, x, norms) = (self.wide(dy)?, self.wide(x)?, self.wide(norms)?);
        self.through(dx, |dx| {
            self.f32
                .l2_normalize_rows_backward(&dy, &x, &norms, dx, rows, cols)
        })
    }
    fn contrastive_forward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &WgpuF16Buffer,
        logits_tt: Option<&WgpuF16Buffer>,
        n: usize,
        loss: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let (pt, tt) = (self.wide(logits_pt)?, self.wide_opt(logits_tt)?);
        self.through(loss, |l| {
            self.f32.contrastive_forward(kind, &pt, tt.as_ref(), n, l)
        })
    }
    fn contrastive_backward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &WgpuF16Buffer,
        logits_tt: Option<&WgpuF16Buffer>,
        n: usize,
        scale: f64,
        dlogits_pt: &mut WgpuF16Buffer,
        dlogits_tt: Option<&mut WgpuF16Buffer>,
    ) -> Result<()> {
        let (pt, tt) = (self.wide(logits_pt)?, self.wide_opt(logits_tt)?);
        let (mut dpt, mut dtt) = (self.wide(dlogits_pt)?, self.wide_mut(&dlogits_tt)?);
        self.f32
            .contrastive_backward(kind, &pt, tt.as_ref(), n, scale, &mut dpt, dtt.as_mut())?;
        self.narrow(&dpt, dlogits_pt)?;
        self.narrow_opt(dtt, dlogits_tt)
    }
    fn clip_logits_forward(
        &self,
        kind: ContrastiveLoss,
        g_pt: &WgpuF16Buffer,
        g_tt: Option<&WgpuF16Buffer>,
        p_sq: &WgpuF16Buffer,
        t_sq: &WgpuF16Buffer,
        n: usize,
        temperature: f64,
        logits_pt: &mut WgpuF16Buffer,
        logits_tt: Option<&mut WgpuF16Buffer>,
    ) -> Result<()> {
        let (gpt, gtt) = (self.wide(g_pt)?, self.wide_opt(g_tt)?);
        let (psq, tsq) = (self.wide(p_sq)?, self.wide(t_sq)?);
        let (mut lpt, mut ltt) = (self.wide(logits_pt)?, self.wide_mut(&logits_tt)?);
        self.f32.clip_logits_forward(
            kind,
            &gpt,
            gtt.as_ref(),
            &psq,
            &tsq,
            n,
            temperature,
            &mut lpt,
            ltt.as_mut(),
        )?;
        self.narrow(&lpt, logits_pt)?;
        self.narrow_opt(ltt, logits_tt)
    }
    fn clip_logits_backward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &WgpuF16Buffer,
        logits_tt: Option<&WgpuF16Buffer>,
        dlogits_pt: &WgpuF16Buffer,
        dlogits_tt: Option<&WgpuF16Buffer>,
        p_sq: &WgpuF16Buffer,
        t_sq: &WgpuF16Buffer,
        n: usize,
        temperature: f64,
        w_pt: &mut WgpuF16Buffer,
        d_p: Option<&mut WgpuF16Buffer>,
        w_tt: Option<&mut WgpuF16Buffer>,
    ) -> Result<()> {
        let (lpt, ltt) = (self.wide(logits_pt)?, self.wide_opt(logits_tt)?);
        let (dpt, dtt) = (self.wide(dlogits_pt)?, self.wide_opt(dlogits_tt)?);
        let (psq, tsq) = (self.wide(p_sq)?, self.wide(t_sq)?);
        let mut wpt = self.wide(w_pt)?;
        let (mut dp, mut wtt) = (self.wide_mut(&d_p)?, self.wide_mut(&w_tt)?);
        self.f32.clip_logits_backward(
            kind,
            &lpt,
            ltt.as_ref(),
            &dpt,
            dtt.as_ref(),
            &psq,
            &tsq,
            n,
            temperature,
            &mut wpt,
            dp.as_mut(),
            wtt.as_mut(),
        )?;
        self.narrow(&wpt, w_pt)?;
        self.narrow_opt(dp, d_p)?;
        self.narrow_opt(wtt, w_tt)
    }
    fn clip_grams_forward(
        &self,
        kind: ContrastiveLoss,
        preds: &WgpuF16Buffer,
        targets: &WgpuF16Buffer,
        n: usize,
        d: usize,
        p_sq: &mut WgpuF16Buffer,
        t_sq: &mut WgpuF16Buffer,
        g_pt: &mut WgpuF16Buffer,
        g_tt: Option<&mut WgpuF16Buffer>,
    ) -> Result<()> {
        let (p32, t32) = (self.wide(preds)?, self.wide(targets)?);
        let (mut psq, mut tsq) = (self.wide(p_sq)?, self.wide(t_sq)?);
        let (mut gpt, mut gtt) = (self.wide(g_pt)?, self.wide_mut(&g_tt)?);
        self.f32.clip_grams_forward(
            kind,
            &p32,
            &t32,
            n,
            d,
            &mut psq,
            &mut tsq,
            &mut gpt,
            gtt.as_mut(),
        )?;
        self.narrow(&psq, p_sq)?;
        self.narrow(&tsq, t_sq)?;
        self.narrow(&gpt, g_pt)?;
        self.narrow_opt(gtt, g_tt)
    }
    fn clip_inputs_backward(
        &self,
        kind: ContrastiveLoss,
        w_pt: &WgpuF16Buffer,
        d_p: &WgpuF16Buffer,
        w_tt: &WgpuF16Buffer,
        preds: &WgpuF16Buffer,
        targets: &WgpuF16Buffer,
        n: usize,
        d: usize,
        dpreds: Option<&mut WgpuF16Buffer>,
        dtargets: Option<&mut WgpuF16Buffer>,
    ) -> Result<()> {
        let (wpt, dp, wtt) = (self.wide(w_pt)?, self.wide(d_p)?, self.wide(w_tt)?);
        let (p32, t32) = (self.wide(preds)?, self.wide(targets)?);
        let (mut dp32, mut dt32) = (self.wide_mut(&dpreds)?, self.wide_mut(&dtargets)?);
        self.f32.clip_inputs_backward(
            kind,
            &wpt,
            &dp,
            &wtt,
            &p32,
            &t32,
            n,
            d,
            dp32.as_mut(),
            dt32.as_mut(),
        )?;
        self.narrow_opt(dp32, dpreds)?;
        self.narrow_opt(dt32, dtargets)
    }
    fn sobel_forward(
        &self,
        x: &WgpuF16Buffer,
        shape: &ImageShape,
        gx: &mut WgpuF16Buffer,
        gy: &mut WgpuF16Buffer,
        magnitude: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let x32 = self.wide(x)?;
        let (mut gx32, mut gy32, mut m32) = (self.wide(gx)?, self.wide(gy)?, self.wide(magnitude)?);
        self.f32
            .sobel_forward(&x32, shape, &mut gx32, &mut gy32, &mut m32)?;
        self.narrow(&gx32, gx)?;
        self.narrow(&gy32, gy)?;
        self.narrow(&m32, magnitude)
    }
    fn sobel_backward(
        &self,
        x: &WgpuF16Buffer,
        shape: &ImageShape,
        dgx: Option<&WgpuF16Buffer>,
        dgy: Option<&WgpuF16Buffer>,
        dmagnitude: Option<&WgpuF16Buffer>,
        dx: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let x = self.wide(x)?;
        let (dgx, dgy, dm) = (
            self.wide_opt(dgx)?,
            self.wide_opt(dgy)?,
            self.wide_opt(dmagnitude)?,
        );
        self.through(dx, |dx| {
            self.f32
                .sobel_backward(&x, shape, dgx.as_ref(), dgy.as_ref(), dm.as_ref(), dx)
        })
    }
    fn sobel_loss_forward(
        &self,
        pred: &WgpuF16Buffer,
        target: &WgpuF16Buffer,
        shape: &ImageShape,
        form: SobelLossForm,
        loss: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let (p, t) = (self.wide(pred)?, self.wide(target)?);
        self.through(loss, |l| {
            self.f32.sobel_loss_forward(&p, &t, shape, form, l)
        })
    }
    fn sobel_loss_backward(
        &self,
        pred: &WgpuF16Buffer,
        target: &WgpuF16Buffer,
        shape: &ImageShape,
        form: SobelLossForm,
        scale: f64,
        dpred: Option<&mut WgpuF16Buffer>,
        dtarget: Option<&mut WgpuF16Buffer>,
    ) -> Result<()> {
        let (p, t) = (self.wide(pred)?, self.wide(target)?);
        let (mut dp, mut dt) = (self.wide_mut(&dpred)?, self.wide_mut(&dtarget)?);
        self.f32
            .sobel_loss_backward(&p, &t, shape, form, scale, dp.as_mut(), dt.as_mut())?;
        self.narrow_opt(dp, dpred)?;
        self.narrow_opt(dt, dtarget)
    }
    fn scheduler_step(
        &self,
        step: &SchedulerStep,
        model_output: &WgpuF16Buffer,
        sample: &WgpuF16Buffer,
        noise: Option<&WgpuF16Buffer>,
        prev_sample: &mut WgpuF16Buffer,
        pred_x0: Option<&mut WgpuF16Buffer>,
    ) -> Result<()> {
        let (mo, s, nz) = (
            self.wide(model_output)?,
            self.wide(sample)?,
            self.wide_opt(noise)?,
        );
        let (mut prev, mut x0) = (self.wide(prev_sample)?, self.wide_mut(&pred_x0)?);
        self.f32
            .scheduler_step(step, &mo, &s, nz.as_ref(), &mut prev, x0.as_mut())?;
        self.narrow(&prev, prev_sample)?;
        self.narrow_opt(x0, pred_x0)
    }
    fn add_noise(
        &self,
        x0: &WgpuF16Buffer,
        noise: &WgpuF16Buffer,
        sqrt_alpha_prod: &[f64],
        sqrt_one_minus_alpha_prod: &[f64],
        out: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let (x0, nz) = (self.wide(x0)?, self.wide(noise)?);
        self.through(out, |o| {
            self.f32
                .add_noise(&x0, &nz, sqrt_alpha_prod, sqrt_one_minus_alpha_prod, o)
        })
    }
    fn guidance_combine(
        &self,
        uncond: &WgpuF16Buffer,
        cond: &WgpuF16Buffer,
        scale: f64,
        out: &mut WgpuF16Buffer,
    ) -> Result<()> {
        let (u, c) = (self.wide(uncond)?, self.wide(cond)?);
        self.through(out, |o| self.f32.guidance_combine(&u, &c, scale, o))
    }
}
