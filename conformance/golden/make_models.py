#!/usr/bin/env python3
"""Golden files for one whole training step of the mapping models (docs/models.md),
float64 PyTorch autograd on CPU, using the twins in pytorch/brain_models.py.

Run from the repository root:
    python3 conformance/golden/make_models.py               # writes conformance/golden/models/*.safetensors
    python3 conformance/golden/make_models.py --self-check  # also: finite-difference gradient checks,
                                                            # key/shape check against docs/models.md,
                                                            # every branches x align option, re-read
Requires: torch, numpy, safetensors. Deterministic (fixed seeds; same bytes on re-run).

Files (each float64; tiny dims so each stays well under 200 KB):
  brainmclip_full_mg.safetensors                 branches full, align mg, direct heads
  brainmclip_semantic_lowrank_softclip.safetensors  branches text+semantic, align mse+softclip, head_rank 3
  brainmclip_full_mse_infonce.safetensors        branches full, align mse+infonce, direct heads
  havir.safetensors

BrainMCLIP dims: N_S=12, N_D=20, hidden=16, blocks=2, T_t=3, T_i=5, D=8, batch 6, dropout 0.
HAVIR dims: N_L=14, N_H=12, hidden=16, structural_blocks=1, semantic_blocks=2, channels=4,
map_size=4, groups=2, latent_size=8, latent_channels=4, T_i=5, T_t=3, D=8, batch 6, dropout 0.

Temperature 0.125 (config "temperature"): with D = 8 and a handful of tokens the cosine
logits divided by τ = 0.005 saturate (softmax is one-hot, gradients ~0 or dominated by one
pair), so the file would test little; the kernel goldens (losses.json) already cover 0.005.

Tensors in each file:
  param.<key>   every state_dict key (weights drawn from a seeded numpy generator:
                Linear / 1x1 conv / direct Head U(±1/√fan_in) for weight and bias;
                LayerNorm / GroupNorm weight 1 + 0.1·N(0,1), bias 0.1·N(0,1))
  input.<name>  BrainMCLIP f_s [B,N_S], f_d [B,N_D]; HAVIR f_low [B,N_L], f_high [B,N_H]
  target.<name> BrainMCLIP e_t [B,T_t,D], e_is, e_id [B,T_i,D]; HAVIR z [B,4,L,L],
                e_img [B,T_i,D], e_cap [B,T_t,D]
  output.<name> forward outputs in train mode (dropout 0); names in brain_models.py's docstring
  loss          [1] total loss (sum of the terms)
  loss.<term>   [1] each named term (names in brain_models.py's docstring)
  grad.<key>    d loss / d param for every state_dict key (autograd)
Metadata: "config" (the docs/models.md JSON, dropout 0), "generator" (script + torch version).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "pytorch"))
import brain_models as bm  # noqa: E402

from safetensors.torch import load_file, save  # noqa: E402

OUT_DIR = os.path.join(HERE, "models")
DT = torch.float64
TAU = 0.125  # see the module docstring
torch.use_deterministic_algorithms(True)

BM_BASE = {"model": "brainmclip", "n_semantic": 12, "n_detail": 20, "hidden": 16, "blocks": 2,
           "text_tokens": 3, "image_tokens": 5, "embed_dim": 8, "head_rank": None,
           "dropout": 0.0, "branches": "full", "align": "mg", "temperature": TAU}
HAVIR_CFG = {"model": "havir", "n_low": 14, "n_high": 12, "hidden": 16, "structural_blocks": 1,
             "semantic_blocks": 2, "channels": 4, "map_size": 4, "groups": 2, "latent_size": 8,
             "latent_channels": 4, "image_tokens": 5, "text_tokens": 3, "embed_dim": 8,
             "dropout": 0.0, "temperature": TAU}
BATCH = 6

CASES = [  # (file stem, config, seed)
    ("brainmclip_full_mg", dict(BM_BASE), 1001),
    ("brainmclip_semantic_lowrank_softclip",
     dict(BM_BASE, branches="text+semantic", align="mse+softclip", head_rank=3), 1002),
    ("brainmclip_full_mse_infonce", dict(BM_BASE, align="mse+infonce"), 1003),
    ("havir", dict(HAVIR_CFG), 1004),
]


# ---------------------------------------------------------------------------- data
def init_params(model, rng):
    """Seeded numpy init, PyTorch-like scales, in state_dict order."""
    with torch.no_grad():
        for _, mod in model.named_modules():
            if isinstance(mod, nn.Linear) or isinstance(mod, nn.Conv2d) or (
                    isinstance(mod, bm.Head) and mod.rank is None):
                w = mod.weight
                fan_in = int(np.prod(w.shape[1:]))
                bound = 1.0 / math.sqrt(fan_in)
                w.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=tuple(w.shape))))
                mod.bias.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=tuple(mod.bias.shape))))
            elif isinstance(mod, (nn.LayerNorm, nn.GroupNorm)):
                n = mod.weight.shape
                mod.weight.copy_(torch.from_numpy(1.0 + 0.1 * rng.standard_normal(n)))
                mod.bias.copy_(torch.from_numpy(0.1 * rng.standard_normal(n)))


def t64(a):
    # clone into PyTorch's (64-byte aligned) allocator: numpy buffers' alignment varies from
    # run to run, and MKL's GEMM results can differ in the last bit with the alignment
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).clone()


def make_data(cfg, rng):
    """Inputs ~ N(0,1); targets = a fixed random linear read-out of the inputs + noise,
    so that targets carry structure across the batch (CKA / contrastive terms informative)."""
    B = BATCH
    if cfg["model"] == "brainmclip":
        n_s, n_d = cfg["n_semantic"], cfg["n_detail"]
        T_t, T_i, D = cfg["text_tokens"], cfg["image_tokens"], cfg["embed_dim"]
        f_s = rng.standard_normal((B, n_s))
        f_d = rng.standard_normal((B, n_d))
        f_d[:, :n_s] = 0.7 * f_s + 0.3 * f_d[:, :n_s]  # F_S is (mostly) part of F_D
        tok = rng.standard_normal((1, T_t, D))        # shared token profile
        e_t = (f_s @ rng.standard_normal((n_s, T_t * D)) / math.sqrt(n_s)).reshape(B, T_t, D)
        e_t = e_t + tok + 0.3 * rng.standard_normal((B, T_t, D))
        tok_i = rng.standard_normal((1, T_i, D))
        e_is = (f_s @ rng.standard_normal((n_s, T_i * D)) / math.sqrt(n_s)).reshape(B, T_i, D)
        e_is = e_is + tok_i + 0.3 * rng.standard_normal((B, T_i, D))
        e_id = 0.6 * e_is + (f_d @ rng.standard_normal((n_d, T_i * D)) / math.sqrt(n_d)).reshape(B, T_i, D)
        e_id = e_id + 0.3 * rng.standard_normal((B, T_i, D))
        return ({"f_s": t64(f_s), "f_d": t64(f_d)},
                {"e_t": t64(e_t), "e_is": t64(e_is), "e_id": t64(e_id)})
    n_l, n_h = cfg["n_low"], cfg["n_high"]
    L, Cz = cfg["latent_size"], cfg["latent_channels"]
    T_i, T_t, D = cfg["image_tokens"], cfg["text_tokens"], cfg["embed_dim"]
    f_low = rng.standard_normal((B, n_l))
    f_high = rng.standard_normal((B, n_h))
    # smooth-ish latents: a low-resolution field read out of f_low, repeated 2x2, plus noise
    coarse = (f_low @ rng.standard_normal((n_l, Cz * (L // 2) ** 2)) / math.sqrt(n_l)).reshape(B, Cz, L // 2, L // 2)
    z = np.repeat(np.repeat(coarse, 2, axis=2), 2, axis=3) + 0.2 * rng.standard_normal((B, Cz, L, L))
    e_img = (f_high @ rng.standard_normal((n_h, T_i * D)) / math.sqrt(n_h)).reshape(B, T_i, D)
    e_img = e_img + rng.standard_normal((1, T_i, D)) + 0.3 * rng.standard_normal((B, T_i, D))
    e_cap = (f_high @ rng.standard_normal((n_h, T_t * D)) / math.sqrt(n_h)).reshape(B, T_t, D)
    e_cap = e_cap + rng.standard_normal((1, T_t, D)) + 0.3 * rng.standard_normal((B, T_t, D))
    return ({"f_low": t64(f_low), "f_high": t64(f_high)},
            {"z": t64(z), "e_img": t64(e_img), "e_cap": t64(e_cap)})


def stable_safetensors_bytes(tensors, meta):
    """safetensors.torch.save, with the header's __metadata__ keys in a fixed order
    (the library emits them in hash-map order, so bytes would differ run to run)."""
    raw = save(tensors, metadata=meta)
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)  # the format pads the header with spaces to 8 bytes
    return struct.pack("<Q", len(hb)) + hb + raw[8 + n:]


def build_case(cfg, seed):
    rng = np.random.default_rng(seed)
    model = bm.build_model(cfg).to(DT)
    init_params(model, rng)
    model.train()  # dropout 0: train mode is deterministic
    inputs, targets = make_data(model.config, rng)
    return model, inputs, targets


def run_step(model, inputs, targets):
    model.zero_grad(set_to_none=True)
    outputs = model(**inputs)
    total, terms = model.loss_from_outputs(outputs, inputs, targets)
    total.backward()
    return outputs, total, terms


def write_case(stem, cfg, seed):
    model, inputs, targets = build_case(cfg, seed)
    outputs, total, terms = run_step(model, inputs, targets)
    tensors = {}
    params = dict(model.named_parameters())
    for k, v in model.state_dict().items():
        tensors["param." + k] = v.detach().clone().contiguous()
    for k, v in inputs.items():
        tensors["input." + k] = v.contiguous()
    for k, v in targets.items():
        tensors["target." + k] = v.contiguous()
    for k, v in outputs.items():
        tensors["output." + k] = v.detach().clone().contiguous()
    tensors["loss"] = total.detach().reshape(1).clone()
    for k, v in terms.items():
        tensors["loss." + k] = v.detach().reshape(1).clone()
    for k in model.state_dict():
        tensors["grad." + k] = params[k].grad.detach().clone().contiguous()
    for k, v in tensors.items():
        assert v.dtype == DT and torch.isfinite(v).all(), k
    meta = {"config": json.dumps(model.config),
            "generator": f"conformance/golden/make_models.py torch {torch.__version__}"}
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, stem + ".safetensors")
    with open(path, "wb") as fh:
        fh.write(stable_safetensors_bytes(tensors, meta))
    print(f"wrote {os.path.relpath(path, ROOT)}: {os.path.getsize(path)} bytes, "
          f"{bm.param_count(model)} params, loss {total.item():.6f} "
          + ", ".join(f"{k}={v.item():.4f}" for k, v in terms.items()))
    return path


# ---------------------------------------------------------------------------- self-check
def expected_shapes(cfg):
    """docs/models.md key tables, written out independently of brain_models.py."""
    e = {}

    def lin(prefix, out, inp):
        e[prefix + ".weight"] = (out, inp)
        e[prefix + ".bias"] = (out,)

    def embed(prefix, n_in, h):
        lin(prefix + ".linear", h, n_in)
        e[prefix + ".norm.weight"] = (h,)
        e[prefix + ".norm.bias"] = (h,)

    def head(prefix, h, T, D, r):
        if r is None:
            lin(prefix, T * D, h)
        else:
            lin(prefix + ".proj", T * r, h)
            lin(prefix + ".token", D, r)

    h = cfg["hidden"]
    if cfg["model"] == "brainmclip":
        n_s, n_d, r = cfg["n_semantic"], cfg["n_detail"], cfg["head_rank"]
        embed("text.encoder", n_s, h)
        lin("text.decoder", n_s, h)
        for i in range(cfg["blocks"]):
            embed(f"text.backbone.{i}", h, h)
        head("text.head", h, cfg["text_tokens"], cfg["embed_dim"], r)
        if cfg["branches"] != "text":
            embed("image.encoder_semantic", n_s, h)
            lin("image.decoder_semantic", n_s, h)
            if cfg["branches"] != "text+semantic":
                embed("image.encoder_detail", n_d, h)
                lin("image.decoder_detail", n_d, h)
            for i in range(cfg["blocks"]):
                embed(f"image.backbone.{i}", h, h)
            head("image.head", h, cfg["image_tokens"], cfg["embed_dim"], r)
    else:
        C, s = cfg["channels"], cfg["map_size"]
        embed("structural.embed", cfg["n_low"], h)
        for i in range(cfg["structural_blocks"]):
            embed(f"structural.blocks.{i}", h, h)
        lin("structural.to_maps", C * s * s, h)
        e["structural.norm.weight"] = (C,)
        e["structural.norm.bias"] = (C,)
        e["structural.mix.weight"] = (cfg["latent_channels"], C, 1, 1)
        e["structural.mix.bias"] = (cfg["latent_channels"],)
        embed("semantic.embed", cfg["n_high"], h)
        for i in range(cfg["semantic_blocks"]):
            embed(f"semantic.blocks.{i}", h, h)
        lin("semantic.image_head", cfg["image_tokens"] * cfg["embed_dim"], h)
        lin("semantic.text_head", cfg["text_tokens"] * cfg["embed_dim"], h)
    return e


def check_keys(model):
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    exp = expected_shapes(model.config)
    assert got == exp, (sorted(set(got) ^ set(exp)),
                        {k: (got[k], exp[k]) for k in got if k in exp and got[k] != exp[k]})


def fd_check(stem, cfg, seed, n_entries=3, h=1e-6):
    """Central differences on a few entries of a few parameters vs autograd."""
    model, inputs, targets = build_case(cfg, seed)
    run_step(model, inputs, targets)
    params = dict(model.named_parameters())
    keys = list(params)
    pick = [keys[0], keys[len(keys) // 3], keys[len(keys) // 2], keys[-3], keys[-1]]
    rng = np.random.default_rng(7)
    worst = 0.0
    for k in pick:
        p = params[k]
        g = p.grad.detach().clone()
        for _ in range(n_entries):
            idx = tuple(int(rng.integers(0, s)) for s in p.shape)
            with torch.no_grad():
                old = p[idx].item()
                p[idx] = old + h
                lp = model.loss(inputs, targets)[0].item()
                p[idx] = old - h
                lm = model.loss(inputs, targets)[0].item()
                p[idx] = old
            fd = (lp - lm) / (2 * h)
            err = abs(fd - g[idx].item()) / max(1.0, abs(fd))
            worst = max(worst, err)
            assert err < 1e-6, (stem, k, idx, fd, g[idx].item())
    print(f"  fd check {stem}: {len(pick) * n_entries} entries of {pick}, worst rel err {worst:.2e}")


def self_check(paths):
    for (stem, cfg, seed), path in zip(CASES, paths):
        model, inputs, targets = build_case(cfg, seed)
        check_keys(model)
        fd_check(stem, cfg, seed)
        # the written file reproduces: reload params into a fresh model, redo the step
        # clone: safetensors' mmap'd tensors are only 8-byte aligned, and MKL then takes a
        # different (last-bit different) GEMM path; cloned tensors reproduce bit for bit
        f = {k: v.clone() for k, v in load_file(path).items()}
        m2 = bm.build_model(cfg).to(DT)
        m2.load_state_dict({k[6:]: v for k, v in f.items() if k.startswith("param.")}, strict=True)
        ins = {k[6:]: v for k, v in f.items() if k.startswith("input.")}
        tgs = {k[7:]: v for k, v in f.items() if k.startswith("target.")}
        out, total, terms = run_step(m2, ins, tgs)
        assert torch.equal(total.detach().reshape(1), f["loss"])
        for k, v in out.items():
            assert torch.equal(v.detach(), f["output." + k]), k
        for k, p in m2.named_parameters():
            assert torch.equal(p.grad, f["grad." + k]), k
        assert abs(sum(f["loss." + k].item() for k in terms) - f["loss"].item()) < 1e-12
        assert os.path.getsize(path) < 200_000, path
    # every branches x align x head_rank option builds, has the documented keys, trains
    for br in bm.BRANCH_OPTIONS:
        for al in bm.ALIGN_OPTIONS:
            for r in (None, 3):
                cfg = dict(BM_BASE, branches=br, align=al, head_rank=r)
                model, inputs, targets = build_case(cfg, 5)
                check_keys(model)
                out, total, terms = run_step(model, inputs, targets)
                assert torch.isfinite(total)
                assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
                exp_align = len(bm.ALIGN_OPTIONS[al])
                n_terms = exp_align + 1 + ({"text": 0, "text+semantic": exp_align + 2,
                                            "text+semantic+detail": exp_align + 4,
                                            "full": exp_align + 6}[br])
                assert len(terms) == n_terms, (br, al, list(terms))
    # FD check on the remaining branch options too (tiny, cheap)
    fd_check("text/mse+cka+sims", dict(BM_BASE, branches="text", align="mse+cka+sims"), 11)
    fd_check("text+semantic+detail/mse+sims/r2",
             dict(BM_BASE, branches="text+semantic+detail", align="mse+sims", head_rank=2), 12)
    # Havir with the bilinear factor 4 and 2 structural blocks
    fd_check("havir/x4", dict(HAVIR_CFG, map_size=2, structural_blocks=2), 13)
    print("self-check passed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--self-check", action="store_true",
                    help="finite-difference gradient checks, key/shape checks, re-read the files")
    args = ap.parse_args()
    paths = [write_case(stem, cfg, seed) for stem, cfg, seed in CASES]
    if args.self_check:
        self_check(paths)


if __name__ == "__main__":
    main()
