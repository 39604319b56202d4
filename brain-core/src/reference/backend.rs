//! [`ReferenceBackend`]: the scalar kernels behind the [`Backend`] trait.

use super::*;
use crate::backend::{AdamWTensor, Backend};
use crate::check;
use crate::element::Element;
use crate::error::Result;
use crate::ops::{
    Activation, AdamW, ContrastiveLoss, Dropout, Gemm, GroupNormShape, HsicEstimator, ImageShape,
    RowReduce, SchedulerStep, SobelLossForm, UpsampleMode, UpsampleShape,
};
use alloc::format;
use alloc::string::String;

use alloc::vec::Vec;
use core::marker::PhantomData;

/// Plain scalar backend over host `Vec<T>` buffers. `ReferenceBackend<f64>` is the
/// oracle; `ReferenceBackend<f32>` is the portable fallback.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReferenceBackend<T> {
    _t: PhantomData<T>,
}

impl<T: Element> ReferenceBackend<T> {
    /// A new reference backend (stateless).
    pub fn new() -> Self {
        ReferenceBackend { _t: PhantomData }
    }
}

fn same_len(op: &'static str, arg: &'static str, got: usize, expected: usize) -> Result<()> {
    check::len(op, arg, got, expected)
}

#[allow(clippy::too_many_arguments)]
impl<T: Element> Backend for ReferenceBackend<T> {
    type Elem = T;
    type Buffer = Vec<T>;

    fn name(&self) -> String {
        format!("reference-{}", T::NAME)
    }

    fn alloc(&self, len: usize) -> Result<Vec<T>> {
        let mut v = Vec::new();
        v.try_reserve_exact(len)
            .map_err(|_| crate::BrainError::OutOfMemory {
                bytes: len.saturating_mul(core::mem::size_of::<T>()),
            })?;
        v.resize(len, T::zero());
        Ok(v)
    }
    fn upload(&self, data: &[T]) -> Result<Vec<T>> {
        let mut v = self.alloc(0)?;
        v.try_reserve_exact(data.len())
            .map_err(|_| crate::BrainError::OutOfMemory {
                bytes: core::mem::size_of_val(data),
            })?;
        v.extend_from_slice(data);
        Ok(v)
    }
    fn write(&self, dst: &mut Vec<T>, data: &[T]) -> Result<()> {
        same_len("write", "data", data.len(), dst.len())?;
        dst.copy_from_slice(data);
        Ok(())
    }
    fn download(&self, src: &Vec<T>, dst: &mut [T]) -> Result<()> {
        same_len("download", "dst", dst.len(), src.len())?;
        dst.copy_from_slice(src);
        Ok(())
    }
    fn len(&self, buf: &Vec<T>) -> usize {
        buf.len()
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    fn copy(&self, src: &Vec<T>, dst: &mut Vec<T>) -> Result<()> {
        same_len("copy", "dst", dst.len(), src.len())?;
        dst.copy_from_slice(src);
        Ok(())
    }
    fn fill(&self, dst: &mut Vec<T>, value: f64) -> Result<()> {
        dst.iter_mut().for_each(|v| *v = T::from_f64(value));
        Ok(())
    }

    fn gemm(&self, g: &Gemm, a: &Vec<T>, b: &Vec<T>, c: &mut Vec<T>) -> Result<()> {
        check::gemm(g, a.len(), b.len(), c.len())?;
        gemm::gemm(g, a, b, c);
        Ok(())
    }

    fn linear_forward(
        &self,
        x: &Vec<T>,
        w: &Vec<T>,
        b: Option<&Vec<T>>,
        y: &mut Vec<T>,
        rows: usize,
        in_f: usize,
        out_f: usize,
    ) -> Result<()> {
        check::linear(
            "linear_forward",
            x.len(),
            w.len(),
            b.map(|b| b.len()),
            y.len(),
            rows,
            in_f,
            out_f,
        )?;
        linear::linear_forward(y, x, w, b.map(|b| b.as_slice()), rows, in_f, out_f);
        Ok(())
    }

    fn linear_backward(
        &self,
        dy: &Vec<T>,
        x: &Vec<T>,
        w: &Vec<T>,
        dx: Option<&mut Vec<T>>,
        dw: Option<&mut Vec<T>>,
        db: Option<&mut Vec<T>>,
        rows: usize,
        in_f: usize,
        out_f: usize,
    ) -> Result<()> {
        const OP: &str = "linear_backward";
        check::linear(
            OP,
            x.len(),
            w.len(),
            db.as_ref().map(|b| b.len()),
            dy.len(),
            rows,
            in_f,
            out_f,
        )?;
        if let Some(dx) = &dx {
            same_len(OP, "dx", dx.len(), x.len())?;
        }
        if let Some(dw) = &dw {
            same_len(OP, "dweight", dw.len(), w.len())?;
        }
        linear::linear_backward(
            dx.map(|v| v.as_mut_slice()),
            dw.map(|v| v.as_mut_slice()),
            db.map(|v| v.as_mut_slice()),
            dy,
            x,
            w,
            rows,
            in_f,
            out_f,
        );
        Ok(())
    }

    fn bias_add(
        &self,
        y: &mut Vec<T>,
        b: &Vec<T>,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        check::bias("bias_add", y.len(), b.len(), outer, channels, inner)?;
        bias::bias_add(y, b, outer, channels, inner);
        Ok(())
    }
    fn bias_backward(
        &self,
        dy: &Vec<T>,
        db: &mut Vec<T>,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        check::bias("bias_backward", dy.len(), db.len(), outer, channels, inner)?;
        bias::bias_backward(db, dy, outer, channels, inner);
        Ok(())
    }

    fn activation_forward(&self, act: Activation, x: &Vec<T>, y: &mut Vec<T>) -> Result<()> {
        same_len("activation_forward", "y", y.len(), x.len())?;
        activation::activation_forward(act, y, x);
        Ok(())
    }
    fn activation_backward(
        &self,
        act: Activation,
        x: &Vec<T>,
        dy: &Vec<T>,
        dx: &mut Vec<T>,
    ) -> Result<()> {
        same_len("activation_backward", "dy", dy.len(), x.len())?;
        same_len("activation_backward", "dx", dx.len(), x.len())?;
        activation::activation_backward(act, dx, x, dy);
        Ok(())
    }

    fn layernorm_forward(
        &self,
        x: &Vec<T>,
        gamma: &Vec<T>,
        beta: &Vec<T>,
        y: &mut Vec<T>,
        mean: &mut Vec<T>,
        rstd: &mut Vec<T>,
        rows: usize,
        cols: usize,
        eps: f64,
    ) -> Result<()> {
        const OP: &str = "layernorm_forward";
        check::layernorm(
            OP,
            x.len(),
            gamma.len(),
            beta.len(),
            (mean.len(), rstd.len()),
            rows,
            cols,
        )?;
        same_len(OP, "y", y.len(), x.len())?;
        layernorm::layernorm_forward(y, mean, rstd, x, gamma, beta, rows, cols, T::from_f64(eps));
        Ok(())
    }
    fn layernorm_backward(
        &self,
        dy: &Vec<T>,
        x: &Vec<T>,
        gamma: &Vec<T>,
        mean: &Vec<T>,
        rstd: &Vec<T>,
        dx: &mut Vec<T>,
        dgamma: &mut Vec<T>,
        dbeta: &mut Vec<T>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "layernorm_backward";
        check::layernorm(
            OP,
            x.len(),
            dgamma.len(),
            dbeta.len(),
            (mean.len(), rstd.len()),
            rows,
            cols,
        )?;
        same_len(OP, "gamma", gamma.len(), cols)?;
        same_len(OP, "dy", dy.len(), x.len())?;
        same_len(OP, "dx", dx.len(), x.len())?;
        layernorm::layernorm_backward(dx, dgamma, dbeta, dy, x, gamma, mean, rstd, rows, cols);
        Ok(())
    }

    fn groupnorm_forward(
        &self,
        x: &Vec<T>,
        gamma: &Vec<T>,
        beta: &Vec<T>,
        y: &mut Vec<T>,
        mean: &mut Vec<T>,
        rstd: &mut Vec<T>,
        s: &GroupNormShape,
        eps: f64,
    ) -> Result<()> {
        const OP: &str = "groupnorm_forward";
        check::groupnorm(
            OP,
            x.len(),
            gamma.len(),
            beta.len(),
            (mean.len(), rstd.len()),
            s,
        )?;
        same_len(OP, "y", y.len(), x.len())?;
        groupnorm::groupnorm_forward(y, mean, rstd, x, gamma, beta, s, T::from_f64(eps));
        Ok(())
    }
    fn groupnorm_backward(
        &self,
        dy: &Vec<T>,
        x: &Vec<T>,
        gamma: &Vec<T>,
        mean: &Vec<T>,
        rstd: &Vec<T>,
        dx: &mut Vec<T>,
        dgamma: &mut Vec<T>,
        dbeta: &mut Vec<T>,
        s: &GroupNormShape,
    ) -> Result<()> {
        const OP: &str = "groupnorm_backward";
        check::groupnorm(
            OP,
            x.len(),
            dgamma.len(),
            dbeta.len(),
            (mean.len(), rstd.len()),
            s,
        )?;
        same_len(OP, "gamma", gamma.len(), s.channels)?;
        same_len(OP, "dy", dy.len(), x.len())?;
        same_len(OP, "dx", dx.len(), x.len())?;
        groupnorm::groupnorm_backward(dx, dgamma, dbeta, dy, x, gamma, mean, rstd, s);
        Ok(())
    }

    fn dropout_forward(&self, d: &Dropout, x: &Vec<T>, y: &mut Vec<T>) -> Result<()> {
        check::dropout("dropout_forward", d)?;
        same_len("dropout_forward", "y", y.len(), x.len())?;
        dropout::dropout_forward(d, y, x);
        Ok(())
    }
    fn dropout_backward(&self, d: &Dropout, dy: &Vec<T>, dx: &mut Vec<T>) -> Result<()> {
        check::dropout("dropout_backward", d)?;
        same_len("dropout_backward", "dx", dx.len(), dy.len())?;
        dropout::dropout_backward(d, dx, dy);
        Ok(())
    }

    fn upsample_forward(
        &self,
        mode: UpsampleMode,
        s: &UpsampleShape,
        x: &Vec<T>,
        y: &mut Vec<T>,
    ) -> Result<()> {
        check::upsample("upsample_forward", x.len(), y.len(), s)?;
        match mode {
            UpsampleMode::Nearest => upsample::nearest_forward(y, x, s),
            UpsampleMode::Bilinear => upsample::bilinear_forward(y, x, s),
        }
        Ok(())
    }
    fn upsample_backward(
        &self,
        mode: UpsampleMode,
        s: &UpsampleShape,
        dy: &Vec<T>,
        dx: &mut Vec<T>,
    ) -> Result<()> {
        check::upsample("upsample_backward", dx.len(), dy.len(), s)?;
        match mode {
            UpsampleMode::Nearest => upsample::nearest_backward(dx, dy, s),
            UpsampleMode::Bilinear => upsample::bilinear_backward(dx, dy, s),
        }
        Ok(())
    }

    fn add(&self, a: &Vec<T>, b: &Vec<T>, out: &mut Vec<T>) -> Result<()> {
        same_len("add", "b", b.len(), a.len())?;
        same_len("add", "out", out.len(), a.len())?;
        elementwise::add(out, a, b);
        Ok(())
    }
    fn scale(&self, x: &mut Vec<T>, alpha: f64) -> Result<()> {
        elementwise::scale(x, T::from_f64(alpha));
        Ok(())
    }
    fn axpy(&self, alpha: f64, x: &Vec<T>, y: &mut Vec<T>) -> Result<()> {
        same_len("axpy", "y", y.len(), x.len())?;
        elementwise::axpy(y, T::from_f64(alpha), x);
        Ok(())
    }

    fn reduce_rows(
        &self,
        op: RowReduce,
        x: &Vec<T>,
        out: &mut Vec<T>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        check::reduce_rows("reduce_rows", x.len(), out.len(), rows, cols)?;
        reduce::reduce_rows(op, out, x, rows, cols);
        Ok(())
    }

    fn adamw_step(
        &self,
        cfg: &AdamW,
        tensors: &mut [AdamWTensor<'_, Self>],
        grad_norm: Option<&mut Vec<T>>,
    ) -> Result<()> {
        const OP: &str = "adamw_step";
        check::adamw(cfg)?;
        for t in tensors.iter() {
            same_len(OP, "grad", t.grad.len(), t.param.len())?;
            same_len(OP, "exp_avg", t.exp_avg.len(), t.param.len())?;
            same_len(OP, "exp_avg_sq", t.exp_avg_sq.len(), t.param.len())?;
        }
        if let Some(n) = &grad_norm {
            same_len(OP, "grad_norm", n.len(), 1)?;
        }
        let norm = tensors
            .iter()
            .fold(T::zero(), |a, t| a + adamw::sum_squares(t.grad))
            .sqrt();
        if let Some(n) = grad_norm {
            n[0] = norm;
        }
        let clip = adamw::clip_coefficient(norm, cfg.max_grad_norm);
        let s = adamw::AdamWScalars::<T>::new(cfg);
        for t in tensors.iter_mut() {
            adamw::adamw_tensor(&s, clip, t.param, t.grad, t.exp_avg, t.exp_avg_sq);
        }
        Ok(())
    }

    fn fill_uniform(&self, out: &mut Vec<T>, seed: u64, offset: u64) -> Result<()> {
        random::fill_uniform(out, seed, offset);
        Ok(())
    }
    fn fill_normal(
        &self,
        out: &mut Vec<T>,
        seed: u64,
        offset: u64,
        mean: f64,
        std: f64,
    ) -> Result<()> {
        random::fill_normal(out, seed, offset, T::from_f64(mean), T::from_f64(std));
        Ok(())
    }
    fn philox_bits(&self, out: &mut Vec<T>, seed: u64, offset: u64) -> Result<()> {
        if out.len() % 2 != 0 {
            return Err(check::invalid(
                "philox_bits",
                format!(
                    "output length {} must be even (two halves per word)",
                    out.len()
                ),
            ));
        }
        random::philox_bits(out, seed, offset);
        Ok(())
    }

    fn mse_forward(&self, a: &Vec<T>, b: &Vec<T>, loss: &mut Vec<T>) -> Result<()> {
        mse::mse_forward_checked(a, b, loss)
    }
    fn mse_backward(
        &self,
        a: &Vec<T>,
        b: &Vec<T>,
        scale: f64,
        da: Option<&mut Vec<T>>,
        db: Option<&mut Vec<T>>,
    ) -> Result<()> {
        mse::mse_backward_checked(
            a,
            b,
            scale,
            da.map(|v| v.as_mut_slice()),
            db.map(|v| v.as_mut_slice()),
        )
    }
    fn cka_grams_forward(
        &self,
        k: &Vec<T>,
        l: &Vec<T>,
        n: usize,
        estimator: HsicEstimator,
        out: &mut Vec<T>,
    ) -> Result<()> {
        cka::cka_grams_forward_checked(k, l, n, estimator, out)
    }
    fn cka_grams_backward(
        &self,
        k: &Vec<T>,
        l: &Vec<T>,
        n: usize,
        estimator: HsicEstimator,
        scale: f64,
        dk: Option<&mut Vec<T>>,
        dl: Option<&mut Vec<T>>,
    ) -> Result<()> {
        cka::cka_grams_backward_checked(
            k,
            l,
            n,
            estimator,
            scale,
            dk.map(|v| v.as_mut_slice()),
            dl.map(|v| v.as_mut_slice()),
        )
    }
    fn sims_forward(
        &self,
        a: &Vec<T>,
        b: &Vec<T>,
        batch: usize,
        tokens: usize,
        dim: usize,
        loss: &mut Vec<T>,
    ) -> Result<()> {
        sims::sims_forward_checked(a, b, batch, tokens, dim, loss)
    }
    fn sims_backward(
        &self,
        a: &Vec<T>,
        b: &Vec<T>,
        batch: usize,
        tokens: usize,
        dim: usize,
        scale: f64,
        da: Option<&mut Vec<T>>,
        db: Option<&mut Vec<T>>,
    ) -> Result<()> {
        sims::sims_backward_checked(
            a,
            b,
            batch,
            tokens,
            dim,
            scale,
            da.map(|v| v.as_mut_slice()),
            db.map(|v| v.as_mut_slice()),
        )
    }
    fn l2_normalize_rows_forward(
        &self,
        x: &Vec<T>,
        y: &mut Vec<T>,
        norms: &mut Vec<T>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        contrastive::l2_normalize_rows_forward_checked(x, y, norms, rows, cols)
    }
    fn l2_normalize_rows_backward(
        &self,
        dy: &Vec<T>,
        x: &Vec<T>,
        norms: &Vec<T>,
        dx: &mut Vec<T>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        contrastive::l2_normalize_rows_backward_checked(dy, x, norms, dx, rows, cols)
    }
    fn contrastive_forward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &Vec<T>,
        logits_tt: Option<&Vec<T>>,
        n: usize,
        loss: &mut Vec<T>,
    ) -> Result<()> {
        contrastive::contrastive_forward_checked(
            kind,
            logits_pt,
            logits_tt.map(|v| v.as_slice()),
            n,
            loss,
        )
    }
    fn contrastive_backward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &Vec<T>,
        logits_tt: Option<&Vec<T>>,
        n: usize,
        scale: f64,
        dlogits_pt: &mut Vec<T>,
        dlogits_tt: Option<&mut Vec<T>>,
    ) -> Result<()> {
        contrastive::contrastive_backward_checked(
            kind,
            logits_pt,
            logits_tt.map(|v| v.as_slice()),
            n,
            scale,
            dlogits_pt,
            dlogits_tt.map(|v| v.as_mut_slice()),
        )
    }
    fn clip_logits_forward(
        &self,
        kind: ContrastiveLoss,
        g_pt: &Vec<T>,
        g_tt: Option<&Vec<T>>,
        p_sq: &Vec<T>,
        t_sq: &Vec<T>,
        n: usize,
        temperature: f64,
        logits_pt: &mut Vec<T>,
        logits_tt: Option<&mut Vec<T>>,
    ) -> Result<()> {
        contrastive::clip_logits_forward_checked(
            kind,
            g_pt,
            g_tt.map(|v| v.as_slice()),
            p_sq,
            t_sq,
            n,
            temperature,
            logits_pt,
            logits_tt.map(|v| v.as_mut_slice()),
        )
    }
    fn clip_logits_backward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &Vec<T>,
        logits_tt: Option<&Vec<T>>,
        dlogits_pt: &Vec<T>,
        dlogits_tt: Option<&Vec<T>>,
        p_sq: &Vec<T>,
        t_sq: &Vec<T>,
        n: usize,
        temperature: f64,
        w_pt: &mut Vec<T>,
        d_p: Option<&mut Vec<T>>,
        w_tt: Option<&mut Vec<T>>,
    ) -> Result<()> {
        contrastive::clip_logits_backward_checked(
            kind,
            logits_pt,
            logits_tt.map(|v| v.as_slice()),
            dlogits_pt,
            dlogits_tt.map(|v| v.as_slice()),
            p_sq,
            t_sq,
            n,
            temperature,
            w_pt,
            d_p.map(|v| v.as_mut_slice()),
            w_tt.map(|v| v.as_mut_slice()),
        )
    }
    fn clip_grams_forward(
        &self,
        kind: ContrastiveLoss,
        preds: &Vec<T>,
        targets: &Vec<T>,
        n: usize,
        d: usize,
        p_sq: &mut Vec<T>,
        t_sq: &mut Vec<T>,
        g_pt: &mut Vec<T>,
        g_tt: Option<&mut Vec<T>>,
    ) -> Result<()> {
        contrastive::clip_grams_forward_checked(
            kind,
            preds,
            targets,
            n,
            d,
            p_sq,
            t_sq,
            g_pt,
            g_tt.map(|v| v.as_mut_slice()),
        )
    }
    fn clip_inputs_backward(
        &self,
        kind: ContrastiveLoss,
        w_pt: &Vec<T>,
        d_p: &Vec<T>,
        w_tt: &Vec<T>,
        preds: &Vec<T>,
        targets: &Vec<T>,
        n: usize,
        d: usize,
        dpreds: Option<&mut Vec<T>>,
        dtargets: Option<&mut Vec<T>>,
    ) -> Result<()> {
        contrastive::clip_inputs_backward_checked(
            kind,
            w_pt,
            d_p,
            w_tt,
            preds,
            targets,
            n,
            d,
            dpreds.map(|v| v.as_mut_slice()),
            dtargets.map(|v| v.as_mut_slice()),
        )
    }
    fn sobel_forward(
        &self,
        x: &Vec<T>,
        shape: &ImageShape,
        gx: &mut Vec<T>,
        gy: &mut Vec<T>,
        magnitude: &mut Vec<T>,
    ) -> Result<()> {
        sobel::sobel_forward_checked(x, shape, gx, gy, magnitude)
    }
    fn sobel_backward(
        &self,
        x: &Vec<T>,
        shape: &ImageShape,
        dgx: Option<&Vec<T>>,
        dgy: Option<&Vec<T>>,
        dmagnitude: Option<&Vec<T>>,
        dx: &mut Vec<T>,
    ) -> Result<()> {
        sobel::sobel_backward_checked(
            x,
            shape,
            dgx.map(|v| v.as_slice()),
            dgy.map(|v| v.as_slice()),
            dmagnitude.map(|v| v.as_slice()),
            dx,
        )
    }
    fn sobel_loss_forward(
        &self,
        pred: &Vec<T>,
        target: &Vec<T>,
        shape: &ImageShape,
        form: SobelLossForm,
        loss: &mut Vec<T>,
    ) -> Result<()> {
        sobel::sobel_loss_forward_checked(pred, target, shape, form, loss)
    }
    fn sobel_loss_backward(
        &self,
        pred: &Vec<T>,
        target: &Vec<T>,
        shape: &ImageShape,
        form: SobelLossForm,
        scale: f64,
        dpred: Option<&mut Vec<T>>,
        dtarget: Option<&mut Vec<T>>,
    ) -> Result<()> {
        sobel::sobel_loss_backward_checked(
            pred,
            target,
            shape,
            form,
            scale,
            dpred.map(|v| v.as_mut_slice()),
            dtarget.map(|v| v.as_mut_slice()),
        )
    }
    fn scheduler_step(
        &self,
        step: &SchedulerStep,
        model_output: &Vec<T>,
        sample: &Vec<T>,
        noise: Option<&Vec<T>>,
        prev_sample: &mut Vec<T>,
        pred_x0: Option<&mut Vec<T>>,
    ) -> Result<()> {
        diffusion::scheduler_step_checked(
            step,
            model_output,
            sample,
            noise.map(|v| v.as_slice()),
            prev_sample,
            pred_x0.map(|v| v.as_mut_slice()),
        )
    }
    fn add_noise(
        &self,
        x0: &Vec<T>,
        noise: &Vec<T>,
        sqrt_alpha_prod: &[f64],
        sqrt_one_minus_alpha_prod: &[f64],
        out: &mut Vec<T>,
    ) -> Result<()> {
        diffusion::add_noise_checked(x0, noise, sqrt_alpha_prod, sqrt_one_minus_alpha_prod, out)
    }
    fn guidance_combine(
        &self,
        uncond: &Vec<T>,
        cond: &Vec<T>,
        scale: f64,
        out: &mut Vec<T>,
    ) -> Result<()> {
        diffusion::guidance_combine_checked(uncond, cond, scale, out)
    }
}
