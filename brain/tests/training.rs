//! Training on the synthetic subject (CPU backend): BrainMCLIP learns a held-out
//! retrieval far above chance, every ablation row trains, HAVIR trains, and a run
//! resumed from a checkpoint continues bit for bit.

use backend_cpu::CpuBackend;
use brain::checkpoint::{save, Checkpoint};
use brain::synthetic::{generate, SyntheticConfig};
use brain_core::metrics::retrieval::retrieval_top1;
use brain_core::model::{Align, BrainMclip, BrainMclipConfig, Branches, Havir, HavirConfig, Model};
use brain_core::train::{predict, AdamWState, LrSchedule, TrainConfig, TrainState, Trainer};
use brain_core::{AdamW, Backend};

fn train_cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        optimizer: AdamW {
            lr: 3e-3,
            weight_decay: 0.01,
            max_grad_norm: Some(1.0),
            ..AdamW::default()
        },
        schedule: LrSchedule::OneCycle {
            pct_start: 0.2,
            div_factor: 25.0,
            final_div_factor: 1e3,
        },
        seed: 5,
        eval_every: 1,
        patience: None,
    }
}

fn mclip_cfg(syn: &SyntheticConfig) -> BrainMclipConfig {
    BrainMclipConfig::small(syn.n_high, syn.n_detail())
}

#[test]
fn brainmclip_small_learns_held_out_retrieval() {
    let be = CpuBackend::new();
    let syn = SyntheticConfig::small(1);
    let subject = generate(&syn).unwrap();
    let model = BrainMclip::new(&be, mclip_cfg(&syn), 3).unwrap();
    println!("BrainMCLIP small: {} parameters", model.params().count());
    let mut t = Trainer::new(&be, model, train_cfg(30)).unwrap();
    let state = t
        .run(&be, &subject.train, Some(&subject.test), &mut ())
        .unwrap()
        .clone();
    let first = state.history[0].eval_loss.unwrap();
    let last = state.history.last().unwrap().eval_loss.unwrap();
    let out = predict(&be, &t.model, &subject.test, 32).unwrap();
    let n = subject.test.len();
    let e_i_hat = &out.iter().find(|(k, _)| k == "e_i_hat").unwrap().1;
    let (is, w) = subject.test.get("e_is").unwrap();
    let (id, _) = subject.test.get("e_id").unwrap();
    let e_i: Vec<f32> = is.iter().zip(id).map(|(a, b)| (a + b) / 2.0).collect();
    let r = retrieval_top1(e_i_hat, &e_i, n, w).unwrap();
    println!(
        "held-out eval loss {first:.4} → {last:.4}; top-1 retrieval image→brain {:.2}, brain→image {:.2} (chance {:.2})",
        r.forward,
        r.backward,
        1.0 / n as f64
    );
    assert!(last < first);
    // Chance is 1/100; far above it means ≥ 20×.
    assert!(r.forward >= 0.2 && r.backward >= 0.2, "{r:?}");
}

#[test]
fn every_ablation_row_trains() {
    let be = CpuBackend::new();
    let syn = SyntheticConfig::small(2);
    let subject = generate(&syn).unwrap();
    let rows = [
        (Branches::Text, Align::Mg),
        (Branches::TextSemantic, Align::Mg),
        (Branches::TextSemanticDetail, Align::Mg),
        (Branches::Full, Align::MseInfoNce),
        (Branches::Full, Align::MseSoftClip),
        (Branches::Full, Align::MseSims),
        (Branches::Full, Align::MseCka),
        (Branches::Full, Align::MseCkaSims),
        (Branches::Full, Align::Mg),
    ];
    for (branches, align) in rows {
        let mut cfg = mclip_cfg(&syn);
        cfg.branches = branches;
        cfg.align = align;
        cfg.temperature = 0.05;
        let model = BrainMclip::new(&be, cfg, 4).unwrap();
        let mut t = Trainer::new(&be, model, train_cfg(6)).unwrap();
        let s = t
            .run(&be, &subject.train, Some(&subject.test), &mut ())
            .unwrap();
        let (a, b) = (
            s.history[0].train_loss,
            s.history.last().unwrap().train_loss,
        );
        println!("{branches:?} / {align:?}: train loss {a:.4} → {b:.4}");
        assert!(b < a, "{branches:?} / {align:?} did not train: {a} → {b}");
    }
}

#[test]
fn havir_small_trains() {
    let be = CpuBackend::new();
    let syn = SyntheticConfig::small(3);
    let subject = generate(&syn).unwrap();
    let model = Havir::new(&be, HavirConfig::small(syn.n_low, syn.n_high), 6).unwrap();
    println!("HAVIR small: {} parameters", model.params().count());
    let mut t = Trainer::new(&be, model, train_cfg(8)).unwrap();
    let s = t
        .run(&be, &subject.train, Some(&subject.test), &mut ())
        .unwrap();
    let (a, b) = (
        s.history[0].eval_loss.unwrap(),
        s.history.last().unwrap().eval_loss.unwrap(),
    );
    println!("HAVIR held-out loss {a:.4} → {b:.4}");
    assert!(b < a);
}

fn params_of<B: Backend, M: Model<B>>(be: &B, m: &M) -> Vec<Vec<B::Elem>> {
    m.params()
        .values()
        .iter()
        .map(|v| be.download_vec(v).unwrap())
        .collect()
}

#[test]
fn resume_from_checkpoint_is_bit_identical() {
    let be = CpuBackend::new();
    let syn = SyntheticConfig::small(4);
    let subject = generate(&syn).unwrap();
    let mut cfg = mclip_cfg(&syn);
    cfg.dropout = 0.2; // masks must line up across the restart too
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.safetensors");

    // Uninterrupted: 4 epochs.
    let mut full = Trainer::new(&be, BrainMclip::new(&be, cfg, 8).unwrap(), train_cfg(4)).unwrap();
    full.run(&be, &subject.train, Some(&subject.test), &mut ())
        .unwrap();

    // Interrupted after 2 epochs, checkpointed, restored into fresh objects.
    let mut first = Trainer::new(&be, BrainMclip::new(&be, cfg, 8).unwrap(), train_cfg(4)).unwrap();
    first
        .run_until(&be, &subject.train, Some(&subject.test), &mut (), 2)
        .unwrap();
    save(&path, &be, &first.model, Some(&first.opt), &first.state).unwrap();
    drop(first);

    let ck = Checkpoint::open(&path).unwrap();
    let mut model = BrainMclip::new(&be, cfg, 999).unwrap(); // other init, overwritten
    let mut opt = AdamWState::new(&be, model.params(), train_cfg(4).optimizer).unwrap();
    let state: TrainState = ck.load_training(&be, &mut model, &mut opt).unwrap();
    assert_eq!(state.epoch, 2);
    let mut resumed = Trainer::resume(model, opt, state, train_cfg(4));
    resumed
        .run(&be, &subject.train, Some(&subject.test), &mut ())
        .unwrap();

    assert_eq!(resumed.state, full.state, "training history differs");
    assert!(
        params_of(&be, &resumed.model) == params_of(&be, &full.model),
        "parameters differ"
    );
    let (m1, v1) = resumed.opt.moments();
    let (m2, v2) = full.opt.moments();
    for i in 0..m1.len() {
        assert!(be.download_vec(&m1[i]).unwrap() == be.download_vec(&m2[i]).unwrap());
        assert!(be.download_vec(&v1[i]).unwrap() == be.download_vec(&v2[i]).unwrap());
    }
}

/// With nothing to learn (learning rate 0) the held-out loss never improves, so
/// patience 2 stops the run after the third epoch: one best evaluation, two bad ones.
#[test]
fn early_stopping_ends_a_run_that_stopped_improving() {
    let be = CpuBackend::new();
    let syn = SyntheticConfig::small(5);
    let subject = generate(&syn).unwrap();
    let mut cfg = train_cfg(10);
    cfg.optimizer.lr = 0.0;
    cfg.schedule = LrSchedule::Constant;
    cfg.patience = Some(2);
    let model = BrainMclip::new(&be, mclip_cfg(&syn), 1).unwrap();
    let mut t = Trainer::new(&be, model, cfg).unwrap();
    let s = t
        .run(&be, &subject.train, Some(&subject.test), &mut ())
        .unwrap();
    assert!(s.stopped_early);
    assert_eq!(s.epoch, 3);
    assert_eq!(s.bad_evals, 2);
}
