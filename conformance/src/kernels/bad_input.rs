//! Wrong lengths and out-of-domain arguments give typed errors, never a panic.

use brain_core::{
    Activation, AdamW, AdamWTensor, Backend, BrainError, Dropout, Gemm, GroupNormShape, RowReduce,
    UpsampleMode, UpsampleShape,
};

fn expect_shape_err<T: std::fmt::Debug>(what: &str, r: Result<T, BrainError>) {
    match r {
        Err(BrainError::ShapeMismatch { .. }) => {}
        other => panic!("{what}: expected a ShapeMismatch error, got {other:?}"),
    }
}

fn expect_invalid<T: std::fmt::Debug>(what: &str, r: Result<T, BrainError>) {
    match r {
        Err(BrainError::InvalidArgument { .. }) => {}
        other => panic!("{what}: expected an InvalidArgument error, got {other:?}"),
    }
}

/// Every kernel rejects a buffer of the wrong length, and the domain checks fire.
pub fn bad_input<B: Backend>(be: &B) {
    let buf = |n: usize| be.alloc(n).expect("alloc");
    let (a, b) = (buf(6), buf(6));
    let mut c = buf(3);
    expect_shape_err("gemm short C", be.gemm(&Gemm::new(2, 2, 3), &a, &b, &mut c));
    expect_shape_err(
        "gemm short A in batch",
        be.gemm(&Gemm::new(2, 2, 3).batched_dense(2), &a, &b, &mut buf(8)),
    );
    expect_invalid(
        "gemm overlapping C",
        be.gemm(
            &Gemm::new(2, 2, 3).batched(2, 6, 0, 1),
            &buf(12),
            &b,
            &mut buf(8),
        ),
    );

    let (x, w, bias) = (buf(2 * 3), buf(4 * 3), buf(4));
    expect_shape_err(
        "linear weight",
        be.linear_forward(&x, &buf(11), Some(&bias), &mut buf(8), 2, 3, 4),
    );
    expect_shape_err(
        "linear bias",
        be.linear_forward(&x, &w, Some(&buf(3)), &mut buf(8), 2, 3, 4),
    );
    expect_shape_err(
        "linear y",
        be.linear_forward(&x, &w, Some(&bias), &mut buf(9), 2, 3, 4),
    );
    expect_shape_err(
        "linear dx",
        be.linear_backward(&buf(8), &x, &w, Some(&mut buf(5)), None, None, 2, 3, 4),
    );
    expect_shape_err(
        "linear dweight",
        be.linear_backward(&buf(8), &x, &w, None, Some(&mut buf(3)), None, 2, 3, 4),
    );
    expect_shape_err("bias_add", be.bias_add(&mut buf(12), &buf(5), 2, 3, 2));
    expect_shape_err(
        "bias_backward",
        be.bias_backward(&buf(11), &mut buf(3), 2, 3, 2),
    );
    expect_shape_err(
        "activation",
        be.activation_forward(Activation::Silu, &buf(4), &mut buf(5)),
    );
    expect_shape_err(
        "activation backward",
        be.activation_backward(Activation::GeluErf, &buf(4), &buf(3), &mut buf(4)),
    );

    let (g3, mut m2, mut r2) = (buf(3), buf(2), buf(2));
    expect_shape_err(
        "layernorm gamma",
        be.layernorm_forward(&x, &buf(2), &g3, &mut buf(6), &mut m2, &mut r2, 2, 3, 1e-5),
    );
    expect_shape_err(
        "layernorm stats",
        be.layernorm_forward(&x, &g3, &g3, &mut buf(6), &mut buf(1), &mut r2, 2, 3, 1e-5),
    );
    expect_invalid(
        "layernorm zero cols",
        be.layernorm_forward(
            &buf(0),
            &buf(0),
            &buf(0),
            &mut buf(0),
            &mut m2,
            &mut r2,
            2,
            0,
            1e-5,
        ),
    );
    expect_shape_err(
        "layernorm backward dx",
        be.layernorm_backward(
            &x,
            &x,
            &g3,
            &m2,
            &r2,
            &mut buf(5),
            &mut buf(3),
            &mut buf(3),
            2,
            3,
        ),
    );

    let s = GroupNormShape {
        batch: 1,
        channels: 4,
        spatial: 3,
        groups: 2,
    };
    let (x12, g4) = (buf(12), buf(4));
    expect_shape_err(
        "groupnorm x",
        be.groupnorm_forward(&buf(11), &g4, &g4, &mut buf(12), &mut m2, &mut r2, &s, 1e-5),
    );
    let bad = GroupNormShape { groups: 3, ..s };
    expect_invalid(
        "groupnorm groups",
        be.groupnorm_forward(
            &x12,
            &g4,
            &g4,
            &mut buf(12),
            &mut buf(3),
            &mut buf(3),
            &bad,
            1e-5,
        ),
    );
    expect_shape_err(
        "groupnorm backward",
        be.groupnorm_backward(
            &x12,
            &x12,
            &g4,
            &m2,
            &r2,
            &mut buf(12),
            &mut buf(3),
            &mut buf(4),
            &s,
        ),
    );

    let d = Dropout {
        p: 0.1,
        seed: 1,
        offset: 2,
    };
    expect_shape_err("dropout", be.dropout_forward(&d, &buf(4), &mut buf(5)));
    expect_invalid(
        "dropout p = 1",
        be.dropout_forward(&Dropout { p: 1.0, ..d }, &buf(4), &mut buf(4)),
    );
    expect_invalid(
        "dropout p NaN",
        be.dropout_backward(&Dropout { p: f64::NAN, ..d }, &buf(4), &mut buf(4)),
    );

    let u = UpsampleShape {
        batch: 1,
        channels: 2,
        height: 3,
        width: 3,
        factor: 2,
    };
    expect_shape_err(
        "upsample y",
        be.upsample_forward(UpsampleMode::Bilinear, &u, &buf(18), &mut buf(71)),
    );
    expect_invalid(
        "upsample factor 0",
        be.upsample_forward(
            UpsampleMode::Nearest,
            &UpsampleShape { factor: 0, ..u },
            &buf(18),
            &mut buf(18),
        ),
    );
    expect_shape_err(
        "upsample backward",
        be.upsample_backward(UpsampleMode::Nearest, &u, &buf(72), &mut buf(17)),
    );

    expect_shape_err("add", be.add(&buf(3), &buf(4), &mut buf(3)));
    expect_shape_err("axpy", be.axpy(1.0, &buf(3), &mut buf(4)));
    expect_shape_err("copy", be.copy(&buf(3), &mut buf(4)));
    expect_shape_err("write", be.write(&mut buf(3), &[]));
    expect_shape_err(
        "reduce_rows",
        be.reduce_rows(RowReduce::Sum, &buf(6), &mut buf(3), 2, 3),
    );
    expect_invalid("philox_bits odd", be.philox_bits(&mut buf(3), 0, 0));

    let (mut p, g, mut m, mut v) = (buf(4), buf(3), buf(4), buf(4));
    let mut ts = [AdamWTensor::<B> {
        param: &mut p,
        grad: &g,
        exp_avg: &mut m,
        exp_avg_sq: &mut v,
    }];
    expect_shape_err(
        "adamw grad",
        be.adamw_step(&AdamW::default(), &mut ts, None),
    );
    let (mut p, g, mut m, mut v) = (buf(4), buf(4), buf(4), buf(4));
    let mut ts = [AdamWTensor::<B> {
        param: &mut p,
        grad: &g,
        exp_avg: &mut m,
        exp_avg_sq: &mut v,
    }];
    expect_invalid(
        "adamw step 0",
        be.adamw_step(
            &AdamW {
                step: 0,
                ..AdamW::default()
            },
            &mut ts,
            None,
        ),
    );
    expect_invalid(
        "adamw beta 1",
        be.adamw_step(
            &AdamW {
                beta2: 1.0,
                ..AdamW::default()
            },
            &mut ts,
            None,
        ),
    );
    expect_invalid(
        "adamw clip 0",
        be.adamw_step(
            &AdamW {
                max_grad_norm: Some(0.0),
                ..AdamW::default()
            },
            &mut ts,
            None,
        ),
    );
    expect_shape_err(
        "adamw grad_norm",
        be.adamw_step(&AdamW::default(), &mut ts, Some(&mut buf(2))),
    );
}
