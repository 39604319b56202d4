//! HAVIR (paper 003, Section III, Appendix A/B): a Structural Generator from early
//! visual voxels to a diffusion latent z' and a Semantic Extractor from high-level
//! voxels to CLIP image and text embeddings. Structure and names: docs/models.md.

use super::brainmclip::download_terms;
use super::config::{HavirConfig, ModelConfig};
use super::{LossTerms, Model, Slot};
use crate::backend::Backend;
use crate::error::Result;
use crate::loss::contrastive::ClipLoss;
use crate::nn::{
    ChannelMix, ChannelMixScratch, GroupNorm, Linear, MlpStack, MlpUnit, Mode, NormStats,
    ParamStore, ResidualBlock, StackActs,
};
use crate::ops::{
    Activation, ContrastiveLoss, ImageShape, SobelLossForm, UpsampleMode, UpsampleShape,
};
use alloc::format;
use alloc::vec::Vec;

const F_LOW: usize = 0;
const F_HIGH: usize = 1;
const Z: usize = 2;
const E_IMG: usize = 3;
const E_CAP: usize = 4;

/// `{prefix}.embed` and `{prefix}.blocks.{i}` (site numbers continue from `site`).
fn stack<B: Backend>(
    be: &B,
    ps: &mut ParamStore<B>,
    prefix: &str,
    n_in: usize,
    cfg: &HavirConfig,
    blocks: usize,
    act: Activation,
    site: &mut u64,
) -> Result<MlpStack> {
    let (h, p) = (cfg.hidden, cfg.dropout);
    *site += 1;
    let embed = MlpUnit::new(be, ps, &format!("{prefix}.embed"), n_in, h, act, p, *site)?;
    let blocks = (0..blocks)
        .map(|i| {
            *site += 1;
            ResidualBlock::new(be, ps, &format!("{prefix}.blocks.{i}"), h, act, p, *site)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(MlpStack { embed, blocks })
}

/// HAVIR on backend `B`.
pub struct Havir<B: Backend> {
    cfg: HavirConfig,
    params: ParamStore<B>,
    structural: MlpStack,
    to_maps: Linear,
    norm: GroupNorm,
    mix: ChannelMix,
    semantic: MlpStack,
    image_head: Linear,
    text_head: Linear,
}

/// Everything HAVIR needs for batches of one size.
pub struct HavirActs<B: Backend> {
    batch: usize,
    slots: [B::Buffer; 5],
    st: StackActs<B>,
    maps: B::Buffer,
    normed: B::Buffer,
    stats: NormStats<B>,
    up: B::Buffer,
    z_prime: B::Buffer,
    dz: B::Buffer,
    dup: B::Buffer,
    dnormed: B::Buffer,
    dmaps: B::Buffer,
    mix_scratch: ChannelMixScratch<B>,
    mse_z: B::Buffer,
    sobel: B::Buffer,
    se: StackActs<B>,
    e_img: B::Buffer,
    e_cap: B::Buffer,
    de_img: B::Buffer,
    de_cap: B::Buffer,
    clip_img: ClipLoss<B>,
    clip_cap: ClipLoss<B>,
    clip_img_loss: B::Buffer,
    clip_cap_loss: B::Buffer,
    mse_img: B::Buffer,
    mse_cap: B::Buffer,
    s1: B::Buffer,
    s2: B::Buffer,
    d: B::Buffer,
    d2: B::Buffer,
}

impl<B: Backend> Havir<B> {
    /// Build and initialise (PyTorch's default init from Philox stream `seed`).
    pub fn new(be: &B, cfg: HavirConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let mut ps = ParamStore::new(seed);
        let h = cfg.hidden;
        let mut site = 0;
        let structural = stack(
            be,
            &mut ps,
            "structural",
            cfg.n_low,
            &cfg,
            cfg.structural_blocks,
            Activation::Silu,
            &mut site,
        )?;
        let s2 = cfg.map_size * cfg.map_size;
        let to_maps = Linear::new(be, &mut ps, "structural.to_maps", h, cfg.channels * s2)?;
        let norm = GroupNorm::new(be, &mut ps, "structural.norm", cfg.channels, cfg.groups, s2)?;
        let l2 = cfg.latent_size * cfg.latent_size;
        let mix = ChannelMix::new(
            be,
            &mut ps,
            "structural.mix",
            cfg.channels,
            cfg.latent_channels,
            l2,
        )?;
        let semantic = stack(
            be,
            &mut ps,
            "semantic",
            cfg.n_high,
            &cfg,
            cfg.semantic_blocks,
            Activation::GeluErf,
            &mut site,
        )?;
        let d = cfg.embed_dim;
        let image_head = Linear::new(be, &mut ps, "semantic.image_head", h, cfg.image_tokens * d)?;
        let text_head = Linear::new(be, &mut ps, "semantic.text_head", h, cfg.text_tokens * d)?;
        Ok(Havir {
            cfg,
            params: ps,
            structural,
            to_maps,
            norm,
            mix,
            semantic,
            image_head,
            text_head,
        })
    }

    /// The configuration.
    pub fn cfg(&self) -> &HavirConfig {
        &self.cfg
    }

    fn upsample(&self, batch: usize) -> UpsampleShape {
        UpsampleShape {
            batch,
            channels: self.cfg.channels,
            height: self.cfg.map_size,
            width: self.cfg.map_size,
            factor: self.cfg.latent_size / self.cfg.map_size,
        }
    }

    fn latent(&self, batch: usize) -> ImageShape {
        ImageShape {
            batch,
            channels: self.cfg.latent_channels,
            height: self.cfg.latent_size,
            width: self.cfg.latent_size,
        }
    }

    /// Per-voxel contribution of the Structural Generator's input (HAVIR's
    /// interpretability map): the L2 norm of each voxel's column of the first Linear.
    pub fn voxel_contributions(&self, be: &B) -> Result<Vec<f64>> {
        let w = be.download_vec(self.params.value(self.structural.embed.linear.weight))?;
        Ok(column_norms::<B>(&w, self.cfg.hidden, self.cfg.n_low))
    }

    /// The same map for the Semantic Extractor's input voxels.
    pub fn semantic_voxel_contributions(&self, be: &B) -> Result<Vec<f64>> {
        let w = be.download_vec(self.params.value(self.semantic.embed.linear.weight))?;
        Ok(column_norms::<B>(&w, self.cfg.hidden, self.cfg.n_high))
    }
}

fn column_norms<B: Backend>(w: &[B::Elem], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = alloc::vec![0.0f64; cols];
    for r in 0..rows {
        for (c, o) in out.iter_mut().enumerate() {
            let v = crate::element::Element::to_f64(w[r * cols + c]);
            *o += v * v;
        }
    }
    out.iter().map(|s| libm::sqrt(*s)).collect()
}

impl<B: Backend> Model<B> for Havir<B> {
    type Acts = HavirActs<B>;

    fn params(&self) -> &ParamStore<B> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamStore<B> {
        &mut self.params
    }

    fn config(&self) -> ModelConfig {
        ModelConfig::Havir(self.cfg)
    }

    fn slots(&self) -> Vec<Slot> {
        let c = &self.cfg;
        let slot = |name, width, target| Slot {
            name,
            width,
            target,
        };
        alloc::vec![
            slot("f_low", c.n_low, false),
            slot("f_high", c.n_high, false),
            slot("z", c.latent_channels * c.latent_size * c.latent_size, true),
            slot("e_img", c.image_tokens * c.embed_dim, true),
            slot("e_cap", c.text_tokens * c.embed_dim, true),
        ]
    }

    fn acts(&self, be: &B, n: usize) -> Result<HavirActs<B>> {
        let c = &self.cfg;
        let h = c.hidden;
        let slots = self.slots();
        let maps = n * c.channels * c.map_size * c.map_size;
        let up = self.upsample(n).output_len();
        let z = n * slots[Z].width;
        let (wi, wc) = (slots[E_IMG].width, slots[E_CAP].width);
        let soft = ContrastiveLoss::SoftClip;
        Ok(HavirActs {
            batch: n,
            slots: [
                be.alloc(n * slots[0].width)?,
                be.alloc(n * slots[1].width)?,
                be.alloc(n * slots[2].width)?,
                be.alloc(n * slots[3].width)?,
                be.alloc(n * slots[4].width)?,
            ],
            st: StackActs::new(be, &self.structural, n)?,
            maps: be.alloc(maps)?,
            normed: be.alloc(maps)?,
            stats: NormStats::new(be, n * c.groups)?,
            up: be.alloc(up)?,
            z_prime: be.alloc(z)?,
            dz: be.alloc(z)?,
            dup: be.alloc(up)?,
            dnormed: be.alloc(maps)?,
            dmaps: be.alloc(maps)?,
            mix_scratch: ChannelMixScratch::new(be, &self.mix, n)?,
            mse_z: be.alloc(1)?,
            sobel: be.alloc(1)?,
            se: StackActs::new(be, &self.semantic, n)?,
            e_img: be.alloc(n * wi)?,
            e_cap: be.alloc(n * wc)?,
            de_img: be.alloc(n * wi)?,
            de_cap: be.alloc(n * wc)?,
            clip_img: ClipLoss::new(be, n, wi, soft, c.temperature)?,
            clip_cap: ClipLoss::new(be, n, wc, soft, c.temperature)?,
            clip_img_loss: be.alloc(1)?,
            clip_cap_loss: be.alloc(1)?,
            mse_img: be.alloc(1)?,
            mse_cap: be.alloc(1)?,
            s1: be.alloc(n * h)?,
            s2: be.alloc(n * h)?,
            d: be.alloc(n * h)?,
            d2: be.alloc(n * h)?,
        })
    }

    fn batch_of(&self, acts: &HavirActs<B>) -> usize {
        acts.batch
    }

    fn slot_mut<'a>(&self, acts: &'a mut HavirActs<B>, i: usize) -> &'a mut B::Buffer {
        &mut acts.slots[i]
    }

    fn forward(&self, be: &B, a: &mut HavirActs<B>, mode: Mode) -> Result<()> {
        let p = self.params.values();
        let n = a.batch;
        // Structural Generator.
        self.structural
            .forward(be, p, mode, &a.slots[F_LOW], &mut a.st, n)?;
        self.to_maps.forward(be, p, a.st.out(), &mut a.maps, n)?;
        self.norm
            .forward(be, p, &a.maps, &mut a.normed, &mut a.stats, n)?;
        be.upsample_forward(
            UpsampleMode::Bilinear,
            &self.upsample(n),
            &a.normed,
            &mut a.up,
        )?;
        self.mix.forward(be, p, &a.up, &mut a.z_prime, n)?;
        // Semantic Extractor.
        self.semantic
            .forward(be, p, mode, &a.slots[F_HIGH], &mut a.se, n)?;
        self.image_head
            .forward(be, p, a.se.out(), &mut a.e_img, n)?;
        self.text_head.forward(be, p, a.se.out(), &mut a.e_cap, n)
    }

    fn loss(&self, be: &B, a: &mut HavirActs<B>) -> Result<LossTerms> {
        be.mse_forward(&a.z_prime, &a.slots[Z], &mut a.mse_z)?;
        be.sobel_loss_forward(
            &a.z_prime,
            &a.slots[Z],
            &self.latent(a.batch),
            SobelLossForm::Magnitude,
            &mut a.sobel,
        )?;
        a.clip_img
            .forward(be, &a.e_img, &a.slots[E_IMG], &mut a.clip_img_loss)?;
        be.mse_forward(&a.e_img, &a.slots[E_IMG], &mut a.mse_img)?;
        a.clip_cap
            .forward(be, &a.e_cap, &a.slots[E_CAP], &mut a.clip_cap_loss)?;
        be.mse_forward(&a.e_cap, &a.slots[E_CAP], &mut a.mse_cap)?;
        download_terms(
            be,
            &[
                ("structural.mse", &a.mse_z),
                ("structural.sobel", &a.sobel),
                ("semantic.image.softclip", &a.clip_img_loss),
                ("semantic.image.mse", &a.mse_img),
                ("semantic.text.softclip", &a.clip_cap_loss),
                ("semantic.text.mse", &a.mse_cap),
            ],
        )
    }

    fn backward(&mut self, be: &B, a: &mut HavirActs<B>, mode: Mode) -> Result<()> {
        self.params.zero_grads(be)?;
        let n = a.batch;
        let latent = self.latent(n);
        let up = self.upsample(n);
        let (p, mut g) = self.params.split();
        // Structural Generator: dz' from MSE + Sobel, back through mix, upsampling,
        // GroupNorm, the map projection and the stack.
        be.fill(&mut a.dz, 0.0)?;
        be.mse_backward(&a.z_prime, &a.slots[Z], 1.0, Some(&mut a.dz), None)?;
        be.sobel_loss_backward(
            &a.z_prime,
            &a.slots[Z],
            &latent,
            SobelLossForm::Magnitude,
            1.0,
            Some(&mut a.dz),
            None,
        )?;
        self.mix.backward(
            be,
            p,
            &mut g,
            &a.up,
            &a.dz,
            &mut a.dup,
            &mut a.mix_scratch,
            n,
        )?;
        be.upsample_backward(UpsampleMode::Bilinear, &up, &a.dup, &mut a.dnormed)?;
        self.norm.backward(
            be,
            p,
            &mut g,
            &a.maps,
            &a.stats,
            &a.dnormed,
            &mut a.dmaps,
            n,
        )?;
        self.to_maps
            .backward(be, p, &mut g, a.st.out(), &a.dmaps, Some(&mut a.d), n)?;
        self.structural.backward(
            be,
            p,
            &mut g,
            mode,
            &a.slots[F_LOW],
            &a.st,
            &mut a.d,
            &mut a.d2,
            &mut a.s1,
            &mut a.s2,
            n,
        )?;
        // Semantic Extractor: both heads feed the stack output.
        be.fill(&mut a.de_img, 0.0)?;
        a.clip_img.backward(
            be,
            &a.e_img,
            &a.slots[E_IMG],
            1.0,
            Some(&mut a.de_img),
            None,
        )?;
        be.mse_backward(&a.e_img, &a.slots[E_IMG], 1.0, Some(&mut a.de_img), None)?;
        be.fill(&mut a.de_cap, 0.0)?;
        a.clip_cap.backward(
            be,
            &a.e_cap,
            &a.slots[E_CAP],
            1.0,
            Some(&mut a.de_cap),
            None,
        )?;
        be.mse_backward(&a.e_cap, &a.slots[E_CAP], 1.0, Some(&mut a.de_cap), None)?;
        self.image_head
            .backward(be, p, &mut g, a.se.out(), &a.de_img, Some(&mut a.d), n)?;
        self.text_head
            .backward(be, p, &mut g, a.se.out(), &a.de_cap, Some(&mut a.s1), n)?;
        be.axpy(1.0, &a.s1, &mut a.d)?;
        self.semantic.backward(
            be,
            p,
            &mut g,
            mode,
            &a.slots[F_HIGH],
            &a.se,
            &mut a.d,
            &mut a.d2,
            &mut a.s1,
            &mut a.s2,
            n,
        )
    }

    fn outputs<'a>(&self, a: &'a HavirActs<B>) -> Vec<(&'static str, &'a B::Buffer)> {
        alloc::vec![
            ("z_prime", &a.z_prime),
            ("e_img", &a.e_img),
            ("e_cap", &a.e_cap),
        ]
    }
}
