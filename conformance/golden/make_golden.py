#!/usr/bin/env python3
"""Generate golden test vectors (float64, CPU) from PyTorch autograd.

Run from the repository root:  python3 conformance/golden/make_golden.py
Writes conformance/golden/foundation.json next to this script.
Deterministic: fixed seed, float64 everywhere, CPU only.
"""
import json
import os

import torch
import torch.nn.functional as F

SEED = 20240611
torch.manual_seed(SEED)
torch.set_default_dtype(torch.float64)
torch.use_deterministic_algorithms(True)
DT = torch.float64
DEV = "cpu"

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "foundation.json")


def randn(*shape):
    return torch.randn(*shape, dtype=DT, device=DEV)


def tj(t):
    """Tensor -> {"shape": [...], "data": [flat row-major floats]}."""
    t = t.detach().to(DT).contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


cases = []


def add(kernel, name, params, tensors):
    assert all(c["name"] != name for c in cases), name
    cases.append({"kernel": kernel, "name": name, "params": params,
                  "tensors": {k: tj(v) for k, v in tensors.items()}})


# ---------------------------------------------------------------- linear
for (n, i, o) in [(1, 3, 5), (7, 13, 5), (17, 33, 9)]:
    x = randn(n, i).requires_grad_()
    w = randn(o, i).requires_grad_()          # PyTorch layout [out, in]
    b = randn(o).requires_grad_()
    dy = randn(n, o)
    y = F.linear(x, w, b)                     # x @ W.T + b
    (y * dy).sum().backward()
    add("linear", f"linear_{n}x{i}x{o}", {"rows": n, "in_features": i, "out_features": o},
        {"x": x, "weight": w, "bias": b, "dy": dy, "y": y,
         "dx": x.grad, "dweight": w.grad, "dbias": b.grad})

# ---------------------------------------------------------------- activations
SPECIAL = torch.tensor([0.0, 1e-8, -1e-8, 6.0, -6.0, 10.0, -10.0], dtype=DT)
LEN = 101
x_act = torch.cat([SPECIAL, randn(LEN - SPECIAL.numel()) * 3.0])
dy_act = randn(LEN)
acts = {
    "gelu_erf": lambda t: F.gelu(t, approximate="none"),
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "silu": F.silu,
}
for kname, fn in acts.items():
    x = x_act.clone().requires_grad_()
    y = fn(x)
    (y * dy_act).sum().backward()
    add(kname, f"{kname}_{LEN}", {"len": LEN},
        {"x": x, "dy": dy_act, "y": y, "dx": x.grad})

# ---------------------------------------------------------------- layernorm
EPS = 1e-5
for (rows, cols, offset) in [(1, 7, 0.0), (5, 33, 0.0), (3, 768, 0.0), (4, 17, 100.0)]:
    x = (randn(rows, cols) + offset).requires_grad_()
    g = randn(cols).requires_grad_()
    b = randn(cols).requires_grad_()
    dy = randn(rows, cols)
    y = F.layer_norm(x, (cols,), g, b, EPS)
    (y * dy).sum().backward()
    name = f"layernorm_{rows}x{cols}" + ("_offset100" if offset else "")
    add("layernorm", name, {"rows": rows, "cols": cols, "eps": EPS},
        {"x": x, "gamma": g, "beta": b, "dy": dy, "y": y,
         "dx": x.grad, "dgamma": g.grad, "dbeta": b.grad})

# ---------------------------------------------------------------- groupnorm
for (N, C, H, W, G) in [(2, 6, 5, 3, 3), (1, 4, 7, 7, 1), (3, 8, 2, 2, 8), (2, 4, 1, 5, 2)]:
    x = randn(N, C, H, W).requires_grad_()
    g = randn(C).requires_grad_()
    b = randn(C).requires_grad_()
    dy = randn(N, C, H, W)
    y = F.group_norm(x, G, g, b, EPS)
    (y * dy).sum().backward()
    add("groupnorm", f"groupnorm_{N}x{C}x{H}x{W}_g{G}",
        {"batch": N, "channels": C, "height": H, "width": W, "groups": G, "eps": EPS},
        {"x": x, "gamma": g, "beta": b, "dy": dy, "y": y,
         "dx": x.grad, "dgamma": g.grad, "dbeta": b.grad})

# ---------------------------------------------------------------- upsample
UP_SHAPES = [(2, 3, 5, 3, 2), (1, 2, 1, 7, 3), (1, 1, 4, 1, 4), (2, 2, 3, 3, 2)]
for mode, kname in [("nearest", "upsample_nearest"), ("bilinear", "upsample_bilinear")]:
    for (N, C, H, W, f) in UP_SHAPES:
        x = randn(N, C, H, W).requires_grad_()
        dy = randn(N, C, H * f, W * f)
        if mode == "nearest":
            y = F.interpolate(x, scale_factor=f, mode="nearest")
        else:
            y = F.interpolate(x, scale_factor=f, mode="bilinear", align_corners=False)
        assert list(y.shape) == [N, C, H * f, W * f]
        (y * dy).sum().backward()
        add(kname, f"{kname}_{N}x{C}x{H}x{W}_f{f}",
            {"batch": N, "channels": C, "height": H, "width": W, "factor": f},
            {"x": x, "dy": dy, "y": y, "dx": x.grad})


# ---------------------------------------------------------------- adamw
# Per step: p.grad = given grad; if max_grad_norm is not None:
#   total_norm = clip_grad_norm_(params, max_grad_norm)  (L2 norm over ALL grads,
#   returned BEFORE clipping). PyTorch scales grads by
#   clip_coef = max_norm / (total_norm + 1e-6), clamped to at most 1.0
#   (i.e. grads are multiplied by min(1, max_norm / (total_norm + 1e-6))).
# then torch.optim.AdamW(..., foreach=False).step() (amsgrad=False, maximize=False).
def adamw_case(name, lr, betas, eps, wd, max_norm, shapes, grad_scales):
    steps = len(grad_scales)
    params = [randn(*s) for s in shapes]
    tensors = {f"param{j}": p.clone() for j, p in enumerate(params)}
    grads = [[randn(*s) * grad_scales[k] for s in shapes] for k in range(steps)]
    ps = [p.clone().requires_grad_() for p in params]
    opt = torch.optim.AdamW(ps, lr=lr, betas=betas, eps=eps, weight_decay=wd, foreach=False)
    active = []
    for k in range(steps):
        for j, p in enumerate(ps):
            tensors[f"grad{k}_{j}"] = grads[k][j].clone()
            p.grad = grads[k][j].clone()
        if max_norm is not None:
            tn = torch.nn.utils.clip_grad_norm_(ps, max_norm)
            tensors[f"grad_norm{k}"] = tn.reshape(1)
            active.append(bool(float(tn) > max_norm))
        opt.step()
        for j, p in enumerate(ps):
            st = opt.state[p]
            tensors[f"param_after{k}_{j}"] = p.detach().clone()
            tensors[f"exp_avg_after{k}_{j}"] = st["exp_avg"].clone()
            tensors[f"exp_avg_sq_after{k}_{j}"] = st["exp_avg_sq"].clone()
    if max_norm is not None:
        assert any(active) and not all(active), active
    add("adamw", name,
        {"lr": lr, "beta1": betas[0], "beta2": betas[1], "eps": eps,
         "weight_decay": wd, "max_grad_norm": max_norm, "steps": steps},
        tensors)
    return active


adamw_case("adamw_noclip", 1e-3, (0.9, 0.999), 1e-8, 0.01, None,
           [(7,), (3, 5), (1,)], [1.0] * 5)
ACTIVE = adamw_case("adamw_clip", 3e-4, (0.9, 0.95), 1e-6, 0.1, 1.0,
                    [(7,), (3, 5), (1,)], [10.0, 0.1, 10.0, 0.1, 1.0])

# ---------------------------------------------------------------- write
doc = {
    "generator": "conformance/golden/make_golden.py",
    "torch_version": torch.__version__,
    "dtype": "float64",
    "cases": cases,
}
with open(OUT, "w") as fh:
    json.dump(doc, fh, allow_nan=False, separators=(",", ":"))
    fh.write("\n")
print(f"wrote {OUT}: {len(cases)} cases, {os.path.getsize(OUT)} bytes; "
      f"adamw_clip active per step: {ACTIVE}")
