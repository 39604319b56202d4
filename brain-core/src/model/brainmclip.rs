//! BrainMCLIP (paper 000, Methods, Fig. 3): a text branch F_S → Ê_T and an image
//! branch F_S, F_D → Ê_I = (ê_I,S + ê_I,D)/2 sharing one backbone and head, with self-
//! and cross-reconstruction of the voxels. Structure and names: docs/models.md.

use super::alignment::Alignment;
use super::config::{BrainMclipConfig, Branches, ModelConfig};
use super::{LossTerms, Model, Slot};
use crate::backend::Backend;
use crate::error::Result;
use crate::nn::{
    GradsMut, Head, HeadActs, Linear, MlpStack, MlpUnit, Mode, ParamStore, ResidualBlock, StackActs,
};
use crate::ops::Activation;
use alloc::format;
use alloc::vec::Vec;

fn no_image_decoder() -> crate::BrainError {
    crate::check::invalid(
        "BrainMclip",
        "image branch without its semantic decoder".into(),
    )
}

/// Slot indices (see [`Model::slots`]).
const F_S: usize = 0;
const F_D: usize = 1;
const E_T: usize = 2;
const E_IS: usize = 3;
const E_ID: usize = 4;

/// Encoder → residual backbone → token head: one pathway's trunk.
struct Trunk {
    /// Encoder (`*.encoder*`) and backbone (`*.backbone.{i}`).
    stack: MlpStack,
    head: Head,
}

/// BrainMCLIP on backend `B`.
pub struct BrainMclip<B: Backend> {
    cfg: BrainMclipConfig,
    params: ParamStore<B>,
    text: Trunk,
    text_decoder: Linear,
    /// Semantic pathway: its encoder, the shared backbone and head.
    image: Option<Trunk>,
    image_decoder_semantic: Option<Linear>,
    /// Detail pathway: its trunk (own encoder; `image`'s backbone and head, shared by
    /// parameter id) and decoder.
    detail: Option<(Trunk, Linear)>,
}

/// Activations of one pathway.
struct PathActs<B: Backend> {
    stack: StackActs<B>,
    head: HeadActs<B>,
    /// `[batch, T·D]` prediction.
    out: B::Buffer,
    /// Its gradient.
    dout: B::Buffer,
}

/// A reconstruction `D(b)` compared with voxels `F`.
struct Recon<B: Backend> {
    out: B::Buffer,
    loss: B::Buffer,
}

/// Everything BrainMCLIP needs for batches of one size.
pub struct BrainMclipActs<B: Backend> {
    batch: usize,
    slots: [B::Buffer; 5],
    text: PathActs<B>,
    text_recon: Recon<B>,
    text_align: Alignment<B>,
    semantic: Option<PathActs<B>>,
    detail: Option<PathActs<B>>,
    /// D_I,S(b_I,S), D_I,D(b_I,D), D_I,D(b_I,S), D_I,S(b_I,D).
    recon_ss: Option<Recon<B>>,
    recon_dd: Option<Recon<B>>,
    recon_ds: Option<Recon<B>>,
    recon_sd: Option<Recon<B>>,
    /// MSE(e_I,S, ê_I,S), MSE(e_I,D, ê_I,D).
    mse_is: Option<B::Buffer>,
    mse_id: Option<B::Buffer>,
    /// E_I target, Ê_I prediction and its gradient.
    e_i: B::Buffer,
    e_i_hat: B::Buffer,
    de_i_hat: B::Buffer,
    image_align: Option<Alignment<B>>,
    // Scratch: [batch, h] ×4, voxel gradients [batch, N_S], [batch, N_D].
    s1: B::Buffer,
    s2: B::Buffer,
    dh: B::Buffer,
    dh2: B::Buffer,
    dvox_s: B::Buffer,
    dvox_d: B::Buffer,
}

fn trunk<B: Backend>(
    be: &B,
    ps: &mut ParamStore<B>,
    cfg: &BrainMclipConfig,
    encoder: (&str, usize),
    prefix: &str,
    tokens: usize,
    site: &mut u64,
) -> Result<Trunk> {
    let (h, p) = (cfg.hidden, cfg.dropout);
    let mut next = || {
        *site += 1;
        *site
    };
    let encoder = MlpUnit::new(
        be,
        ps,
        encoder.0,
        encoder.1,
        h,
        Activation::GeluErf,
        p,
        next(),
    )?;
    let blocks = (0..cfg.blocks)
        .map(|i| {
            let name = format!("{prefix}.backbone.{i}");
            ResidualBlock::new(be, ps, &name, h, Activation::GeluErf, p, next())
        })
        .collect::<Result<Vec<_>>>()?;
    let head = Head::new(
        be,
        ps,
        &format!("{prefix}.head"),
        h,
        tokens,
        cfg.embed_dim,
        cfg.head_rank,
    )?;
    Ok(Trunk {
        stack: MlpStack {
            embed: encoder,
            blocks,
        },
        head,
    })
}

impl<B: Backend> BrainMclip<B> {
    /// Build and initialise (PyTorch's default init from Philox stream `seed`).
    pub fn new(be: &B, cfg: BrainMclipConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let mut ps = ParamStore::new(seed);
        let (ns, nd, h) = (cfg.n_semantic, cfg.n_detail, cfg.hidden);
        let mut site = 0u64;
        let text = trunk(
            be,
            &mut ps,
            &cfg,
            ("text.encoder", ns),
            "text",
            cfg.text_tokens,
            &mut site,
        )?;
        let text_decoder = Linear::new(be, &mut ps, "text.decoder", h, ns)?;
        let (mut image, mut dec_s, mut detail) = (None, None, None);
        if cfg.branches != Branches::Text {
            let t = trunk(
                be,
                &mut ps,
                &cfg,
                ("image.encoder_semantic", ns),
                "image",
                cfg.image_tokens,
                &mut site,
            )?;
            if matches!(cfg.branches, Branches::TextSemanticDetail | Branches::Full) {
                site += 1;
                let enc = MlpUnit::new(
                    be,
                    &mut ps,
                    "image.encoder_detail",
                    nd,
                    h,
                    Activation::GeluErf,
                    cfg.dropout,
                    site,
                )?;
                dec_s = Some(Linear::new(be, &mut ps, "image.decoder_semantic", h, ns)?);
                let trunk = Trunk {
                    stack: MlpStack {
                        embed: enc,
                        blocks: t.stack.blocks.clone(),
                    },
                    head: t.head,
                };
                detail = Some((
                    trunk,
                    Linear::new(be, &mut ps, "image.decoder_detail", h, nd)?,
                ));
            } else {
                dec_s = Some(Linear::new(be, &mut ps, "image.decoder_semantic", h, ns)?);
            }
            image = Some(t);
        }
        Ok(BrainMclip {
            cfg,
            params: ps,
            text,
            text_decoder,
            image,
            image_decoder_semantic: dec_s,
            detail,
        })
    }

    /// The configuration.
    pub fn cfg(&self) -> &BrainMclipConfig {
        &self.cfg
    }

    fn cross(&self) -> bool {
        self.cfg.branches == Branches::Full
    }
}

fn path_acts<B: Backend>(be: &B, t: &Trunk, batch: usize) -> Result<PathActs<B>> {
    let w = t.head.out_width();
    Ok(PathActs {
        stack: StackActs::new(be, &t.stack, batch)?,
        head: HeadActs::new(be, &t.head, batch)?,
        out: be.alloc(batch * w)?,
        dout: be.alloc(batch * w)?,
    })
}

fn recon<B: Backend>(be: &B, batch: usize, n: usize) -> Result<Recon<B>> {
    Ok(Recon {
        out: be.alloc(batch * n)?,
        loss: be.alloc(1)?,
    })
}

/// Encoder, backbone and head forward; `mode` differs per pathway so that two passes
/// through the shared backbone draw independent dropout masks.
fn trunk_forward<B: Backend>(
    be: &B,
    params: &[B::Buffer],
    t: &Trunk,
    mode: Mode,
    x: &B::Buffer,
    a: &mut PathActs<B>,
    batch: usize,
) -> Result<()> {
    t.stack.forward(be, params, mode, x, &mut a.stack, batch)?;
    t.head
        .forward(be, params, a.stack.out(), &mut a.head, &mut a.out, batch)
}

/// Head and backbone backward from `a.dout`: the gradient at the encoder output ends
/// in `dh` (overwritten). Parameter gradients accumulate.
fn trunk_backward_to_code<B: Backend>(
    be: &B,
    params: &[B::Buffer],
    grads: &mut GradsMut<'_, B>,
    t: &Trunk,
    mode: Mode,
    a: &mut PathActs<B>,
    s1: &mut B::Buffer,
    s2: &mut B::Buffer,
    dh: &mut B::Buffer,
    dh2: &mut B::Buffer,
    batch: usize,
) -> Result<()> {
    t.head.backward(
        be,
        params,
        grads,
        a.stack.out(),
        &mut a.head,
        &a.dout,
        dh,
        batch,
    )?;
    t.stack
        .backward_blocks(be, params, grads, mode, &a.stack, dh, dh2, s1, s2, batch)
}

/// Pathway `i` of the image branch gets its own dropout stream.
fn pathway(mode: Mode, i: u64) -> Mode {
    match mode {
        Mode::Train { seed, step } => Mode::Train {
            seed: seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            step,
        },
        Mode::Eval => Mode::Eval,
    }
}

/// `d_code += D'(code)ᵀ·∂MSE(F, D(code))` with decoder parameter gradients.
fn recon_backward<B: Backend>(
    be: &B,
    params: &[B::Buffer],
    grads: &mut GradsMut<'_, B>,
    dec: &Linear,
    code: &B::Buffer,
    voxels: &B::Buffer,
    r: &Recon<B>,
    dvox: &mut B::Buffer,
    s1: &mut B::Buffer,
    d_code: &mut B::Buffer,
    batch: usize,
) -> Result<()> {
    be.fill(dvox, 0.0)?;
    be.mse_backward(voxels, &r.out, 1.0, None, Some(&mut *dvox))?;
    dec.backward(be, params, grads, code, dvox, Some(&mut *s1), batch)?;
    be.axpy(1.0, s1, d_code)
}

impl<B: Backend> Model<B> for BrainMclip<B> {
    type Acts = BrainMclipActs<B>;

    fn params(&self) -> &ParamStore<B> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamStore<B> {
        &mut self.params
    }

    fn config(&self) -> ModelConfig {
        ModelConfig::BrainMclip(self.cfg)
    }

    fn slots(&self) -> Vec<Slot> {
        let c = &self.cfg;
        let (tt, ti) = (c.text_tokens * c.embed_dim, c.image_tokens * c.embed_dim);
        let slot = |name, width, target| Slot {
            name,
            width,
            target,
        };
        alloc::vec![
            slot("f_s", c.n_semantic, false),
            slot("f_d", c.n_detail, false),
            slot("e_t", tt, true),
            slot("e_is", ti, true),
            slot("e_id", ti, true),
        ]
    }

    fn acts(&self, be: &B, batch: usize) -> Result<BrainMclipActs<B>> {
        let c = &self.cfg;
        let (ns, nd, h) = (c.n_semantic, c.n_detail, c.hidden);
        let ti = c.image_tokens * c.embed_dim;
        let slots = self.slots();
        let alloc_slot = |i: usize| be.alloc(batch * slots[i].width);
        let has_image = self.image.is_some();
        let both = self.detail.is_some();
        let cross = self.cross();
        let opt_recon = |on: bool, n: usize| -> Result<Option<Recon<B>>> {
            if on {
                Ok(Some(recon(be, batch, n)?))
            } else {
                Ok(None)
            }
        };
        let opt_one = |on: bool| -> Result<Option<B::Buffer>> {
            if on {
                Ok(Some(be.alloc(1)?))
            } else {
                Ok(None)
            }
        };
        Ok(BrainMclipActs {
            batch,
            slots: [
                alloc_slot(F_S)?,
                alloc_slot(F_D)?,
                alloc_slot(E_T)?,
                alloc_slot(E_IS)?,
                alloc_slot(E_ID)?,
            ],
            text: path_acts(be, &self.text, batch)?,
            text_recon: recon(be, batch, ns)?,
            text_align: Alignment::new(
                be,
                c.align,
                batch,
                c.text_tokens,
                c.embed_dim,
                c.temperature,
            )?,
            semantic: match &self.image {
                Some(t) => Some(path_acts(be, t, batch)?),
                None => None,
            },
            detail: match (&self.image, both) {
                (Some(t), true) => Some(path_acts(be, t, batch)?),
                _ => None,
            },
            recon_ss: opt_recon(has_image, ns)?,
            recon_dd: opt_recon(both, nd)?,
            recon_ds: opt_recon(cross, nd)?,
            recon_sd: opt_recon(cross, ns)?,
            mse_is: opt_one(has_image)?,
            mse_id: opt_one(both)?,
            e_i: be.alloc(batch * ti)?,
            e_i_hat: be.alloc(batch * ti)?,
            de_i_hat: be.alloc(batch * ti)?,
            image_align: if has_image {
                Some(Alignment::new(
                    be,
                    c.align,
                    batch,
                    c.image_tokens,
                    c.embed_dim,
                    c.temperature,
                )?)
            } else {
                None
            },
            s1: be.alloc(batch * h)?,
            s2: be.alloc(batch * h)?,
            dh: be.alloc(batch * h)?,
            dh2: be.alloc(batch * h)?,
            dvox_s: be.alloc(batch * ns)?,
            dvox_d: be.alloc(batch * nd)?,
        })
    }

    fn batch_of(&self, acts: &BrainMclipActs<B>) -> usize {
        acts.batch
    }

    fn slot_mut<'a>(&self, acts: &'a mut BrainMclipActs<B>, i: usize) -> &'a mut B::Buffer {
        &mut acts.slots[i]
    }

    fn forward(&self, be: &B, a: &mut BrainMclipActs<B>, mode: Mode) -> Result<()> {
        let params = self.params.values();
        let n = a.batch;
        trunk_forward(be, params, &self.text, mode, &a.slots[F_S], &mut a.text, n)?;
        let (Some(img), Some(sem)) = (&self.image, a.semantic.as_mut()) else {
            return Ok(());
        };
        trunk_forward(be, params, img, pathway(mode, 1), &a.slots[F_S], sem, n)?;
        match (&self.detail, a.detail.as_mut()) {
            (Some((t, _)), Some(det)) => {
                trunk_forward(be, params, t, pathway(mode, 2), &a.slots[F_D], det, n)?;
                be.add(&sem.out, &det.out, &mut a.e_i_hat)?;
                be.scale(&mut a.e_i_hat, 0.5)
            }
            _ => be.copy(&sem.out, &mut a.e_i_hat),
        }
    }

    fn loss(&self, be: &B, a: &mut BrainMclipActs<B>) -> Result<LossTerms> {
        let params = self.params.values();
        let n = a.batch;
        let mut terms: Vec<(&'static str, &B::Buffer)> = Vec::new();
        // Text branch.
        a.text_align.forward(be, &a.slots[E_T], &a.text.out)?;
        let r = &mut a.text_recon;
        self.text_decoder
            .forward(be, params, &a.text.stack.embed.out, &mut r.out, n)?;
        be.mse_forward(&a.slots[F_S], &r.out, &mut r.loss)?;
        // Image branch.
        if let (Some(sem), Some(align)) = (&a.semantic, a.image_align.as_mut()) {
            be.add(&a.slots[E_IS], &a.slots[E_ID], &mut a.e_i)?;
            be.scale(&mut a.e_i, 0.5)?;
            align.forward(be, &a.e_i, &a.e_i_hat)?;
            let dec_s = self
                .image_decoder_semantic
                .as_ref()
                .ok_or_else(no_image_decoder)?;
            if let Some(r) = a.recon_ss.as_mut() {
                dec_s.forward(be, params, &sem.stack.embed.out, &mut r.out, n)?;
                be.mse_forward(&a.slots[F_S], &r.out, &mut r.loss)?;
            }
            if let Some(l) = a.mse_is.as_mut() {
                be.mse_forward(&a.slots[E_IS], &sem.out, l)?;
            }
            if let (Some((_, dec_d)), Some(det)) = (&self.detail, &a.detail) {
                if let Some(r) = a.recon_dd.as_mut() {
                    dec_d.forward(be, params, &det.stack.embed.out, &mut r.out, n)?;
                    be.mse_forward(&a.slots[F_D], &r.out, &mut r.loss)?;
                }
                if let Some(r) = a.recon_ds.as_mut() {
                    dec_d.forward(be, params, &sem.stack.embed.out, &mut r.out, n)?;
                    be.mse_forward(&a.slots[F_D], &r.out, &mut r.loss)?;
                }
                if let Some(r) = a.recon_sd.as_mut() {
                    dec_s.forward(be, params, &det.stack.embed.out, &mut r.out, n)?;
                    be.mse_forward(&a.slots[F_S], &r.out, &mut r.loss)?;
                }
                if let Some(l) = a.mse_id.as_mut() {
                    be.mse_forward(&a.slots[E_ID], &det.out, l)?;
                }
            }
        }
        for (name, buf) in a.text_align.terms() {
            terms.push((text_align_name(name), buf));
        }
        terms.push(("text.recon", &a.text_recon.loss));
        if let Some(align) = &a.image_align {
            for (name, buf) in align.terms() {
                terms.push((image_align_name(name), buf));
            }
        }
        let named = [
            ("image.recon_semantic", a.recon_ss.as_ref().map(|r| &r.loss)),
            ("image.recon_detail", a.recon_dd.as_ref().map(|r| &r.loss)),
            ("image.cross_detail", a.recon_ds.as_ref().map(|r| &r.loss)),
            ("image.cross_semantic", a.recon_sd.as_ref().map(|r| &r.loss)),
            ("image.mse_semantic", a.mse_is.as_ref()),
            ("image.mse_detail", a.mse_id.as_ref()),
        ];
        for (name, buf) in named {
            if let Some(b) = buf {
                terms.push((name, b));
            }
        }
        download_terms(be, &terms)
    }

    fn backward(&mut self, be: &B, a: &mut BrainMclipActs<B>, mode: Mode) -> Result<()> {
        self.params.zero_grads(be)?;
        let cross = self.cross();
        let (params, mut grads) = self.params.split();
        let n = a.batch;
        // ---- text branch: align + reconstruction of F_S from b_S.
        be.fill(&mut a.text.dout, 0.0)?;
        a.text_align
            .backward(be, &a.slots[E_T], &a.text.out, &mut a.text.dout)?;
        trunk_backward_to_code(
            be,
            params,
            &mut grads,
            &self.text,
            mode,
            &mut a.text,
            &mut a.s1,
            &mut a.s2,
            &mut a.dh,
            &mut a.dh2,
            n,
        )?;
        recon_backward(
            be,
            params,
            &mut grads,
            &self.text_decoder,
            &a.text.stack.embed.out,
            &a.slots[F_S],
            &a.text_recon,
            &mut a.dvox_s,
            &mut a.s1,
            &mut a.dh,
            n,
        )?;
        self.text.stack.embed.backward(
            be,
            params,
            &mut grads,
            mode,
            &a.slots[F_S],
            &a.text.stack.embed,
            &a.dh,
            &mut a.s1,
            &mut a.s2,
            None,
            n,
        )?;
        // ---- image branch.
        let (Some(img), Some(sem), Some(align)) =
            (&self.image, a.semantic.as_mut(), a.image_align.as_mut())
        else {
            return Ok(());
        };
        let dec_s = self
            .image_decoder_semantic
            .as_ref()
            .ok_or_else(no_image_decoder)?;
        be.fill(&mut a.de_i_hat, 0.0)?;
        align.backward(be, &a.e_i, &a.e_i_hat, &mut a.de_i_hat)?;
        let half = if a.detail.is_some() { 0.5 } else { 1.0 };
        // Semantic pathway: dê_I,S = half·dÊ_I + ∂MSE(e_I,S, ê_I,S).
        be.fill(&mut sem.dout, 0.0)?;
        be.axpy(half, &a.de_i_hat, &mut sem.dout)?;
        be.mse_backward(&a.slots[E_IS], &sem.out, 1.0, None, Some(&mut sem.dout))?;
        let mode_s = pathway(mode, 1);
        trunk_backward_to_code(
            be, params, &mut grads, img, mode_s, sem, &mut a.s1, &mut a.s2, &mut a.dh, &mut a.dh2,
            n,
        )?;
        if let Some(r) = &a.recon_ss {
            recon_backward(
                be,
                params,
                &mut grads,
                dec_s,
                &sem.stack.embed.out,
                &a.slots[F_S],
                r,
                &mut a.dvox_s,
                &mut a.s1,
                &mut a.dh,
                n,
            )?;
        }
        if let (Some((_, dec_d)), Some(r)) = (&self.detail, &a.recon_ds) {
            if cross {
                recon_backward(
                    be,
                    params,
                    &mut grads,
                    dec_d,
                    &sem.stack.embed.out,
                    &a.slots[F_D],
                    r,
                    &mut a.dvox_d,
                    &mut a.s1,
                    &mut a.dh,
                    n,
                )?;
            }
        }
        img.stack.embed.backward(
            be,
            params,
            &mut grads,
            mode_s,
            &a.slots[F_S],
            &sem.stack.embed,
            &a.dh,
            &mut a.s1,
            &mut a.s2,
            None,
            n,
        )?;
        // Detail pathway.
        let (Some((t, dec_d)), Some(det)) = (&self.detail, a.detail.as_mut()) else {
            return Ok(());
        };
        be.fill(&mut det.dout, 0.0)?;
        be.axpy(half, &a.de_i_hat, &mut det.dout)?;
        be.mse_backward(&a.slots[E_ID], &det.out, 1.0, None, Some(&mut det.dout))?;
        let mode_d = pathway(mode, 2);
        trunk_backward_to_code(
            be, params, &mut grads, t, mode_d, det, &mut a.s1, &mut a.s2, &mut a.dh, &mut a.dh2, n,
        )?;
        if let Some(r) = &a.recon_dd {
            recon_backward(
                be,
                params,
                &mut grads,
                dec_d,
                &det.stack.embed.out,
                &a.slots[F_D],
                r,
                &mut a.dvox_d,
                &mut a.s1,
                &mut a.dh,
                n,
            )?;
        }
        if let Some(r) = &a.recon_sd {
            recon_backward(
                be,
                params,
                &mut grads,
                dec_s,
                &det.stack.embed.out,
                &a.slots[F_S],
                r,
                &mut a.dvox_s,
                &mut a.s1,
                &mut a.dh,
                n,
            )?;
        }
        t.stack.embed.backward(
            be,
            params,
            &mut grads,
            mode_d,
            &a.slots[F_D],
            &det.stack.embed,
            &a.dh,
            &mut a.s1,
            &mut a.s2,
            None,
            n,
        )
    }

    fn outputs<'a>(&self, a: &'a BrainMclipActs<B>) -> Vec<(&'static str, &'a B::Buffer)> {
        let mut v = alloc::vec![("e_t_hat", &a.text.out)];
        if let Some(sem) = &a.semantic {
            v.push(("e_i_hat", &a.e_i_hat));
            v.push(("e_is_hat", &sem.out));
        }
        if let Some(det) = &a.detail {
            v.push(("e_id_hat", &det.out));
        }
        v
    }
}

fn text_align_name(part: &str) -> &'static str {
    match part {
        "mse" => "text.align.mse",
        "cka" => "text.align.cka",
        "sims" => "text.align.sims",
        _ => "text.align.clip",
    }
}

fn image_align_name(part: &str) -> &'static str {
    match part {
        "mse" => "image.align.mse",
        "cka" => "image.align.cka",
        "sims" => "image.align.sims",
        _ => "image.align.clip",
    }
}

/// Download 1-element term buffers and sum them (in f64).
pub(crate) fn download_terms<B: Backend>(
    be: &B,
    terms: &[(&'static str, &B::Buffer)],
) -> Result<LossTerms> {
    let mut out = Vec::with_capacity(terms.len());
    let mut total = 0.0;
    let mut one = [<B::Elem as crate::element::Element>::from_f64(0.0)];
    for (name, buf) in terms {
        be.download(buf, &mut one)?;
        let v = crate::element::Element::to_f64(one[0]);
        total += v;
        out.push((*name, v));
    }
    Ok(LossTerms { total, terms: out })
}
