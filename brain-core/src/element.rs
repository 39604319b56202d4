//! Scalar element types a backend computes in.

use num_traits::Float;

/// A floating-point element: f32 for the fast backends, f64 for the oracle.
///
/// Hyper-parameters cross the [`Backend`](crate::Backend) trait as f64 and are
/// rounded once to the element type with [`Element::from_f64`].
pub trait Element:
    Float + Default + Send + Sync + core::fmt::Debug + core::fmt::Display + 'static
{
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// Round an f64 to this type (nearest).
    fn from_f64(v: f64) -> Self;
    /// Widen to f64 (exact).
    fn to_f64(self) -> f64;
    /// The error function (libm's, correctly rounded to within 1 ulp).
    fn erf(self) -> Self;
}

impl Element for f32 {
    const NAME: &'static str = "f32";
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl Element for f64 {
    const NAME: &'static str = "f64";
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn erf(self) -> Self {
        libm::erf(self)
    }
}
