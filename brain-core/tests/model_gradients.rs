//! Whole-model gradients of BrainMCLIP and HAVIR against central finite differences
//! of their own loss, in f64 on the reference backend, for every ablation row.

use brain_core::model::{Align, BrainMclip, BrainMclipConfig, Branches, Havir, HavirConfig, Model};
use brain_core::nn::Mode;
use brain_core::reference::ReferenceBackend;
use brain_core::{philox, Backend};

type Be = ReferenceBackend<f64>;

fn fill_slots<M: Model<Be>>(be: &Be, m: &M, acts: &mut M::Acts, seed: u64) {
    for (i, slot) in m.slots().iter().enumerate() {
        let n = m.batch_of(acts) * slot.width;
        let data: Vec<f64> = (0..n as u64)
            .map(|k| {
                let (a, _) = philox::box_muller::<f64>(
                    philox::word(seed, i as u64, 2 * k),
                    philox::word(seed, i as u64, 2 * k + 1),
                );
                a
            })
            .collect();
        be.write(m.slot_mut(acts, i), &data).unwrap();
    }
}

fn loss_at<M: Model<Be>>(be: &Be, m: &M, acts: &mut M::Acts, mode: Mode) -> f64 {
    m.forward(be, acts, mode).unwrap();
    m.loss(be, acts).unwrap().total
}

/// Compare analytic gradients with central differences at a few elements of every
/// parameter tensor. Tolerance: f64 with h = 1e-5 leaves ~1e-9 truncation + rounding
/// error on O(1) losses; 1e-6 relative (plus 1e-8 absolute) is far above that and far
/// below any real mistake.
fn check_model<M: Model<Be>>(be: &Be, m: &mut M, batch: usize, seed: u64, mode: Mode) {
    let mut acts = m.acts(be, batch).unwrap();
    fill_slots(be, m, &mut acts, seed);
    m.forward(be, &mut acts, mode).unwrap();
    let terms = m.loss(be, &mut acts).unwrap();
    assert!(terms.total.is_finite());
    m.backward(be, &mut acts, mode).unwrap();
    let infos = m.params().infos().to_vec();
    let h = 1e-5;
    for (t, info) in infos.iter().enumerate() {
        let id = m.params().find(&info.name).unwrap();
        let grad = be.download_vec(m.params().grad(id)).unwrap();
        let orig = be.download_vec(m.params().value(id)).unwrap();
        for probe in 0..3u64 {
            let i = (philox::word(seed, 1000 + t as u64, probe) as usize) % info.len;
            let mut v = orig.clone();
            v[i] = orig[i] + h;
            be.write(m.params_mut().value_mut(id), &v).unwrap();
            let up = loss_at(be, m, &mut acts, mode);
            v[i] = orig[i] - h;
            be.write(m.params_mut().value_mut(id), &v).unwrap();
            let down = loss_at(be, m, &mut acts, mode);
            be.write(m.params_mut().value_mut(id), &orig).unwrap();
            let fd = (up - down) / (2.0 * h);
            let err = (fd - grad[i]).abs();
            assert!(
                err <= 1e-8 + 1e-6 * fd.abs().max(grad[i].abs()),
                "{}[{i}]: analytic {} vs finite difference {fd}",
                info.name,
                grad[i]
            );
        }
    }
}

fn tiny_brainmclip(branches: Branches, align: Align, head_rank: Option<usize>) -> BrainMclipConfig {
    BrainMclipConfig {
        n_semantic: 7,
        n_detail: 11,
        hidden: 6,
        blocks: 2,
        text_tokens: 3,
        image_tokens: 4,
        embed_dim: 5,
        head_rank,
        dropout: 0.0,
        branches,
        align,
        temperature: 0.125,
    }
}

#[test]
fn brainmclip_every_branch_row() {
    let be = Be::new();
    for (i, b) in [
        Branches::Text,
        Branches::TextSemantic,
        Branches::TextSemanticDetail,
        Branches::Full,
    ]
    .into_iter()
    .enumerate()
    {
        let mut m =
            BrainMclip::new(&be, tiny_brainmclip(b, Align::Mg, None), 7 + i as u64).unwrap();
        check_model(&be, &mut m, 5, 11 + i as u64, Mode::Eval);
    }
}

#[test]
fn brainmclip_every_alignment_loss() {
    let be = Be::new();
    for (i, a) in Align::ALL.into_iter().enumerate() {
        let rank = if i % 2 == 0 { Some(2) } else { None };
        let mut m =
            BrainMclip::new(&be, tiny_brainmclip(Branches::Full, a, rank), 3 + i as u64).unwrap();
        check_model(&be, &mut m, 5, 21 + i as u64, Mode::Eval);
    }
}

#[test]
fn havir_gradients() {
    let be = Be::new();
    let cfg = HavirConfig {
        n_low: 9,
        n_high: 7,
        hidden: 6,
        structural_blocks: 1,
        semantic_blocks: 2,
        channels: 4,
        map_size: 2,
        groups: 2,
        latent_size: 6,
        latent_channels: 4,
        image_tokens: 3,
        text_tokens: 2,
        embed_dim: 4,
        dropout: 0.0,
        temperature: 0.125,
    };
    let mut m = Havir::new(&be, cfg, 5).unwrap();
    check_model(&be, &mut m, 4, 9, Mode::Eval);
}

/// Dropout on: masks are a pure function of (seed, step, site), so the loss is a
/// deterministic function of the parameters and the same check applies.
#[test]
fn gradients_with_dropout_masks() {
    let be = Be::new();
    let mode = Mode::Train { seed: 99, step: 3 };
    let mut cfg = tiny_brainmclip(Branches::Full, Align::Mg, None);
    cfg.dropout = 0.3;
    let mut m = BrainMclip::new(&be, cfg, 1).unwrap();
    check_model(&be, &mut m, 5, 2, mode);
}

/// The analytic parameter counts of the configs agree with the built models.
#[test]
fn param_counts_match_the_configs() {
    let be = ReferenceBackend::<f32>::new();
    for b in [
        Branches::Text,
        Branches::TextSemantic,
        Branches::TextSemanticDetail,
        Branches::Full,
    ] {
        for rank in [None, Some(3)] {
            let cfg = tiny_brainmclip(b, Align::Mg, rank);
            let m = BrainMclip::new(&be, cfg, 0).unwrap();
            assert_eq!(m.params().count(), cfg.param_count(), "{b:?} {rank:?}");
        }
    }
    let cfg = HavirConfig::small(30, 20);
    assert_eq!(
        Havir::new(&be, cfg, 0).unwrap().params().count(),
        cfg.param_count()
    );
    let summary = brain_core::model::param_summary(Havir::new(&be, cfg, 0).unwrap().params());
    assert!(
        summary.contains("structural.embed") && summary.contains("total"),
        "{summary}"
    );
}
