//! The device and the machinery every kernel call shares: adapter selection, buffers
//! and their transfers, the pipeline cache and one dispatch helper.

use brain_core::{BrainError, Result};
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use wgpu::util::DeviceExt;

const F32: u64 = std::mem::size_of::<f32>() as u64;

/// Usage of every tensor buffer: bound as storage, and the source or target of copies
/// (uploads, downloads, `copy`).
const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// A WGSL module: the concatenation of `parts` (shared helpers first, then the
/// family's own file), compiled once per device and cached under `label`.
#[derive(Debug)]
pub(crate) struct Shader {
    pub(crate) label: &'static str,
    pub(crate) parts: &'static [&'static str],
}

/// Storage bindings of a kernel: (binding number, read only). Binding 0 is always the
/// uniform parameter block; the buffers passed to [`Gpu::dispatch`] follow this order.
pub(crate) type Bindings = &'static [(u32, bool)];

/// Binding 1 read, binding 3 read-write: the layout of most one-input kernels.
pub(crate) const READ_RW: Bindings = &[(1, true), (3, false)];

/// One compute pipeline: a WGSL entry point of a [`Shader`], its storage bindings and
/// its pipeline-overridable constants. Kernel families declare these as constants in
/// their own `ops/` file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernel {
    pub(crate) shader: &'static Shader,
    pub(crate) entry: &'static str,
    pub(crate) bindings: Bindings,
    /// `override` constants of the entry point (names and values).
    pub(crate) constants: &'static [(&'static str, f64)],
}

impl Kernel {
    /// A kernel without pipeline constants.
    pub(crate) const fn new(
        shader: &'static Shader,
        entry: &'static str,
        bindings: Bindings,
    ) -> Self {
        Kernel {
            shader,
            entry,
            bindings,
            constants: &[],
        }
    }
    /// The same entry point specialised by `constants`.
    pub(crate) const fn with_constants(self, constants: &'static [(&'static str, f64)]) -> Self {
        Kernel { constants, ..self }
    }
    /// The pipeline cache key: shader, entry point and the constants' bits.
    fn key(&self) -> (&'static str, &'static str, Vec<(&'static str, u64)>) {
        let consts = self
            .constants
            .iter()
            .map(|&(n, v)| (n, v.to_bits()))
            .collect();
        (self.shader.label, self.entry, consts)
    }
}

/// The uniform parameter block of one dispatch: u32 and f32 words in the order of the
/// shader's `Params` struct.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<u32>);

impl Params {
    pub(crate) fn new() -> Self {
        Params(Vec::with_capacity(12))
    }
    /// A dimension; kernels index with u32, so larger values are refused, not wrapped.
    pub(crate) fn u(mut self, op: &'static str, v: usize) -> Result<Self> {
        let v = u32::try_from(v).map_err(|_| {
            BrainError::Unsupported(format!(
                "wgpu: {op}: dimension {v} exceeds the 32-bit indexing of the WGSL kernels"
            ))
        })?;
        self.0.push(v);
        Ok(self)
    }
    /// A scalar, rounded once to f32 as every kernel's scalars.
    pub(crate) fn f(mut self, v: f64) -> Self {
        self.0.push((v as f32).to_bits());
        self
    }
    /// `self` followed by the words of `more`.
    pub(crate) fn extend(mut self, more: Params) -> Self {
        self.0.extend(more.0);
        self
    }
    fn bytes(&self) -> Vec<u8> {
        // Uniform blocks are read in 16-byte rows: pad to whole rows.
        let words = self.0.len().div_ceil(4).max(1) * 4;
        let mut out = Vec::with_capacity(words * 4);
        for i in 0..words {
            out.extend_from_slice(&self.0.get(i).copied().unwrap_or(0).to_le_bytes());
        }
        out
    }
}

struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// Errors the driver reports outside any call (validation, out of memory, device
/// lost): kept here and returned by the next `sync` or `download` instead of the
/// panic wgpu's default handler would raise.
#[derive(Default)]
struct ErrorSlot(Mutex<Option<BrainError>>);

impl ErrorSlot {
    fn set(&self, e: BrainError) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Keep the first: later errors are usually its consequences.
        if slot.is_none() {
            *slot = Some(e);
        }
    }
    fn take(&self) -> Option<BrainError> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

fn from_wgpu_error(e: wgpu::Error) -> BrainError {
    match e {
        wgpu::Error::OutOfMemory { .. } => {
            BrainError::Backend("wgpu: the device ran out of memory".into())
        }
        other => BrainError::Backend(format!("wgpu: {other}")),
    }
}

/// Shader label, entry point and constants' bits.
type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u64)>);

/// A device with its queue, limits and compiled pipelines.
pub(crate) struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    /// What the adapter offers (the device enables only what the kernels use).
    adapter_features: wgpu::Features,
    /// Workgroups per dispatch dimension: the adapter's limit, lowered by tests.
    max_groups: u32,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Pipeline>>>,
    errors: Arc<ErrorSlot>,
}

/// Environment variable selecting an adapter by a substring of its name
/// (case-insensitive), e.g. `llvmpipe` to run on lavapipe beside a real GPU.
pub const ADAPTER_ENV: &str = "BRAIN_WGPU_ADAPTER";

impl Gpu {
    pub(crate) fn new() -> Result<Self> {
        // Vulkan only: pinned, so that wgpu never falls back to GL, whatever
        // WGPU_BACKEND says.
        if !wgpu::Instance::enabled_backend_features().contains(wgpu::Backends::VULKAN) {
            return Err(BrainError::Unsupported(
                "wgpu: the Vulkan backend is not available on this platform".into(),
            ));
        }
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::VULKAN;
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
        let wanted = std::env::var(ADAPTER_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .map(|s| s.to_lowercase());
        let adapter = pick_adapter(adapters, wanted.as_deref())?;
        let info = adapter.get_info();
        let adapter_features = adapter.features();
        // Ask for everything the adapter offers: larger bindings and dispatches than
        // WebGPU's defaults.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("brain-wgpu"),
            required_features: wgpu::Features::empty(),
            required_limits: limits,
            ..Default::default()
        }))
        .map_err(|e| {
            BrainError::Unsupported(format!(
                "wgpu: cannot open a device on {} ({}): {e}",
                info.name, info.driver
            ))
        })?;
        let errors = Arc::new(ErrorSlot::default());
        let slot = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e| slot.set(from_wgpu_error(e))));
        let slot = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                slot.set(BrainError::DeviceLost(format!("wgpu: {msg}")));
            }
        });
        let limits = device.limits();
        Ok(Gpu {
            max_groups: limits.max_compute_workgroups_per_dimension.max(1),
            limits,
            adapter_features,
            device,
            queue,
            info,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            errors,
        })
    }

    pub(crate) fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    pub(crate) fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    pub(crate) fn adapter_features(&self) -> wgpu::Features {
        self.adapter_features
    }

    // ------------------------------------------------------------ buffers

    /// A zero-filled buffer of `len` f32 (wgpu zero-initialises new buffers).
    pub(crate) fn alloc(&self, len: usize) -> Result<wgpu::Buffer> {
        self.create(len, None)
    }

    /// A buffer holding `data`, written through a mapping at creation (no queue
    /// ordering to reason about).
    pub(crate) fn upload(&self, data: &[f32]) -> Result<wgpu::Buffer> {
        self.create(data.len(), Some(data))
    }

    fn create(&self, len: usize, data: Option<&[f32]>) -> Result<wgpu::Buffer> {
        let bytes = len.checked_mul(F32 as usize);
        let oom = BrainError::OutOfMemory {
            bytes: bytes.unwrap_or(usize::MAX),
        };
        // Empty tensors still get a 4-byte buffer: wgpu cannot map or bind zero bytes.
        let size = bytes.ok_or(oom.clone())?.max(F32 as usize) as u64;
        if size > self.limits.max_buffer_size {
            return Err(oom);
        }
        let mapped = data.is_some_and(|d| !d.is_empty());
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: TENSOR_USAGE,
            mapped_at_creation: mapped,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(match e {
                wgpu::Error::OutOfMemory { .. } => oom,
                other => from_wgpu_error(other),
            });
        }
        if let (true, Some(data)) = (mapped, data) {
            let mut view = buf
                .get_mapped_range_mut(..)
                .map_err(|e| BrainError::Backend(format!("wgpu: mapping a new buffer: {e}")))?;
            view.copy_from_slice(bytemuck::cast_slice(data));
            drop(view);
            buf.unmap();
        }
        Ok(buf)
    }

    /// Overwrite the first `data.len()` elements of `dst`. Queued: it lands after
    /// everything submitted before and before everything submitted after.
    pub(crate) fn write(&self, dst: &wgpu::Buffer, data: &[f32]) {
        if !data.is_empty() {
            self.queue
                .write_buffer(dst, 0, bytemuck::cast_slice::<f32, u8>(data));
        }
    }

    /// Copy `dst.len()` elements of `src` to the host through a staging buffer.
    pub(crate) fn download(&self, src: &wgpu::Buffer, dst: &mut [f32]) -> Result<()> {
        if dst.is_empty() {
            return self.sync();
        }
        let size = dst.len() as u64 * F32;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.encoder();
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.sync()?;
        match rx.try_recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(BrainError::Backend(format!("wgpu: map_async: {e}"))),
            Err(_) => {
                return Err(BrainError::Backend(
                    "wgpu: the staging buffer was not mapped after the device went idle".into(),
                ))
            }
        }
        {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| BrainError::Backend(format!("wgpu: reading a mapping: {e}")))?;
            match bytemuck::try_cast_slice::<u8, f32>(&view) {
                Ok(v) => dst.copy_from_slice(v),
                // Mappings are 8-byte aligned in practice; copy bytewise if one is not.
                Err(_) => {
                    for (d, c) in dst.iter_mut().zip(view.chunks_exact(4)) {
                        *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    }
                }
            }
        }
        staging.unmap();
        Ok(())
    }

    /// Device-side copy of the first `len` elements.
    pub(crate) fn copy(&self, src: &wgpu::Buffer, dst: &wgpu::Buffer, len: usize) {
        if len == 0 {
            return;
        }
        let mut enc = self.encoder();
        enc.copy_buffer_to_buffer(src, 0, dst, 0, len as u64 * F32);
        self.queue.submit([enc.finish()]);
    }

    /// Wait until the queue is idle, then report any error the driver raised meanwhile.
    pub(crate) fn sync(&self) -> Result<()> {
        // Flush writes queued by `write` even when nothing else was submitted.
        self.queue.submit(std::iter::empty());
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| BrainError::Backend(format!("wgpu: waiting for the device: {e}")))?;
        match self.errors.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }

    // ------------------------------------------------------------ pipelines

    /// The pipeline of `kernel`, compiled on first use and cached for the device's life.
    fn pipeline(&self, kernel: Kernel) -> Result<Arc<Pipeline>> {
        let mut cache = self
            .pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = kernel.key();
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let module = self.module(kernel.shader)?;
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for &(binding, read_only) in kernel.bindings {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(kernel.entry),
                entries: &entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(kernel.entry),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: kernel.constants,
                    // Every kernel writes its workgroup memory before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(BrainError::Backend(format!(
                "wgpu: building the pipeline of {}::{}: {e}",
                kernel.shader.label, kernel.entry
            )));
        }
        let p = Arc::new(Pipeline { pipeline, layout });
        cache.insert(key, p.clone());
        Ok(p)
    }

    fn module(&self, shader: &'static Shader) -> Result<wgpu::ShaderModule> {
        let mut cache = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = cache.get(shader.label) {
            return Ok(m.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.label),
                source: wgpu::ShaderSource::Wgsl(shader.parts.concat().into()),
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(BrainError::Backend(format!(
                "wgpu: compiling {}: {e}",
                shader.label
            )));
        }
        cache.insert(shader.label, module.clone());
        Ok(module)
    }

    // ------------------------------------------------------------ dispatch

    pub(crate) fn set_max_workgroups_per_dimension(&mut self, max: u32) {
        self.max_groups = max.clamp(1, self.limits.max_compute_workgroups_per_dimension.max(1));
    }

    /// Split `groups` workgroups over x, y, z so that none exceeds the adapter's
    /// max_compute_workgroups_per_dimension; kernels rebuild the linear index.
    pub(crate) fn split(&self, op: &'static str, groups: u64) -> Result<[u32; 3]> {
        let max = u64::from(self.max_groups);
        let x = groups.min(max);
        let y = groups.div_ceil(x).min(max);
        let z = groups.div_ceil(x * y);
        if z > max {
            return Err(BrainError::Unsupported(format!(
                "wgpu: {op}: {groups} workgroups exceed the adapter's {max}³ dispatch"
            )));
        }
        Ok([x as u32, y as u32, z as u32])
    }

    /// Record and submit one dispatch of `kernel` over `groups` workgroups with the
    /// buffers in the order of `kernel.bindings`.
    pub(crate) fn dispatch(
        &self,
        op: &'static str,
        kernel: Kernel,
        params: &Params,
        buffers: &[&wgpu::Buffer],
        groups: u64,
    ) -> Result<()> {
        if groups == 0 {
            return Ok(());
        }
        let bindings = kernel.bindings;
        if bindings.len() != buffers.len() {
            return Err(BrainError::Backend(format!(
                "wgpu: {op}: {} buffers given to a kernel that binds {}",
                buffers.len(),
                bindings.len()
            )));
        }
        let max_binding = self.limits.max_storage_buffer_binding_size;
        if let Some(big) = buffers.iter().find(|b| b.size() > max_binding) {
            return Err(BrainError::Unsupported(format!(
                "wgpu: {op}: a {}-byte buffer exceeds the adapter's storage binding limit of \
                 {max_binding} bytes (split bindings are not implemented yet)",
                big.size()
            )));
        }
        let [x, y, z] = self.split(op, groups)?;
        let pipeline = self.pipeline(kernel)?;
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: &params.bytes(),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for (&(binding, _), buf) in bindings.iter().zip(buffers) {
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: buf.as_entire_binding(),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry),
            layout: &pipeline.layout,
            entries: &entries,
        });
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.entry),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, z);
        }
        self.queue.submit([enc.finish()]);
        Ok(())
    }
}

/// The adapter named by `wanted` (a lower-case substring), else the most capable kind:
/// discrete, integrated, virtual, then CPU (lavapipe).
fn pick_adapter(adapters: Vec<wgpu::Adapter>, wanted: Option<&str>) -> Result<wgpu::Adapter> {
    if adapters.is_empty() {
        return Err(BrainError::Unsupported(
            "wgpu: no Vulkan adapter (install a Vulkan driver; mesa-vulkan-drivers provides \
             lavapipe, a CPU one)"
                .into(),
        ));
    }
    let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
    let rank = |t: wgpu::DeviceType| match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let mut candidates: Vec<wgpu::Adapter> = match wanted {
        Some(w) => adapters
            .into_iter()
            .filter(|a| a.get_info().name.to_lowercase().contains(w))
            .collect(),
        None => adapters,
    };
    candidates.sort_by_key(|a| rank(a.get_info().device_type));
    candidates.into_iter().next().ok_or_else(|| {
        BrainError::Unsupported(format!(
            "wgpu: no Vulkan adapter matches {ADAPTER_ENV}={}; found: {}",
            wanted.unwrap_or_default(),
            names.join(", ")
        ))
    })
}
