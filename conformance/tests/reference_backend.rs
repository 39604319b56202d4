//! The reference backend itself: in f32 it runs the whole suite against the f64
//! oracle (it is the portable fallback, so its f32 numerics must hold up); in f64
//! it must reproduce PyTorch's float64 golden vectors to ~1e-12.

mod reference_f32 {
    conformance::conformance_suite!(Ok::<_, String>(brain_core::reference::ReferenceBackend::<
        f32,
    >::new()));
}

#[test]
fn reference_f64_matches_pytorch_golden() {
    conformance::golden::check_golden(&brain_core::reference::ReferenceBackend::<f64>::new());
}
