//! The README's example: a Linear + LayerNorm forward and backward pass on the CPU backend.
//!
//! Run with `cargo run --release -p backend-cpu --example quickstart`.

use backend_cpu::CpuBackend;
use brain_core::{Backend, BrainError};

fn main() -> Result<(), BrainError> {
    let be = CpuBackend::new();
    let (rows, d_in, d_out) = (4, 8, 3);

    // Parameters and activations live on the backend.
    let x = be.upload(
        &(0..rows * d_in)
            .map(|i| (i as f32 * 0.37).sin())
            .collect::<Vec<_>>(),
    )?;
    let w = be.upload(
        &(0..d_out * d_in)
            .map(|i| (i as f32 * 0.11).cos() * 0.3)
            .collect::<Vec<_>>(),
    )?;
    let b = be.upload(&[0.1, -0.2, 0.05])?;
    let (gamma, beta) = (be.upload(&[1.0; 3])?, be.alloc(3)?);

    // Forward: h = x·Wᵀ + b, y = LayerNorm(h)
    let mut h = be.alloc(rows * d_out)?;
    be.linear_forward(&x, &w, Some(&b), &mut h, rows, d_in, d_out)?;
    let (mut y, mut mean, mut rstd) = (be.alloc(rows * d_out)?, be.alloc(rows)?, be.alloc(rows)?);
    be.layernorm_forward(
        &h, &gamma, &beta, &mut y, &mut mean, &mut rstd, rows, d_out, 1e-5,
    )?;

    // Backward from dy = 1: parameter gradients accumulate, input gradients overwrite.
    let dy = be.upload(&vec![1.0; rows * d_out])?;
    let (mut dh, mut dgamma, mut dbeta) = (be.alloc(rows * d_out)?, be.alloc(3)?, be.alloc(3)?);
    be.layernorm_backward(
        &dy,
        &h,
        &gamma,
        &mean,
        &rstd,
        &mut dh,
        &mut dgamma,
        &mut dbeta,
        rows,
        d_out,
    )?;
    let (mut dx, mut dw, mut db) = (
        be.alloc(rows * d_in)?,
        be.alloc(d_out * d_in)?,
        be.alloc(d_out)?,
    );
    be.linear_backward(
        &dh,
        &x,
        &w,
        Some(&mut dx),
        Some(&mut dw),
        Some(&mut db),
        rows,
        d_in,
        d_out,
    )?;

    println!("y     = {:?}", be.download_vec(&y)?);
    println!("dbeta = {:?}", be.download_vec(&dbeta)?);
    // A wrong length is an error, not a panic:
    let err = be
        .linear_forward(&x, &w, Some(&b), &mut dx, rows, d_in, d_out)
        .unwrap_err();
    println!("error: {err}");
    Ok(())
}
