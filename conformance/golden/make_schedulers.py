#!/usr/bin/env python3
"""Golden vectors for the diffusion schedulers (SPEC section 4, "Diffusion"), from diffusers.

Run from the repository root:  python3 conformance/golden/make_schedulers.py
Writes conformance/golden/schedulers.json next to this script. Deterministic (fixed seeds),
CPU only, no model download (only DDPMScheduler / DDIMScheduler objects are built; the
img2img start logic is StableDiffusionImg2ImgPipeline.get_timesteps, reproduced verbatim).
Requires: torch, diffusers, numpy.

Precision convention (read this before choosing tolerances):
  diffusers keeps betas / alphas / alphas_cumprod in float32 (torch.linspace(..., float32),
  torch.cumprod in float32) and computes the per-step scalars (alpha_prod_t ** 0.5, ...) as
  float32 0-dim tensors. Every input tensor here is drawn in float32 (stored exactly in the
  JSON as float64), and the plain output names ("betas", "alphas_cumprod", "prev_sample",
  "pred_original_sample", "noisy") are diffusers' own float32 results, cast to float64 for
  JSON. Expect ~1e-6 relative agreement with an exact implementation (alphas_cumprod near
  t = 999 of the cosine schedule is the worst, ~1e-5 relative).
  The "*_f64" outputs are the SAME diffusers code run with float64 inputs (the same float32
  values upcast) after replacing betas / alphas / alphas_cumprod / final_alpha_cumprod / one
  with float64 recomputations of the schedule (numpy, same formulas): an f64 implementation
  of the formulas should match those to ~1e-12.

Kernels, params and tensors:
  schedule       params {config, beta_schedule, beta_start, beta_end, num_train_timesteps}
                 tensors betas, alphas_cumprod [1000] (float32 values), betas_f64, alphas_cumprod_f64
  timesteps      params {timestep_spacing, steps_offset, num_inference_steps, num_train_timesteps,
                 same_for_ddpm}
                 tensors timesteps [N] (DDIMScheduler.set_timesteps; DDPMScheduler gives the same),
                 ddim_prev_timesteps [N] (t - num_train // N, what DDIMScheduler.step uses; < 0
                 means "use final_alpha_cumprod"), ddpm_prev_timesteps [N] (the next entry of the
                 list, -1 after the last: what DDPMScheduler.step uses once set_timesteps was called)
  ddim_step      params {config, beta_schedule, beta_start, beta_end, num_train_timesteps,
                 clip_sample, clip_sample_range, set_alpha_to_one, steps_offset, timestep_spacing,
                 num_inference_steps, prediction_type, eta, timestep, timestep_index, prev_timestep}
                 tensors model_output, sample, variance_noise (eta > 0 only) [2, 4, 5, 6],
                 prev_sample, pred_original_sample, prev_sample_f64, pred_original_sample_f64
  ddpm_step      params {config, beta_schedule, beta_start, beta_end, num_train_timesteps,
                 variance_type, clip_sample, clip_sample_range, prediction_type, steps_offset,
                 timestep_spacing, num_inference_steps, timestep, timestep_index, prev_timestep,
                 adds_noise, generator_seed}
                 tensors model_output, sample, noise [1, 4, 5, 3], prev_sample, pred_original_sample,
                 prev_sample_f64, pred_original_sample_f64.
                 "noise" is exactly what step() drew from torch.Generator().manual_seed(generator_seed)
                 (regenerated with diffusers.utils.torch_utils.randn_tensor and checked bit-for-bit).
                 At t = 0 (adds_noise false) step() draws nothing and adds nothing; the stored noise
                 must then be ignored.
  add_noise      params {config, ...schedule fields}; tensors original, noise [B, 4, 5, 3],
                 timesteps [B] (per-sample, as floats), noisy, noisy_f64
  img2img_start  params {config, timestep_spacing, steps_offset, num_inference_steps, strength,
                 init_timestep}; tensors timesteps (the remaining list, may be empty: shape [0]),
                 t_start [1], num_steps [1] (= N - t_start)
  cfg            tensors noise_uncond, noise_cond [2, 4, 5, 3], noise_pred; params guidance_scale
"""
import json
import math
import os
import sys
from unittest import mock

import diffusers
import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.schedulers import scheduling_ddpm
from diffusers.utils.torch_utils import randn_tensor

SEED = 20240613
torch.manual_seed(SEED)
torch.use_deterministic_algorithms(True)
F32, F64 = torch.float32, torch.float64

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schedulers.json")

CONFIGS = {
    "sd": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000),
    "linear": dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, num_train_timesteps=1000),
    "cos": dict(beta_schedule="squaredcos_cap_v2", beta_start=0.0001, beta_end=0.02, num_train_timesteps=1000),
}


def tj(t):
    t = torch.as_tensor(t).detach().to(F64).contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


cases = []


def add(kernel, name, params, tensors):
    assert all(c["name"] != name for c in cases), name
    for k, v in tensors.items():
        assert torch.isfinite(torch.as_tensor(v, dtype=F64)).all(), (name, k)
    cases.append({"kernel": kernel, "name": name, "params": params,
                  "tensors": {k: tj(v) for k, v in tensors.items()}})


def randn32(*shape):
    return torch.randn(*shape, dtype=F32)


def schedule_f64(cfg):
    """betas / alphas_cumprod in float64 by the same formulas diffusers uses."""
    n = cfg["num_train_timesteps"]
    s = cfg["beta_schedule"]
    if s == "linear":
        betas = np.linspace(cfg["beta_start"], cfg["beta_end"], n, dtype=np.float64)
    elif s == "scaled_linear":
        betas = np.linspace(cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, n, dtype=np.float64) ** 2
    elif s == "squaredcos_cap_v2":
        def abar(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = np.array([min(1 - abar((i + 1) / n) / abar(i / n), 0.999) for i in range(n)])
    else:
        raise ValueError(s)
    return betas, np.cumprod(1.0 - betas)


def to_f64(sched, cfg):
    """Replace a scheduler's float32 schedule tensors by float64 recomputations (in place)."""
    betas, ac = schedule_f64(cfg)
    sched.betas = torch.tensor(betas, dtype=F64)
    sched.alphas = 1.0 - sched.betas
    sched.alphas_cumprod = torch.tensor(ac, dtype=F64)
    sched.one = torch.tensor(1.0, dtype=F64)
    if hasattr(sched, "final_alpha_cumprod"):
        sched.final_alpha_cumprod = (torch.tensor(1.0, dtype=F64) if sched.config.set_alpha_to_one
                                     else sched.alphas_cumprod[0])
    return sched


# ---------------------------------------------------------------- schedule
for cname, cfg in CONFIGS.items():
    s = DDPMScheduler(**cfg)
    s2 = DDIMScheduler(**cfg)
    assert s.betas.dtype == F32 and s.alphas_cumprod.dtype == F32
    assert torch.equal(s.betas, s2.betas) and torch.equal(s.alphas_cumprod, s2.alphas_cumprod)
    b64, ac64 = schedule_f64(cfg)
    assert np.allclose(s.betas.double().numpy(), b64, rtol=1e-6, atol=0)
    assert np.allclose(s.alphas_cumprod.double().numpy(), ac64, rtol=1e-4, atol=1e-9)
    add("schedule", f"schedule_{cname}", {"config": cname, **cfg},
        {"betas": s.betas, "alphas_cumprod": s.alphas_cumprod,
         "betas_f64": torch.tensor(b64), "alphas_cumprod_f64": torch.tensor(ac64)})

# ---------------------------------------------------------------- timesteps
SKIPPED = []
for spacing in ("leading", "trailing", "linspace"):
    for off in (0, 1):
        for N in (50, 37, 1000):
            kw = dict(num_train_timesteps=1000, timestep_spacing=spacing, steps_offset=off)
            d = DDIMScheduler(**kw)
            d.set_timesteps(N)
            p = DDPMScheduler(**kw)
            p.set_timesteps(N)
            ts = d.timesteps.clone()
            assert ts.dtype == torch.int64 and len(ts) == N, (spacing, off, N, len(ts))
            if int(ts.max()) >= 1000 or int(ts.min()) < 0:
                # leading + steps_offset 1 + N = 1000 gives t = 1000: out of range for
                # alphas_cumprod (step() would raise IndexError). Not a valid configuration.
                SKIPPED.append((spacing, off, N, int(ts.max())))
                continue
            same = torch.equal(ts, p.timesteps)
            ddim_prev = ts - 1000 // N
            ddpm_prev = torch.tensor([int(p.previous_timestep(int(t))) for t in ts])
            add("timesteps", f"timesteps_{spacing}_off{off}_n{N}",
                {"timestep_spacing": spacing, "steps_offset": off, "num_inference_steps": N,
                 "num_train_timesteps": 1000, "same_for_ddpm": same},
                {"timesteps": ts, "ddim_prev_timesteps": ddim_prev, "ddpm_prev_timesteps": ddpm_prev})
print("skipped timestep configs (t out of range):", SKIPPED)

# HAVIR / SPEC check: N = 50, leading, steps_offset 1
_d = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="leading", steps_offset=1)
_d.set_timesteps(50)
assert int(_d.timesteps[0]) == 981 and int(_d.timesteps[-1]) == 1

# ---------------------------------------------------------------- ddim_step
DDIM_CONFIGS = {
    # Versatile Diffusion's DDIM config
    "vd": dict(**CONFIGS["sd"], clip_sample=False, set_alpha_to_one=False, steps_offset=1,
               timestep_spacing="leading"),
    # linear betas, set_alpha_to_one True, default clipping to [-1, 1]
    "linear": dict(**CONFIGS["linear"], clip_sample=True, clip_sample_range=1.0,
                   set_alpha_to_one=True, steps_offset=0, timestep_spacing="leading"),
}
DDIM_SHAPE = (2, 4, 5, 6)   # [2, 4, 8, 8] in the brief; smaller to keep the file < 3 MB
DDIM_N = 50
for cname, cfg in DDIM_CONFIGS.items():
    for pt in ("epsilon", "v_prediction", "sample"):
        for eta in (0.0, 0.5):
            for which in ("first", "middle", "last"):
                s32 = DDIMScheduler(**cfg, prediction_type=pt)
                s32.set_timesteps(DDIM_N)
                idx = {"first": 0, "middle": DDIM_N // 2, "last": DDIM_N - 1}[which]
                t = int(s32.timesteps[idx])
                mo = randn32(*DDIM_SHAPE)
                x = randn32(*DDIM_SHAPE)
                vn = randn32(*DDIM_SHAPE) if eta > 0 else None
                out = s32.step(mo, t, x, eta=eta, variance_noise=vn)
                assert out.prev_sample.dtype == F32
                s64 = to_f64(DDIMScheduler(**cfg, prediction_type=pt), cfg)
                s64.set_timesteps(DDIM_N)
                out64 = s64.step(mo.double(), t, x.double(), eta=eta,
                                 variance_noise=None if vn is None else vn.double())
                assert out64.prev_sample.dtype == F64
                _err = (out64.prev_sample - out.prev_sample.double()).abs().max().item()
                # f32 vs f64 differ by ~1e-6; up to ~4e-5 for prediction_type "sample" at t = 1
                # (pred_epsilon divides by sqrt(1 - alphas_cumprod[1]) ~ 0.04: cancellation in float32)
                assert _err < 1e-4, (cname, pt, eta, which, _err)
                prev_t = t - cfg["num_train_timesteps"] // DDIM_N
                params = {"config": cname, **cfg, "clip_sample_range": cfg.get("clip_sample_range", 1.0),
                          "num_inference_steps": DDIM_N, "prediction_type": pt, "eta": eta,
                          "timestep": t, "timestep_index": idx, "prev_timestep": prev_t}
                tensors = {"model_output": mo, "sample": x}
                if vn is not None:
                    tensors["variance_noise"] = vn
                tensors.update({"prev_sample": out.prev_sample,
                                "pred_original_sample": out.pred_original_sample,
                                "prev_sample_f64": out64.prev_sample,
                                "pred_original_sample_f64": out64.pred_original_sample})
                add("ddim_step", f"ddim_{cname}_{pt}_eta{eta}_{which}_t{t}", params, tensors)

# ---------------------------------------------------------------- ddpm_step
DDPM_SHAPE = (1, 4, 5, 3)
gen_seed = 1000


def ddpm_reference(cfg, pt, vt, clip, N, t, prev_t, mo, x, noise):
    """Independent float64 numpy recomputation (formulas of DDPM eq. 7 / diffusers)."""
    _, ac = schedule_f64(cfg)
    a_t = ac[t]
    a_prev = ac[prev_t] if prev_t >= 0 else 1.0
    b_t, b_prev = 1 - a_t, 1 - a_prev
    cur_a = a_t / a_prev
    cur_b = 1 - cur_a
    mo, x, noise = mo.double().numpy(), x.double().numpy(), noise.double().numpy()
    if pt == "epsilon":
        x0 = (x - b_t ** 0.5 * mo) / a_t ** 0.5
    elif pt == "sample":
        x0 = mo
    else:
        x0 = a_t ** 0.5 * x - b_t ** 0.5 * mo
    if clip:
        x0 = np.clip(x0, -1.0, 1.0)
    mean = (a_prev ** 0.5 * cur_b / b_t) * x0 + (cur_a ** 0.5 * b_prev / b_t) * x
    if t > 0:
        var = max(b_prev / b_t * cur_b, 1e-20) if vt == "fixed_small" else cur_b
        mean = mean + var ** 0.5 * noise
    return mean, x0


for cname in ("sd", "linear"):
    cfgb = CONFIGS[cname]
    for N in (50, 1000):
        off = 1 if (cname == "sd" and N == 50) else 0
        for vt in ("fixed_small", "fixed_large"):
            for clip in (True, False):
                for pt in ("epsilon", "v_prediction", "sample"):
                    for which in ("first", "middle", "last"):
                        cfg = dict(**cfgb, variance_type=vt, clip_sample=clip, clip_sample_range=1.0,
                                   prediction_type=pt, steps_offset=off, timestep_spacing="leading")
                        s32 = DDPMScheduler(**cfg)
                        s32.set_timesteps(N)
                        idx = {"first": 0, "middle": N // 2, "last": N - 1}[which]
                        t = int(s32.timesteps[idx])
                        prev_t = int(s32.previous_timestep(t))
                        mo = randn32(*DDPM_SHAPE)
                        x = randn32(*DDPM_SHAPE)
                        gen_seed += 1
                        out = s32.step(mo, t, x, generator=torch.Generator().manual_seed(gen_seed))
                        # the noise step() drew: same call, identically seeded generator
                        noise = randn_tensor(DDPM_SHAPE, generator=torch.Generator().manual_seed(gen_seed),
                                             device=torch.device("cpu"), dtype=F32)
                        # bit-for-bit: step() with randn_tensor patched to return `noise`
                        s32b = DDPMScheduler(**cfg)
                        s32b.set_timesteps(N)
                        with mock.patch.object(scheduling_ddpm, "randn_tensor",
                                               lambda *a, **k: noise.clone()):
                            outb = s32b.step(mo, t, x)
                        assert torch.equal(out.prev_sample, outb.prev_sample), (cname, N, t)
                        # float64 run of the same code (same noise, upcast)
                        s64 = to_f64(DDPMScheduler(**cfg), cfg)
                        s64.set_timesteps(N)
                        with mock.patch.object(scheduling_ddpm, "randn_tensor",
                                               lambda *a, **k: noise.double()):
                            out64 = s64.step(mo.double(), t, x.double())
                        ref, ref_x0 = ddpm_reference(cfgb, pt, vt, clip, N, t, prev_t, mo, x, noise)
                        assert np.allclose(out64.prev_sample.numpy(), ref, rtol=1e-12, atol=1e-12)
                        assert np.allclose(out64.pred_original_sample.numpy(), ref_x0, rtol=1e-12, atol=1e-12)
                        assert np.allclose(out.prev_sample.double().numpy(), ref, rtol=1e-4, atol=1e-5)
                        params = {"config": cname, **cfg, "num_inference_steps": N, "timestep": t,
                                  "timestep_index": idx, "prev_timestep": prev_t, "adds_noise": t > 0,
                                  "generator_seed": gen_seed}
                        add("ddpm_step", f"ddpm_{cname}_n{N}_{vt}_clip{int(clip)}_{pt}_{which}_t{t}", params,
                            {"model_output": mo, "sample": x, "noise": noise,
                             "prev_sample": out.prev_sample, "pred_original_sample": out.pred_original_sample,
                             "prev_sample_f64": out64.prev_sample,
                             "pred_original_sample_f64": out64.pred_original_sample})

# ---------------------------------------------------------------- add_noise
for cname in ("sd", "linear", "cos"):
    cfg = CONFIGS[cname]
    for tsl in ([0, 1, 500, 999], [250, 250], [999]):
        B = len(tsl)
        orig = randn32(B, 4, 5, 3)
        noise = randn32(B, 4, 5, 3)
        ts = torch.tensor(tsl, dtype=torch.int64)
        s = DDPMScheduler(**cfg)
        noisy = s.add_noise(orig, noise, ts)
        assert noisy.dtype == F32
        assert torch.equal(noisy, DDIMScheduler(**cfg).add_noise(orig, noise, ts))
        s64 = to_f64(DDPMScheduler(**cfg), cfg)
        noisy64 = s64.add_noise(orig.double(), noise.double(), ts)
        _, ac = schedule_f64(cfg)
        a = torch.tensor(ac[tsl]).reshape(B, 1, 1, 1)
        assert torch.allclose(noisy64, a.sqrt() * orig.double() + (1 - a).sqrt() * noise.double(),
                              rtol=1e-13, atol=1e-13)
        add("add_noise", f"add_noise_{cname}_t{'_'.join(map(str, tsl))}", {"config": cname, **cfg},
            {"original": orig, "noise": noise, "timesteps": ts, "noisy": noisy, "noisy_f64": noisy64})


# ---------------------------------------------------------------- img2img_start
def get_timesteps(scheduler, num_inference_steps, strength):
    """diffusers StableDiffusionImg2ImgPipeline.get_timesteps (0.42.1), minus the device arg."""
    init_timestep = min(int(num_inference_steps * strength), num_inference_steps)
    t_start = max(num_inference_steps - init_timestep, 0)
    timesteps = scheduler.timesteps[t_start * scheduler.order:]
    return timesteps, num_inference_steps - t_start, t_start, init_timestep


I2I_CONFIGS = {
    "vd_leading_off1": dict(**CONFIGS["sd"], timestep_spacing="leading", steps_offset=1,
                            clip_sample=False, set_alpha_to_one=False),
    "sd_trailing_off0": dict(**CONFIGS["sd"], timestep_spacing="trailing", steps_offset=0,
                             clip_sample=False, set_alpha_to_one=False),
}
for cname, cfg in I2I_CONFIGS.items():
    for N in (50, 25):
        for strength in (0.75, 0.5, 1.0, 0.01, 0.58):
            s = DDIMScheduler(**cfg)
            s.set_timesteps(N)
            assert s.order == 1
            ts, nsteps, t_start, init_t = get_timesteps(s, N, strength)
            assert len(ts) == nsteps
            if cname == "vd_leading_off1" and N == 50 and strength == 0.75:
                assert int(ts[0]) == 721 and nsteps == 37 and t_start == 13   # SPEC / HAVIR check
            add("img2img_start", f"img2img_{cname}_n{N}_s{strength}",
                {"config": cname, "timestep_spacing": cfg["timestep_spacing"],
                 "steps_offset": cfg["steps_offset"], "num_inference_steps": N, "strength": strength,
                 "init_timestep": init_t},
                {"timesteps": ts, "t_start": torch.tensor([t_start]), "num_steps": torch.tensor([nsteps])})

# ---------------------------------------------------------------- cfg
eu = randn32(2, 4, 5, 3).double()
ec = randn32(2, 4, 5, 3).double()
g = 7.5
add("cfg", "cfg_g7.5", {"guidance_scale": g},
    {"noise_uncond": eu, "noise_cond": ec, "noise_pred": eu + g * (ec - eu)})

# ---------------------------------------------------------------- write
doc = {
    "generator": "conformance/golden/make_schedulers.py",
    "versions": {"diffusers": diffusers.__version__, "torch": torch.__version__,
                 "numpy": np.__version__, "python": sys.version.split()[0]},
    "torch_version": torch.__version__,
    "dtype": "float64",
    "notes": "plain outputs are diffusers float32 results cast to float64; *_f64 outputs are the same "
             "diffusers code on float64 inputs with float64 schedule tensors (see make_schedulers.py)",
    "cases": cases,
}
with open(OUT, "w") as fh:
    json.dump(doc, fh, allow_nan=False, separators=(",", ":"))
    fh.write("\n")
kinds = {}
for c in cases:
    kinds[c["kernel"]] = kinds.get(c["kernel"], 0) + 1
print(f"wrote {OUT}: {len(cases)} cases {kinds}, {os.path.getsize(OUT)} bytes")
