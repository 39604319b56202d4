//! # conformance
//!
//! One suite that every [`Backend`](brain_core::Backend) must pass. Each kernel family
//! has a generic test function in [`kernels`] that draws shapes with proptest (1,
//! primes, tile sizes ± 1, long reductions), runs the backend and the f64 reference on
//! the same inputs, and compares with a tolerance stated next to the test with its
//! reason ([`tolerance`]). [`golden`] checks against committed PyTorch outputs, and
//! [`finite_diff`] checks the reference's gradients by central differences.
//!
//! A backend crate runs the whole suite with one macro call in its tests:
//!
//! ```ignore
//! // backend-foo/tests/conformance.rs
//! conformance::conformance_suite!(backend_foo::FooBackend::new().map_err(|e| e.to_string()));
//! ```
//! The expression yields `Result<B, String>`; `Err(reason)` makes every test print
//! `skipped: <reason>` and pass, so a machine without the hardware still runs the
//! suite visibly (CI checks that only the expected skips happen).

pub mod data;
pub mod finite_diff;
pub mod golden;
pub mod golden_contrastive_sobel;
pub mod golden_schedulers;
pub mod golden_similarity;
pub mod kernels;
pub mod tolerance;

/// Runs `body` with the backend, or prints `skipped: <reason>` when it is absent. The
/// checks of `body` apply the range of the backend's element type
/// ([`tolerance::ElemRange`]).
pub fn with_backend<B: brain_core::Backend>(
    make: Result<B, String>,
    test: &str,
    body: impl FnOnce(&B),
) {
    match make {
        Ok(be) => {
            tolerance::ElemRange::set::<B::Elem>();
            body(&be)
        }
        Err(reason) => println!("skipped: {test}: {reason}"),
    }
}

/// Expands to one `#[test]` per kernel family for the backend built by `$make`
/// (an expression of type `Result<B, String>`, evaluated once per test).
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@tests $make;
            gemm, linear, bias, activations, layernorm, groupnorm, dropout, upsample,
            elementwise, reduce_rows, adamw, philox, nonfinite, bad_input,
            mse, cka, sims, contrastive, sobel, diffusion);
        #[test]
        fn golden_pytorch() {
            $crate::with_backend($make, "golden_pytorch", |be| $crate::golden::check_golden(be));
        }
        #[test]
        fn golden_similarity_losses() {
            $crate::with_backend($make, "golden_similarity_losses", |be| $crate::golden_similarity::check(be));
        }
        #[test]
        fn golden_contrastive_sobel() {
            $crate::with_backend($make, "golden_contrastive_sobel", |be| $crate::golden_contrastive_sobel::check(be));
        }
        #[test]
        fn golden_schedulers() {
            $crate::with_backend($make, "golden_schedulers", |be| $crate::golden_schedulers::check(be));
        }
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::with_backend($make, stringify!($name), |be| $crate::kernels::$name(be));
            }
        )*
    };
}
