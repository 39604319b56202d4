#!/usr/bin/env python3
"""Golden vectors for the loss kernels (SPEC section 4), float64 PyTorch autograd on CPU.

Run from the repository root:  python3 conformance/golden/make_losses.py
Writes conformance/golden/losses.json next to this script. Deterministic (fixed seed).
Requires: torch (only).

Schema (same as foundation.json, plus a `versions` map):
  {generator, versions: {torch, python}, torch_version, dtype, cases: [{kernel, name, params, tensors}]}
every tensor is {"shape": [...], "data": [flat row-major float64]}.

Kernels and tensor names (every loss value is "loss", shape [1]; gradients are of that scalar):
  mse         a, b [n, d]                    -> loss, da, db
  cka         a [n, p] or [n, m, d], b [n, q] -> loss (= 1 - CKA), cka, hsic_ab, hsic_aa, hsic_bb, da, db
              params: estimator ("biased"|"unbiased"), n, p (flattened width of a), q, a_shape, b_shape
  sims        a, b [batch, m, d]             -> loss, s_a, s_b [batch, m-1], da, db
  mg          a, b [batch, m, d]             -> loss, cka (biased, over [batch, m*d]), sims, da, db
  softclip    pred, target [n, d] (or [n, m, d], flattened per row) -> loss, dpred, dtarget
              params: temperature, n, d, near_duplicate_targets
  infonce     same names as softclip
  sobel       x [N, C, H, W], r (cotangent, same shape) -> gx, gy, magnitude, dx_mag
              dx_mag = d/dx sum(r * magnitude)
  sobel_loss  pred, target [N, C, H, W]      -> loss, dpred, dtarget; params form ("magnitude"|"components")
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

SEED = 20240612
torch.manual_seed(SEED)
torch.set_default_dtype(torch.float64)
torch.use_deterministic_algorithms(True)
DT = torch.float64

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "losses.json")


def randn(*shape):
    return torch.randn(*shape, dtype=DT)


def tj(t):
    t = torch.as_tensor(t).detach().to(DT).contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


cases = []


def add(kernel, name, params, tensors):
    assert all(c["name"] != name for c in cases), name
    for k, v in tensors.items():
        assert torch.isfinite(torch.as_tensor(v)).all(), (name, k)
    cases.append({"kernel": kernel, "name": name, "params": params,
                  "tensors": {k: tj(v) for k, v in tensors.items()}})


def scalar(x):
    return x.detach().reshape(1)


def grads_of(loss, *xs):
    return torch.autograd.grad(loss, xs)


# ---------------------------------------------------------------- mse
for (n, d) in [(1, 1), (5, 7), (17, 33)]:
    a = randn(n, d).requires_grad_()
    b = randn(n, d).requires_grad_()
    loss = ((a - b) ** 2).mean()
    da, db = grads_of(loss, a, b)
    add("mse", f"mse_{n}x{d}", {"n": n, "d": d},
        {"a": a, "b": b, "loss": scalar(loss), "da": da, "db": db})


# ---------------------------------------------------------------- cka
def hsic_biased(K, L):
    n = K.shape[0]
    H = torch.eye(n, dtype=DT) - torch.ones(n, n, dtype=DT) / n
    return torch.trace(K @ H @ L @ H) / (n - 1) ** 2


def hsic_unbiased(K, L):
    # Song et al. 2012, eq. (5); needs n > 3.
    n = K.shape[0]
    assert n > 3
    eye = torch.eye(n, dtype=DT)
    Kt = K * (1 - eye)
    Lt = L * (1 - eye)
    one = torch.ones(n, 1, dtype=DT)
    term1 = torch.trace(Kt @ Lt)
    term2 = Kt.sum() * Lt.sum() / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one.T @ Kt @ Lt @ one).squeeze()
    return (term1 + term2 - term3) / (n * (n - 3))


def cka_parts(A, B, estimator):
    A2 = A.reshape(A.shape[0], -1)
    B2 = B.reshape(B.shape[0], -1)
    K = A2 @ A2.T
    L = B2 @ B2.T
    h = hsic_biased if estimator == "biased" else hsic_unbiased
    hab, haa, hbb = h(K, L), h(K, K), h(L, L)
    return hab / torch.sqrt(haa * hbb), hab, haa, hbb


CKA_SHAPES = [  # (n, a_shape tail, q)
    (2, (7,), 33),
    (5, (7,), 33),
    (17, (257,), 7),
    (32, (33,), 65),
    (5, (3, 5), 257),      # token case: a [n, m, d] flattened to [n, m*d]
    (17, (4, 7), 9),
]
for (n, atail, q) in CKA_SHAPES:
    for est in ("biased", "unbiased"):
        if est == "unbiased" and n <= 3:
            continue
        a = randn(n, *atail)
        # b correlated with a so that CKA is far from 0 and from 1
        a2 = a.reshape(n, -1)
        mix = randn(a2.shape[1], q) / a2.shape[1] ** 0.5
        b = (0.7 * a2 @ mix + 0.5 * randn(n, q))
        a = a.requires_grad_()
        b = b.requires_grad_()
        cka, hab, haa, hbb = cka_parts(a, b, est)
        loss = 1 - cka
        da, db = grads_of(loss, a, b)
        p = a2.shape[1]
        tag = "x".join(str(s) for s in (n,) + atail)
        add("cka", f"cka_{est}_{tag}_q{q}",
            {"estimator": est, "n": n, "p": p, "q": q,
             "a_shape": [n, *atail], "b_shape": [n, q]},
            {"a": a, "b": b, "loss": scalar(loss), "cka": scalar(cka), "hsic_ab": scalar(hab),
             "hsic_aa": scalar(haa), "hsic_bb": scalar(hbb), "da": da, "db": db})


# ---------------------------------------------------------------- sims
def cos_first(X):
    """s[b, j-1] = cos(X[b,0,:], X[b,j,:]), j = 1..m-1, norms clamped below at 1e-8."""
    x0 = X[:, :1, :]
    xr = X[:, 1:, :]
    dot = (x0 * xr).sum(-1)
    n0 = torch.clamp_min(torch.sqrt((x0 * x0).sum(-1)), 1e-8)
    nr = torch.clamp_min(torch.sqrt((xr * xr).sum(-1)), 1e-8)
    return dot / (n0 * nr)


def sims_loss(A, B):
    sa, sb = cos_first(A), cos_first(B)
    return ((sa - sb) ** 2).mean(), sa, sb


SIM_SHAPES = [(2, 5, 7), (3, 17, 33), (1, 2, 4)]
for (bs, m, d) in SIM_SHAPES:
    a = randn(bs, m, d)
    b = (0.6 * a + 0.8 * randn(bs, m, d))
    a.requires_grad_()
    b.requires_grad_()
    loss, sa, sb = sims_loss(a, b)
    da, db = grads_of(loss, a, b)
    add("sims", f"sims_{bs}x{m}x{d}", {"batch": bs, "m": m, "d": d},
        {"a": a, "b": b, "loss": scalar(loss), "s_a": sa, "s_b": sb, "da": da, "db": db})

# ---------------------------------------------------------------- mg
# batch 1 is left out: the biased CKA of a single row is 0/0 (its centred Gram is zero).
for (bs, m, d) in [(2, 5, 7), (3, 17, 33), (4, 3, 5)]:
    a = randn(bs, m, d)
    b = (0.6 * a + 0.8 * randn(bs, m, d))
    a.requires_grad_()
    b.requires_grad_()
    sl, _, _ = sims_loss(a, b)
    cka, _, _, _ = cka_parts(a, b, "biased")
    loss = (1 - cka) + sl
    da, db = grads_of(loss, a, b)
    add("mg", f"mg_{bs}x{m}x{d}", {"batch": bs, "m": m, "d": d, "cka_estimator": "biased"},
        {"a": a, "b": b, "loss": scalar(loss), "cka": scalar(cka), "sims": scalar(sl),
         "da": da, "db": db})


# ---------------------------------------------------------------- softclip / infonce
def norm_rows(x):
    return F.normalize(x.reshape(x.shape[0], -1), dim=-1, eps=1e-12)


def soft_clip_loss(preds, targs, temp):
    # MindEye utils.soft_clip_loss
    p = norm_rows(preds)
    t = norm_rows(targs)
    clip_clip = (t @ t.T) / temp
    brain_clip = (p @ t.T) / temp
    loss1 = -(brain_clip.log_softmax(-1) * clip_clip.softmax(-1)).sum(-1).mean()
    loss2 = -(brain_clip.T.log_softmax(-1) * clip_clip.softmax(-1)).sum(-1).mean()
    return (loss1 + loss2) / 2


def infonce_loss(preds, targs, temp):
    p = norm_rows(preds)
    t = norm_rows(targs)
    logits = (p @ t.T) / temp
    labels = torch.arange(p.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def clip_inputs(n, tail, near_dup):
    t = randn(n, *tail)
    p = 0.5 * t + randn(n, *tail)          # preds loosely aligned with targets
    if near_dup:
        # rows 1 and 2 (and 4) are near-copies of row 0 / row 3: C_tt has near-ties
        t[1] = t[0] + 1e-3 * randn(*tail)
        if n > 2:
            t[2] = t[0] + 1e-2 * randn(*tail)
        if n > 4:
            t[4] = t[3] + 1e-3 * randn(*tail)
    return p, t


CLIP_CASES = [  # (n, tail, near_dup)
    (1, (9,), False),
    (7, (33,), False),
    (32, (33,), False),
    (7, (3, 5), False),       # [n, m, d] flattened per row
    (7, (33,), True),
    (32, (33,), True),
]
for kname, fn in [("softclip", soft_clip_loss), ("infonce", infonce_loss)]:
    for (n, tail, nd) in CLIP_CASES:
        p0, t0 = clip_inputs(n, tail, nd)
        for tau in (0.005, 0.125):
            p = p0.clone().requires_grad_()
            t = t0.clone().requires_grad_()
            loss = fn(p, t, tau)
            dp, dt = grads_of(loss, p, t)
            tag = "x".join(str(s) for s in (n,) + tail)
            name = f"{kname}_{tag}_tau{tau}" + ("_neardup" if nd else "")
            d = 1
            for s in tail:
                d *= s
            add(kname, name,
                {"temperature": tau, "n": n, "d": d, "input_shape": [n, *tail],
                 "near_duplicate_targets": nd, "normalize_eps": 1e-12},
                {"pred": p, "target": t, "loss": scalar(loss), "dpred": dp, "dtarget": dt})


# ---------------------------------------------------------------- sobel
KX = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=DT)
KY = KX.T.contiguous()
SOBEL_EPS = 1e-6


def sobel(x):
    C = x.shape[1]
    wx = KX.reshape(1, 1, 3, 3).repeat(C, 1, 1, 1)
    wy = KY.reshape(1, 1, 3, 3).repeat(C, 1, 1, 1)
    gx = F.conv2d(x, wx, padding=1, groups=C)   # conv2d is cross-correlation
    gy = F.conv2d(x, wy, padding=1, groups=C)
    return gx, gy, torch.sqrt(gx * gx + gy * gy + SOBEL_EPS)


# hand check of the convention on a ramp: x[h, w] = w  ->  interior gx = 8, gy = 0
_ramp = torch.arange(5, dtype=DT).repeat(5, 1).reshape(1, 1, 5, 5)
_gx, _gy, _ = sobel(_ramp)
assert torch.allclose(_gx[0, 0, 1:-1, 1:-1], torch.full((3, 3), 8.0))
assert torch.allclose(_gy[0, 0, 1:-1, 1:-1], torch.zeros(3, 3))

SOBEL_SHAPES = [(2, 4, 8, 8), (1, 1, 5, 3), (3, 2, 7, 11), (1, 2, 1, 4)]
for (N, C, H, W) in SOBEL_SHAPES:
    x = randn(N, C, H, W).requires_grad_()
    r = randn(N, C, H, W)
    gx, gy, mag = sobel(x)
    (dx,) = grads_of((r * mag).sum(), x)
    add("sobel", f"sobel_{N}x{C}x{H}x{W}",
        {"batch": N, "channels": C, "height": H, "width": W, "eps": SOBEL_EPS,
         "kx": KX.reshape(-1).tolist(), "ky": KY.reshape(-1).tolist(), "padding": "zeros"},
        {"x": x, "r": r, "gx": gx, "gy": gy, "magnitude": mag, "dx_mag": dx})

for (N, C, H, W) in SOBEL_SHAPES:
    for form in ("magnitude", "components"):
        pred0 = randn(N, C, H, W)
        targ0 = 0.5 * pred0 + randn(N, C, H, W)
        pred = pred0.clone().requires_grad_()
        targ = targ0.clone().requires_grad_()
        gxp, gyp, mp = sobel(pred)
        gxt, gyt, mt = sobel(targ)
        if form == "magnitude":
            loss = ((mp - mt) ** 2).mean()
        else:
            loss = ((gxp - gxt) ** 2).mean() + ((gyp - gyt) ** 2).mean()
        dp, dt = grads_of(loss, pred, targ)
        add("sobel_loss", f"sobel_loss_{form}_{N}x{C}x{H}x{W}",
            {"form": form, "batch": N, "channels": C, "height": H, "width": W, "eps": SOBEL_EPS},
            {"pred": pred, "target": targ, "loss": scalar(loss), "dpred": dp, "dtarget": dt})

# ---------------------------------------------------------------- write
doc = {
    "generator": "conformance/golden/make_losses.py",
    "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
    "torch_version": torch.__version__,
    "dtype": "float64",
    "cases": cases,
}
with open(OUT, "w") as fh:
    json.dump(doc, fh, allow_nan=False, separators=(",", ":"))
    fh.write("\n")
kinds = {}
for c in cases:
    kinds[c["kernel"]] = kinds.get(c["kernel"], 0) + 1
print(f"wrote {OUT}: {len(cases)} cases {kinds}, {os.path.getsize(OUT)} bytes")
