//! The one error type every fallible call returns.

use alloc::string::String;
use core::fmt;

/// Convenience alias.
pub type Result<T, E = BrainError> = core::result::Result<T, E>;

/// Everything that can go wrong in a kernel call. Bad user input is always one of
/// these, never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrainError {
    /// A buffer's length disagrees with the dimensions passed to the kernel.
    ShapeMismatch {
        /// Kernel name, e.g. `"linear_forward"`.
        op: &'static str,
        /// Which argument, e.g. `"weight"`.
        arg: &'static str,
        /// Length implied by the dimensions.
        expected: usize,
        /// Length of the buffer given.
        got: usize,
    },
    /// A dimension or hyper-parameter is outside its domain (zero groups, p ≥ 1, …).
    InvalidArgument {
        /// Kernel name.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The product of the dimensions does not fit in `usize`.
    SizeOverflow {
        /// Kernel name.
        op: &'static str,
    },
    /// The device could not allocate `bytes`.
    OutOfMemory {
        /// Size of the failed request.
        bytes: usize,
    },
    /// The device or its driver went away.
    DeviceLost(String),
    /// The backend or device lacks a feature (f16 storage, a driver, …).
    Unsupported(String),
    /// Any other backend-specific failure (driver error text included).
    Backend(String),
}

impl fmt::Display for BrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrainError::ShapeMismatch {
                op,
                arg,
                expected,
                got,
            } => write!(
                f,
                "{op}: `{arg}` has {got} elements but the dimensions given need {expected}"
            ),
            BrainError::InvalidArgument { op, reason } => write!(f, "{op}: {reason}"),
            BrainError::SizeOverflow { op } => {
                write!(f, "{op}: the dimensions multiply past the addressable size")
            }
            BrainError::OutOfMemory { bytes } => {
                write!(f, "out of device memory allocating {bytes} bytes")
            }
            BrainError::DeviceLost(m) => write!(f, "device lost: {m}"),
            BrainError::Unsupported(m) => write!(f, "unsupported: {m}"),
            BrainError::Backend(m) => write!(f, "backend error: {m}"),
        }
    }
}

impl core::error::Error for BrainError {}
