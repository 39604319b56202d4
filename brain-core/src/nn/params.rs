//! The parameters of a model: one device buffer per tensor plus its gradient, under
//! the PyTorch `state_dict` key the tensor has in the PyTorch twin (docs/models.md).
//!
//! Layers hold [`ParamId`]s, not buffers, so one store owns every parameter and the
//! optimizer, the checkpoint writer and gradient zeroing walk it in one place.

use crate::backend::Backend;
use crate::check;
use crate::element::Element;
use crate::error::{BrainError, Result};
use crate::philox;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Handle of one tensor in a [`ParamStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub(crate) usize);

impl ParamId {
    /// Position in the store (registration order).
    pub fn index(self) -> usize {
        self.0
    }
}

/// How a tensor starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Every element `value`.
    Constant(f64),
    /// U(−bound, bound), PyTorch's default for Linear/Conv weights and biases with
    /// bound = 1/√fan_in.
    Uniform {
        /// Half-width of the interval.
        bound: f64,
    },
}

/// Name, shape and whether AdamW's weight decay applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    /// PyTorch `state_dict` key, e.g. `text.encoder.linear.weight`.
    pub name: String,
    /// PyTorch shape, e.g. `[out, in]`, or `[4, C, 1, 1]` for a 1×1 convolution.
    pub shape: Vec<usize>,
    /// Number of elements.
    pub len: usize,
}

/// Every parameter tensor and its gradient.
pub struct ParamStore<B: Backend> {
    info: Vec<ParamInfo>,
    values: Vec<B::Buffer>,
    grads: Vec<B::Buffer>,
    seed: u64,
}

impl<B: Backend> ParamStore<B> {
    /// An empty store; `seed` drives the random initialisers (tensor `i` draws from
    /// Philox stream `(seed, i)`, so each tensor's start is independent of the others).
    pub fn new(seed: u64) -> Self {
        ParamStore {
            info: Vec::new(),
            values: Vec::new(),
            grads: Vec::new(),
            seed,
        }
    }

    /// Register a tensor and initialise it (on the host, then one upload).
    pub fn add(&mut self, be: &B, name: &str, shape: &[usize], init: Init) -> Result<ParamId> {
        const OP: &str = "ParamStore::add";
        if self.info.iter().any(|p| p.name == name) {
            return Err(check::invalid(
                OP,
                format!("duplicate parameter name `{name}`"),
            ));
        }
        let len = check::numel(OP, shape)?;
        if len == 0 {
            return Err(check::invalid(OP, format!("`{name}` has no elements")));
        }
        let stream = self.info.len() as u64;
        let host: Vec<B::Elem> = match init {
            Init::Constant(v) => alloc::vec![B::Elem::from_f64(v); len],
            // Element i takes word i of the stream (one Philox block per four words).
            Init::Uniform { bound } => (0..len.div_ceil(4) as u64)
                .flat_map(|b| philox::block(self.seed, stream, b))
                .take(len)
                .map(|w| {
                    let u = philox::bits24(w) as f64 * philox::INV_2_24;
                    B::Elem::from_f64((2.0 * u - 1.0) * bound)
                })
                .collect(),
        };
        let value = be.upload(&host)?;
        let grad = be.alloc(len)?;
        self.info.push(ParamInfo {
            name: name.into(),
            shape: shape.to_vec(),
            len,
        });
        self.values.push(value);
        self.grads.push(grad);
        Ok(ParamId(self.info.len() - 1))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.info.len()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn count(&self) -> usize {
        self.info.iter().map(|p| p.len).sum()
    }

    /// Names and shapes in registration order.
    pub fn infos(&self) -> &[ParamInfo] {
        &self.info
    }

    /// The tensor called `name`.
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.info.iter().position(|p| p.name == name).map(ParamId)
    }

    /// Name, shape, length of `id`.
    pub fn info(&self, id: ParamId) -> &ParamInfo {
        &self.info[id.0]
    }

    /// The value of `id`.
    pub fn value(&self, id: ParamId) -> &B::Buffer {
        &self.values[id.0]
    }

    /// The value of `id`, writable (loading a checkpoint).
    pub fn value_mut(&mut self, id: ParamId) -> &mut B::Buffer {
        &mut self.values[id.0]
    }

    /// The gradient of `id`.
    pub fn grad(&self, id: ParamId) -> &B::Buffer {
        &self.grads[id.0]
    }

    /// All values, in registration order.
    pub fn values(&self) -> &[B::Buffer] {
        &self.values
    }

    /// Values and gradients, split so the optimizer can update one from the other.
    pub fn values_and_grads_mut(&mut self) -> (&mut [B::Buffer], &[B::Buffer]) {
        (&mut self.values, &self.grads)
    }

    /// Values (read) and gradients (write): what a backward pass needs.
    pub fn split(&mut self) -> (&[B::Buffer], GradsMut<'_, B>) {
        (&self.values, GradsMut(&mut self.grads))
    }

    /// Zero every gradient (before a backward pass; kernels accumulate into them).
    pub fn zero_grads(&mut self, be: &B) -> Result<()> {
        for g in &mut self.grads {
            be.fill(g, 0.0)?;
        }
        Ok(())
    }

    /// Overwrite tensor `name` from host data (checkpoint loading).
    pub fn load(&mut self, be: &B, name: &str, shape: &[usize], data: &[B::Elem]) -> Result<()> {
        const OP: &str = "ParamStore::load";
        let id = self
            .find(name)
            .ok_or_else(|| check::invalid(OP, format!("the model has no parameter `{name}`")))?;
        let info = &self.info[id.0];
        if info.shape != shape {
            return Err(check::invalid(
                OP,
                format!(
                    "`{name}` has shape {:?} in the model but {:?} in the file",
                    info.shape, shape
                ),
            ));
        }
        check::len(OP, "data", data.len(), info.len)?;
        be.write(&mut self.values[id.0], data)
    }

    /// Error unless the two stores hold the same names and shapes in the same order.
    pub fn same_layout(&self, other: &[ParamInfo]) -> Result<()> {
        if self.info.as_slice() == other {
            Ok(())
        } else {
            Err(BrainError::InvalidArgument {
                op: "ParamStore::same_layout",
                reason: "parameter names or shapes differ".into(),
            })
        }
    }
}

/// Mutable access to the gradients, handing out several at once (a Linear layer
/// accumulates into its weight and bias gradients in one kernel call).
pub struct GradsMut<'a, B: Backend>(&'a mut [B::Buffer]);

impl<B: Backend> GradsMut<'_, B> {
    /// The gradients of two distinct tensors (an error if `a == b`).
    pub fn two(&mut self, a: ParamId, b: ParamId) -> Result<(&mut B::Buffer, &mut B::Buffer)> {
        let len = self.0.len();
        if a == b || a.0 >= len || b.0 >= len {
            return Err(check::invalid(
                "GradsMut::two",
                format!(
                    "need two distinct tensors of {len}, got {} and {}",
                    a.0, b.0
                ),
            ));
        }
        Ok(if a.0 < b.0 {
            let (lo, hi) = self.0.split_at_mut(b.0);
            (&mut lo[a.0], &mut hi[0])
        } else {
            let (lo, hi) = self.0.split_at_mut(a.0);
            (&mut hi[0], &mut lo[b.0])
        })
    }
}
