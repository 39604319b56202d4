//! The device and the machinery every kernel call shares: adapter selection, buffers
//! (pooled, see `pool.rs`) and their transfers, the pipeline cache, and dispatch,
//! whole or in chunks that bind buffer ranges (for tensors larger than one storage
//! binding).
//!
//! Dispatches, copies and zero fills are recorded into one command encoder (a
//! [`Batch`]) in call order and submitted together: every [`BATCH`] commands, and
//! before anything that must see them done or that the queue would order before them
//! (`write`, whose staged data lands before the next submission; `download`; `sync`).
//! Each dispatch's parameter block takes the next slot of a uniform arena bound with a
//! dynamic offset; the batch's slots are written with one `write_buffer` just before
//! its submission (after the previous batch's, which wgpu orders after that batch's
//! use of the arena).

use crate::pool::{self, Pool, PoolStats};
use brain_core::{BrainError, Result};
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{mpsc, Arc, Mutex, PoisonError, Weak};

const F32: u64 = std::mem::size_of::<f32>() as u64;

/// Transfers move at most this many bytes at a time (downloads through a staging
/// buffer of this size, writes between submissions), so that a tensor of gigabytes
/// never needs a second copy of itself in staging memory.
const TRANSFER_CHUNK: u64 = 64 << 20;

/// A staging buffer up to this size is kept for the next download.
const KEEP_STAGING: u64 = 4 << 20;

/// Dispatches (and copies, clears) recorded into one command encoder before it is
/// submitted; `write`, `download` and `sync` submit it earlier.
const BATCH: usize = 128;

/// Bytes of the uniform binding of every dispatch: the largest `Params` block a
/// kernel may use (64 words); each dispatch's slot of the arena is this, rounded up
/// to the uniform offset alignment.
const PARAMS_BYTES: u64 = 256;

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
#[derive(Debug, Default, Clone)]
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
    /// Bytes of one storage binding: the adapter's limit, lowered by tests.
    max_binding: u64,
    /// Free tensor buffers (shared with the `WgpuBuffer`s, which return theirs on drop).
    pool: Arc<Pool>,
    /// A staging buffer kept for the next download.
    staging: Mutex<Option<wgpu::Buffer>>,
    /// While [`Gpu::time`] runs: the query sets the dispatches write timestamps to.
    timing: Mutex<Option<Timing>>,
    /// Work recorded but not yet submitted, and the uniform arena it reads.
    batch: Mutex<Batch>,
    /// The uniform arena: one slot of `slot` bytes per dispatch of a batch, bound
    /// with a dynamic offset; written with one `write_buffer` when the batch is
    /// submitted (queued writes land before the submission, after earlier ones).
    arena: wgpu::Buffer,
    slot: u64,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Pipeline>>>,
    errors: Arc<ErrorSlot>,
}

/// Environment variable selecting an adapter by a substring of its name
/// (case-insensitive), e.g. `llvmpipe` to run on lavapipe beside a real GPU.
pub const ADAPTER_ENV: &str = "BRAIN_WGPU_ADAPTER";

impl Gpu {
    pub(crate) fn new() -> Result<Self> {
        Self::with_features(wgpu::Features::empty())
    }

    /// As [`Gpu::new`], enabling `extra` features on the device (e.g. `SHADER_F16` for
    /// the f16 backend); [`BrainError::Unsupported`] when the adapter lacks one.
    pub(crate) fn with_features(extra: wgpu::Features) -> Result<Self> {
        let wanted = std::env::var(ADAPTER_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .map(|s| s.to_lowercase());
        let adapter = pick_adapter(vulkan_adapters()?, wanted.as_deref())?;
        Self::on(adapter, extra)
    }

    /// As [`Gpu::new`], on the `index`-th Vulkan adapter in enumeration order (see
    /// `adapter_names`), whatever `$BRAIN_WGPU_ADAPTER` says.
    pub(crate) fn with_adapter_index(index: usize) -> Result<Self> {
        let adapters = vulkan_adapters()?;
        let n = adapters.len();
        let adapter = adapters.into_iter().nth(index).ok_or_else(|| {
            BrainError::Unsupported(format!(
                "wgpu: no Vulkan adapter {index} ({n} adapter(s) present)"
            ))
        })?;
        Self::on(adapter, wgpu::Features::empty())
    }

    fn on(adapter: wgpu::Adapter, extra: wgpu::Features) -> Result<Self> {
        let info = adapter.get_info();
        let adapter_features = adapter.features();
        // Ask for everything the adapter offers: larger bindings and dispatches than
        // WebGPU's defaults.
        let limits = adapter.limits();
        // Timestamps, where offered, for `WgpuBackend::time_on_device`.
        if !adapter_features.contains(extra) {
            return Err(BrainError::Unsupported(format!(
                "wgpu: the adapter {} ({}) does not offer {:?}",
                info.name,
                info.driver,
                extra - adapter_features
            )));
        }
        let required_features = (adapter_features & wgpu::Features::TIMESTAMP_QUERY) | extra;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("brain-wgpu"),
            required_features,
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
        let slot = PARAMS_BYTES
            .next_multiple_of(u64::from(limits.min_uniform_buffer_offset_alignment.max(4)));
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: slot * BATCH as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Gpu {
            batch: Mutex::new(Batch::default()),
            arena,
            slot,
            max_groups: limits.max_compute_workgroups_per_dimension.max(1),
            max_binding: limits.max_storage_buffer_binding_size & !(F32 - 1),
            pool: Arc::new(Pool::new(pool::DEFAULT_CAPACITY)),
            staging: Mutex::new(None),
            timing: Mutex::new(None),
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

    /// The pool dropped buffers return to.
    pub(crate) fn pool(&self) -> Weak<Pool> {
        Arc::downgrade(&self.pool)
    }

    pub(crate) fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    pub(crate) fn set_pool_capacity(&self, bytes: u64) {
        self.pool.set_capacity(bytes);
    }

    /// Bytes of a tensor of `len` f32: at least 4 (wgpu can neither bind nor map zero
    /// bytes), at most the adapter's max_buffer_size (beyond it: out of memory, as no
    /// single buffer can hold the tensor).
    fn tensor_bytes(&self, len: usize) -> Result<u64> {
        let bytes = len
            .checked_mul(F32 as usize)
            .ok_or(BrainError::OutOfMemory { bytes: usize::MAX })?;
        let size = (bytes as u64).max(F32);
        if size > self.limits.max_buffer_size {
            return Err(BrainError::OutOfMemory { bytes });
        }
        Ok(size)
    }

    /// The size class (the size of the buffers that serve) of a request of `bytes`.
    fn class(&self, bytes: u64) -> u64 {
        pool::class(bytes, self.max_binding, self.limits.max_buffer_size)
    }

    /// A zero-filled buffer of at least `len` f32: a pooled one cleared on the queue,
    /// else a new one (wgpu zero-initialises new buffers).
    pub(crate) fn alloc(&self, len: usize) -> Result<wgpu::Buffer> {
        let bytes = self.tensor_bytes(len)?;
        let class = self.class(bytes);
        match self.pool.take(class) {
            Some(buf) => {
                // The zero fill is the new owner's first use, recorded after the previous
                // owner's last (see pool.rs); a `write` staged after this call submits
                // the batch first, so it lands after the fill.
                self.record(|enc| enc.clear_buffer(&buf, 0, Some(bytes)));
                Ok(buf)
            }
            None => self.create(class, false),
        }
    }

    /// A buffer of at least `data.len()` f32 starting with `data`.
    pub(crate) fn upload(&self, data: &[f32]) -> Result<wgpu::Buffer> {
        let bytes = self.tensor_bytes(data.len())?;
        let class = self.class(bytes);
        if let Some(buf) = self.pool.take(class) {
            // Queued after the previous owner's work (see pool.rs).
            self.write(&buf, data);
            return Ok(buf);
        }
        // Small tensors are written through a mapping at creation, large ones by
        // queued chunks (a mapping of a device-local buffer stages all of it at once).
        let mapped = !data.is_empty() && bytes <= TRANSFER_CHUNK;
        let buf = self.create(class, mapped)?;
        if !mapped {
            self.write(&buf, data);
            return Ok(buf);
        }
        {
            // The class may be larger than the data: map just the data's bytes.
            let src: &[u8] = bytemuck::cast_slice(data);
            let mut view = buf
                .get_mapped_range_mut(..src.len() as u64)
                .map_err(|e| BrainError::Backend(format!("wgpu: mapping a new buffer: {e}")))?;
            view.copy_from_slice(src);
        }
        buf.unmap();
        Ok(buf)
    }

    /// A new tensor buffer of `size` bytes from the driver. When the driver is out of
    /// memory, the pool's free buffers are dropped and the request is tried again.
    fn create(&self, size: u64, mapped: bool) -> Result<wgpu::Buffer> {
        let attempt = || {
            let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size,
                usage: TENSOR_USAGE,
                mapped_at_creation: mapped,
            });
            match pollster::block_on(scope.pop()) {
                None => Ok(buf),
                Some(wgpu::Error::OutOfMemory { .. }) => Err(BrainError::OutOfMemory {
                    bytes: usize::try_from(size).unwrap_or(usize::MAX),
                }),
                Some(other) => Err(from_wgpu_error(other)),
            }
        };
        let buf = match attempt() {
            Err(BrainError::OutOfMemory { .. }) if self.pool.clear() => {
                // Freed buffers go back to the driver once idle: wait for that.
                self.sync()?;
                attempt()?
            }
            other => other?,
        };
        self.pool.count_driver_allocation();
        Ok(buf)
    }

    /// Overwrite the first `data.len()` elements of `dst`. Queued: it lands after
    /// everything recorded before and before everything recorded after. Large
    /// writes go in chunks, each flushed before the next is staged.
    pub(crate) fn write(&self, dst: &wgpu::Buffer, data: &[f32]) {
        // Queued writes land before the next submission: the work recorded so far
        // (which may use `dst`) goes first.
        self.flush();
        let per = (TRANSFER_CHUNK / F32) as usize;
        for (i, piece) in data.chunks(per).enumerate() {
            if i > 0 {
                self.queue.submit(std::iter::empty());
            }
            let offset = i as u64 * TRANSFER_CHUNK;
            self.queue
                .write_buffer(dst, offset, bytemuck::cast_slice::<f32, u8>(piece));
        }
    }

    /// A staging buffer of at least `size` bytes for downloads: the kept one when it is
    /// large enough.
    fn staging(&self, size: u64) -> Result<wgpu::Buffer> {
        let mut kept = self.staging.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(buf) = kept.take().filter(|b| b.size() >= size) {
            return Ok(buf);
        }
        drop(kept);
        let size = size
            .next_power_of_two()
            .max(64 << 10)
            .min(TRANSFER_CHUNK.max(size));
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        match pollster::block_on(scope.pop()) {
            None => Ok(buf),
            Some(wgpu::Error::OutOfMemory { .. }) => Err(BrainError::OutOfMemory {
                bytes: usize::try_from(size).unwrap_or(usize::MAX),
            }),
            Some(other) => Err(from_wgpu_error(other)),
        }
    }

    /// Copy the first `dst.len()` elements of `src` to the host, through a staging
    /// buffer, at most TRANSFER_CHUNK bytes at a time.
    pub(crate) fn download(&self, src: &wgpu::Buffer, dst: &mut [f32]) -> Result<()> {
        if dst.is_empty() {
            return self.sync();
        }
        let total = dst.len() as u64 * F32;
        if total > src.size() {
            return Err(BrainError::Backend(format!(
                "wgpu: download of {total} bytes from a {}-byte buffer",
                src.size()
            )));
        }
        let staging = self.staging(total.min(TRANSFER_CHUNK))?;
        let per = (TRANSFER_CHUNK / F32) as usize;
        for (i, piece) in dst.chunks_mut(per).enumerate() {
            self.download_piece(src, i as u64 * TRANSFER_CHUNK, &staging, piece)?;
        }
        if staging.size() <= KEEP_STAGING {
            *self.staging.lock().unwrap_or_else(PoisonError::into_inner) = Some(staging);
        }
        Ok(())
    }

    fn download_piece(
        &self,
        src: &wgpu::Buffer,
        offset: u64,
        staging: &wgpu::Buffer,
        dst: &mut [f32],
    ) -> Result<()> {
        let size = dst.len() as u64 * F32;
        self.record(|enc| enc.copy_buffer_to_buffer(src, offset, staging, 0, size));
        self.flush();
        let (tx, rx) = mpsc::channel();
        let slice = staging.slice(..size);
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let synced = self.sync();
        let mapped = match rx.try_recv() {
            Ok(Ok(())) => true,
            Ok(Err(e)) => return Err(BrainError::Backend(format!("wgpu: map_async: {e}"))),
            Err(_) => false,
        };
        synced?;
        if !mapped {
            return Err(BrainError::Backend(
                "wgpu: the staging buffer was not mapped after the device went idle".into(),
            ));
        }
        {
            let view = slice
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

    /// Device-side copy of the first `len` elements (copies are not bindings: no size
    /// limit beyond the buffers').
    pub(crate) fn copy(&self, src: &wgpu::Buffer, dst: &wgpu::Buffer, len: usize) {
        if len == 0 {
            return;
        }
        self.record(|enc| enc.copy_buffer_to_buffer(src, 0, dst, 0, len as u64 * F32));
    }

    /// Wait until the queue is idle, then report any error the driver raised meanwhile.
    pub(crate) fn sync(&self) -> Result<()> {
        // Submit the batch, and writes queued by `write` even when nothing else was.
        self.flush();
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

    /// Record a command (copy, clear) into the batch, after everything recorded before.
    fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let mut batch = self.batch.lock().unwrap_or_else(PoisonError::into_inner);
        let enc = batch.enc.get_or_insert_with(|| self.encoder());
        f(enc);
        batch.commands += 1;
        if batch.commands >= BATCH {
            self.submit(&mut batch);
        }
    }

    /// Submit the recorded batch, if any.
    pub(crate) fn flush(&self) {
        let mut batch = self.batch.lock().unwrap_or_else(PoisonError::into_inner);
        self.submit(&mut batch);
    }

    /// Write the batch's parameter blocks into the arena, then submit its commands:
    /// the write lands before them, after every earlier submission.
    fn submit(&self, batch: &mut Batch) {
        let Some(enc) = batch.enc.take() else {
            return;
        };
        if !batch.params.is_empty() {
            self.queue.write_buffer(&self.arena, 0, &batch.params);
            batch.params.clear();
        }
        batch.commands = 0;
        self.queue.submit([enc.finish()]);
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
                has_dynamic_offset: true,
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

    /// Byte offsets of storage bindings are multiples of this (a power of two).
    pub(crate) fn binding_alignment(&self) -> u64 {
        u64::from(self.limits.min_storage_buffer_offset_alignment).max(F32)
    }

    /// Bind at most `bytes` per storage binding (a multiple of the offset alignment, at
    /// least one), so that tests reach the chunked paths with small tensors. The pool
    /// is emptied: its size classes depend on the limit.
    pub(crate) fn set_max_binding(&mut self, bytes: u64) {
        let align = self.binding_alignment();
        let adapter = self.limits.max_storage_buffer_binding_size & !(F32 - 1);
        self.max_binding = (bytes / align * align).clamp(align, adapter.max(align));
        self.pool.clear();
    }

    /// Split `groups` workgroups over x, y, z so that none exceeds the adapter's
    /// max_compute_workgroups_per_dimension; kernels rebuild the linear index.
    pub(crate) fn split(&self, op: &'static str, groups: u64) -> Result<[u32; 3]> {
        if groups == 0 {
            return Ok([0, 0, 0]);
        }
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

    fn too_big(&self, op: &'static str, bytes: u64) -> BrainError {
        BrainError::Unsupported(format!(
            "wgpu: {op}: a {bytes}-byte buffer exceeds the adapter's storage binding limit \
             of {} bytes, and this kernel does not split it",
            self.max_binding
        ))
    }

    /// Record one dispatch of `kernel` over `groups` workgroups into the batch with the
    /// buffers, bound whole, in the order of `kernel.bindings`. A buffer larger than
    /// one binding is refused ([`BrainError::Unsupported`]): kernels that handle such
    /// tensors use [`Gpu::dispatch_rows`] or [`Gpu::dispatch_slices`].
    #[allow(dead_code)] // the entry point of the kernel families written elsewhere
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
        if let Some(big) = buffers.iter().find(|b| b.size() > self.max_binding) {
            return Err(self.too_big(op, big.size()));
        }
        let slices: Vec<Slice<'_>> = buffers.iter().map(|b| Slice::whole(b)).collect();
        self.dispatch_slices(op, kernel, params, &slices, groups)
    }

    /// The binding that covers elements `[lo, hi)` of `buf`, with the index of the
    /// element it starts at: the whole buffer when that fits one binding, else the
    /// range from the aligned offset at or below `lo`. `None` when the range does not
    /// fit one binding. An empty range binds the first element.
    pub(crate) fn window<'a>(
        &self,
        buf: &'a wgpu::Buffer,
        lo: u64,
        hi: u64,
    ) -> Option<(Slice<'a>, u64)> {
        if buf.size() <= self.max_binding {
            return Some((Slice::whole(buf), 0));
        }
        if hi <= lo {
            let first = Slice {
                buf,
                offset: 0,
                size: F32,
            };
            return Some((first, 0));
        }
        let align = self.binding_alignment();
        let start = lo * F32 / align * align;
        let size = hi.checked_mul(F32)? - start;
        (size <= self.max_binding).then_some((
            Slice {
                buf,
                offset: start,
                size,
            },
            start / F32,
        ))
    }

    /// Dispatch `kernel` over `rows` rows in chunks of rows whose bindings each fit
    /// the binding limit: every [`Part::Rows`] buffer is bound from the chunk's first
    /// row (so the kernel indexes rows from 0 in every chunk), every [`Part::Blocks`]
    /// buffer from the chunk's first block, every [`Part::Whole`] buffer whole.
    /// `chunk(first_row, rows)` gives each chunk's parameters and workgroup count.
    /// Chunks hold a multiple of `alignment / 4` rows (fewer when the row widths
    /// allow), which keeps every range's offset aligned. One chunk (one dispatch, as
    /// [`Gpu::dispatch`]) when everything fits.
    ///
    /// Element-wise kernels are the case of one-element rows
    /// ([`crate::WgpuBackend::elementwise_chunked`]).
    pub(crate) fn dispatch_rows(
        &self,
        op: &'static str,
        kernel: Kernel,
        parts: &[Part<'_>],
        rows: usize,
        chunk: impl FnMut(usize, usize) -> Result<(Params, u64)>,
    ) -> Result<()> {
        self.dispatch_rows_by(op, kernel, parts, rows, 1, chunk)
    }

    /// [`Gpu::dispatch_rows`] with every chunk but the last holding a multiple of
    /// `multiple` rows, for kernels whose workgroups cover fixed runs of rows (a
    /// reduction's `CHUNK` elements): each chunk then starts at a workgroup boundary
    /// of the unchunked dispatch, and computes exactly what that dispatch would.
    pub(crate) fn dispatch_rows_by(
        &self,
        op: &'static str,
        kernel: Kernel,
        parts: &[Part<'_>],
        rows: usize,
        multiple: usize,
        mut chunk: impl FnMut(usize, usize) -> Result<(Params, u64)>,
    ) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        // Chunks start at multiples of `step` rows: whatever the row widths, every
        // range then starts at a multiple of the alignment (align/4 rows always do;
        // fewer do when every width has the factors of two that make up the rest).
        let q = (self.binding_alignment() / F32) as usize;
        let mut step = multiple.max(1);
        for part in parts {
            let (per, width) = match *part {
                Part::Whole(_) => continue,
                Part::Rows(_, width) => (1, width),
                Part::Blocks(_, per, width) => (per.max(1), width),
            };
            let s = if width > 0 {
                per * (q >> width.trailing_zeros().min(q.trailing_zeros()))
            } else {
                per
            };
            step = lcm(step, s).ok_or(BrainError::SizeOverflow { op })?;
        }
        let mut fit_rows = rows;
        for part in parts {
            let (b, per, width) = match *part {
                Part::Whole(b) if b.size() > self.max_binding => {
                    return Err(self.too_big(op, b.size()))
                }
                Part::Whole(_) => continue,
                Part::Rows(b, width) => (b, 1, width),
                Part::Blocks(b, per, width) => (b, per.max(1), width),
            };
            let unit_bytes = width as u64 * F32;
            let units = rows.div_ceil(per) as u64;
            let bytes = units.saturating_mul(unit_bytes);
            if bytes > b.size() {
                return Err(BrainError::Backend(format!(
                    "wgpu: {op}: {units} runs of {width} elements do not fit a {}-byte buffer",
                    b.size()
                )));
            }
            if bytes > self.max_binding {
                let fit =
                    ((self.max_binding / unit_bytes) as usize).saturating_mul(per) / step * step;
                if fit == 0 {
                    return Err(BrainError::Unsupported(format!(
                        "wgpu: {op}: {step} rows (runs of {width} elements) exceed the \
                         adapter's storage binding limit of {} bytes",
                        self.max_binding
                    )));
                }
                fit_rows = fit_rows.min(fit);
            }
        }
        let mut first = 0;
        while first < rows {
            let n = fit_rows.min(rows - first);
            let slices: Vec<Slice<'_>> = parts
                .iter()
                .map(|part| {
                    let (buf, per, width) = match *part {
                        Part::Whole(buf) => return Slice::whole(buf),
                        Part::Rows(buf, width) => (buf, 1, width),
                        Part::Blocks(buf, per, width) => (buf, per.max(1), width),
                    };
                    if width == 0 {
                        return Slice {
                            buf,
                            offset: 0,
                            size: F32,
                        };
                    }
                    Slice {
                        buf,
                        offset: (first / per * width) as u64 * F32,
                        size: (n.div_ceil(per) * width) as u64 * F32,
                    }
                })
                .collect();
            let (params, groups) = chunk(first, n)?;
            self.dispatch_slices(op, kernel, &params, &slices, groups)?;
            first += n;
        }
        Ok(())
    }

    /// Record one dispatch of `kernel` over `groups` workgroups into the batch with the
    /// given buffer ranges, in the order of `kernel.bindings`. Each range must start at
    /// a multiple of the offset alignment and fit one binding.
    pub(crate) fn dispatch_slices(
        &self,
        op: &'static str,
        kernel: Kernel,
        params: &Params,
        slices: &[Slice<'_>],
        groups: u64,
    ) -> Result<()> {
        if groups == 0 {
            return Ok(());
        }
        let bindings = kernel.bindings;
        if bindings.len() != slices.len() {
            return Err(BrainError::Backend(format!(
                "wgpu: {op}: {} buffers given to a kernel that binds {}",
                slices.len(),
                bindings.len()
            )));
        }
        let align = self.binding_alignment();
        for s in slices {
            let fits = s.offset % align == 0
                && s.size % F32 == 0
                && s.size <= self.max_binding
                && s.offset
                    .checked_add(s.size)
                    .is_some_and(|e| e <= s.buf.size());
            if !fits {
                return Err(BrainError::Backend(format!(
                    "wgpu: {op}: cannot bind bytes {}..+{} of a {}-byte buffer (alignment \
                     {align}, binding limit {})",
                    s.offset,
                    s.size,
                    s.buf.size(),
                    self.max_binding
                )));
            }
        }
        let [x, y, z] = self.split(op, groups)?;
        let pipeline = self.pipeline(kernel)?;
        let bytes = params.bytes();
        if bytes.len() as u64 > PARAMS_BYTES {
            return Err(BrainError::Backend(format!(
                "wgpu: {op}: a {}-byte parameter block exceeds {PARAMS_BYTES} bytes",
                bytes.len()
            )));
        }
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.arena,
                offset: 0,
                size: NonZeroU64::new(PARAMS_BYTES),
            }),
        }];
        for (&(binding, _), s) in bindings.iter().zip(slices) {
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: s.buf,
                    offset: s.offset,
                    size: NonZeroU64::new(s.size),
                }),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry),
            layout: &pipeline.layout,
            entries: &entries,
        });
        let mut batch = self.batch.lock().unwrap_or_else(PoisonError::into_inner);
        // This dispatch's slot of the arena: the next one of the batch.
        let offset = batch.params.len() as u64;
        batch.params.extend_from_slice(&bytes);
        batch.params.resize((offset + self.slot) as usize, 0);
        let enc = batch.enc.get_or_insert_with(|| self.encoder());
        {
            let mut timing = self.timing.lock().unwrap_or_else(PoisonError::into_inner);
            let timestamp_writes = match timing.as_mut() {
                Some(t) => t.next(&self.device),
                None => None,
            };
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.entry),
                timestamp_writes,
            });
            pass.set_pipeline(&pipeline.pipeline);
            // Dynamic offsets are u32; the arena is BATCH slots.
            pass.set_bind_group(0, &bind_group, &[offset as u32]);
            pass.dispatch_workgroups(x, y, z);
        }
        batch.commands += 1;
        // The arena holds BATCH slots: submit before the next dispatch would need more.
        if batch.commands >= BATCH || batch.params.len() as u64 >= self.arena.size() {
            self.submit(&mut batch);
        }
        Ok(())
    }

    // ------------------------------------------------------------ timing

    /// Run `f`, timing on the device every dispatch it records (a timestamp at the
    /// beginning and the end of each compute pass). `None` for the time when the
    /// adapter offers no timestamps. Waits for the device before and after.
    pub(crate) fn time<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(T, Option<DeviceTime>)> {
        if !self
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return Ok((f()?, None));
        }
        self.sync()?;
        *self.timing.lock().unwrap_or_else(PoisonError::into_inner) = Some(Timing::default());
        let out = f();
        let timing = self
            .timing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let out = out?;
        let Some(timing) = timing else {
            return Ok((out, None));
        };
        let mut ticks = Vec::new();
        for (set, used) in timing.sets.iter().zip(timing.used()) {
            ticks.extend(self.read_timestamps(set, used)?);
        }
        let period = f64::from(self.queue.get_timestamp_period());
        let ns = |t: u64| t as f64 * period;
        let pairs: Vec<(u64, u64)> = ticks.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let kernels: f64 = pairs.iter().map(|&(b, e)| ns(e.saturating_sub(b))).sum();
        let span = match (
            pairs.iter().map(|p| p.0).min(),
            pairs.iter().map(|p| p.1).max(),
        ) {
            (Some(b), Some(e)) => ns(e.saturating_sub(b)),
            _ => 0.0,
        };
        let secs = |ns: f64| std::time::Duration::from_secs_f64(ns.max(0.0) * 1e-9);
        Ok((
            out,
            Some(DeviceTime {
                kernels: secs(kernels),
                span: secs(span),
                dispatches: pairs.len(),
                untimed: timing.untimed,
            }),
        ))
    }

    /// The first `used` timestamps of `set`, in ticks.
    fn read_timestamps(&self, set: &wgpu::QuerySet, used: u32) -> Result<Vec<u64>> {
        if used == 0 {
            return Ok(Vec::new());
        }
        let bytes = u64::from(used) * 8;
        let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        self.record(|enc| enc.resolve_query_set(set, 0..used, &resolve, 0));
        // Read as f32 pairs through the download path, then reassembled.
        let mut words = vec![0f32; used as usize * 2];
        self.download(&resolve, &mut words)?;
        Ok(words
            .chunks_exact(2)
            .map(|w| u64::from(w[0].to_bits()) | (u64::from(w[1].to_bits()) << 32))
            .collect())
    }
}

/// Commands recorded but not yet submitted: dispatches, copies and clears in call
/// order, and the parameter blocks of the dispatches (one arena slot each).
#[derive(Default)]
struct Batch {
    enc: Option<wgpu::CommandEncoder>,
    /// Commands in `enc`.
    commands: usize,
    /// The arena's contents for this batch: slot i holds dispatch i's parameters.
    params: Vec<u8>,
}

/// Device time of the dispatches recorded by a closure (see
/// `WgpuBackend::time_on_device`).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DeviceTime {
    /// Sum over the dispatches of the time from the beginning to the end of each.
    pub kernels: std::time::Duration,
    /// From the beginning of the first dispatch to the end of the last (copies and
    /// idle time between dispatches included).
    pub span: std::time::Duration,
    /// Dispatches timed.
    pub dispatches: usize,
    /// Dispatches beyond the query capacity, not timed.
    pub untimed: usize,
}

/// Timestamp query sets of a [`Gpu::time`] run: two queries per dispatch, new sets as
/// they fill, up to MAX_TIMED_DISPATCHES dispatches.
#[derive(Default)]
struct Timing {
    sets: Vec<wgpu::QuerySet>,
    /// Queries written in the last set.
    last_used: u32,
    untimed: usize,
}

/// Dispatches one timing run records at most (64 query sets).
const MAX_TIMED_DISPATCHES: usize = 64 * (wgpu::QUERY_SET_MAX_QUERIES as usize / 2);

impl Timing {
    /// The timestamp writes of the next dispatch, or `None` when the capacity is spent.
    fn next(&mut self, device: &wgpu::Device) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        let full = self.sets.is_empty() || self.last_used + 2 > wgpu::QUERY_SET_MAX_QUERIES;
        if full {
            if self.sets.len() * (wgpu::QUERY_SET_MAX_QUERIES as usize / 2) >= MAX_TIMED_DISPATCHES
            {
                self.untimed += 1;
                return None;
            }
            self.sets
                .push(device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("timing"),
                    ty: wgpu::QueryType::Timestamp,
                    count: wgpu::QUERY_SET_MAX_QUERIES,
                }));
            self.last_used = 0;
        }
        let i = self.last_used;
        self.last_used += 2;
        Some(wgpu::ComputePassTimestampWrites {
            query_set: self.sets.last()?,
            beginning_of_pass_write_index: Some(i),
            end_of_pass_write_index: Some(i + 1),
        })
    }

    /// Queries written in each set.
    fn used(&self) -> impl Iterator<Item = u32> + '_ {
        let n = self.sets.len();
        (0..n).map(move |i| {
            if i + 1 == n {
                self.last_used
            } else {
                wgpu::QUERY_SET_MAX_QUERIES
            }
        })
    }
}

/// A byte range of a buffer, bound as one storage binding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slice<'a> {
    pub(crate) buf: &'a wgpu::Buffer,
    /// Start in bytes: a multiple of the adapter's storage offset alignment.
    pub(crate) offset: u64,
    /// Length in bytes: a multiple of 4, at most the binding limit.
    pub(crate) size: u64,
}

impl<'a> Slice<'a> {
    pub(crate) fn whole(buf: &'a wgpu::Buffer) -> Self {
        Slice {
            buf,
            offset: 0,
            size: buf.size(),
        }
    }
}

/// How [`Gpu::dispatch_rows`] binds one buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Part<'a> {
    /// The whole buffer in every chunk (it must fit one binding): weights, vectors.
    Whole(&'a wgpu::Buffer),
    /// Rows of this many elements: each chunk binds its own rows.
    Rows(&'a wgpu::Buffer, usize),
    /// `Blocks(buf, per, width)`: `width` elements for each run of `per` rows (the
    /// last run may be shorter), e.g. the partial sums of a reduction whose
    /// workgroups cover `per` rows each. Chunks hold whole runs and bind their own.
    Blocks(&'a wgpu::Buffer, usize, usize),
}

/// Least common multiple; `None` on overflow.
fn lcm(a: usize, b: usize) -> Option<usize> {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    if x == 0 {
        return Some(0);
    }
    (a / x).checked_mul(b)
}

/// The adapter named by `wanted` (a lower-case substring), else the most capable kind:
/// discrete, integrated, virtual, then CPU (lavapipe).
/// Every Vulkan adapter, in enumeration order. Vulkan only: pinned, so that wgpu never
/// falls back to GL, whatever WGPU_BACKEND says.
fn vulkan_adapters() -> Result<Vec<wgpu::Adapter>> {
    if !wgpu::Instance::enabled_backend_features().contains(wgpu::Backends::VULKAN) {
        return Err(BrainError::Unsupported(
            "wgpu: the Vulkan backend is not available on this platform".into(),
        ));
    }
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN;
    let instance = wgpu::Instance::new(desc);
    Ok(pollster::block_on(
        instance.enumerate_adapters(wgpu::Backends::VULKAN),
    ))
}

/// The names of the Vulkan adapters, in enumeration order (the indices
/// `WgpuBackend::with_adapter_index` takes); empty without Vulkan.
pub fn adapter_names() -> Vec<String> {
    vulkan_adapters()
        .map(|a| a.iter().map(|a| a.get_info().name).collect())
        .unwrap_or_default()
}

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
