//! Scalar element types a backend computes in.

use num_traits::Float;

/// A floating-point element: f32 for the fast backends, f64 for the oracle, and
/// [`half::f16`] for f16-storage backends.
///
/// Hyper-parameters cross the [`Backend`](crate::Backend) trait as f64 and are
/// rounded once to the element type with [`Element::from_f64`].
pub trait Element:
    Float + Default + Send + Sync + core::fmt::Debug + core::fmt::Display + 'static
{
    /// `"f16"`, `"f32"` or `"f64"`.
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

impl Element for half::f16 {
    const NAME: &'static str = "f16";
    #[inline]
    fn from_f64(v: f64) -> Self {
        // Nearest, ties to even. `half::f16::from_f64` (2.7) rounds through f32, so a
        // value just off an f16 tie lands on the tie and then on the even side; rounding
        // to odd into f32 first (13 bits more than f16) keeps the sticky bit, and the
        // second rounding is then exact.
        if v.is_nan() {
            return half::f16::NAN;
        }
        let t = v as f32;
        let odd = if t.is_infinite() || t as f64 == v {
            t
        } else {
            let mut bits = t.to_bits();
            if (t as f64).abs() > v.abs() {
                bits -= 1; // truncate toward zero
            }
            f32::from_bits(bits | 1)
        };
        half::f16::from_f32(odd)
    }
    #[inline]
    fn to_f64(self) -> f64 {
        half::f16::to_f64(self)
    }
    #[inline]
    fn erf(self) -> Self {
        // f32's erf is far more accurate than f16 resolves; rounded once to f16.
        half::f16::from_f32(libm::erff(self.to_f32()))
    }
}
