"""Time the report's cases in PyTorch eager, on this machine, for the PyTorch column of
`cargo run --release -p benches --bin report -- --torch`.

The report writes its case list (ids, kernel names and every dimension) as JSON and
runs this script on it, so both sides time the same shapes; this prints one JSON
object on stdout:

    {"torch": "2.x", "devices": [{"id": "torch-cpu", "name": ..., "clock": ...,
      "floors": {"matmul_n": ..., "matmul_s": ..., "copy_bytes": ..., "copy_s": ...},
      "results": {"<case id>": {"median_s": ..., "min_s": ..., "max_s": ..., "samples": ...}
                  | {"error": "..."}}}]}

Devices: the CPU with the CPU backend's thread count (`torch.set_num_threads`), and
every CUDA device PyTorch sees (`torch-cuda:N`, timed with CUDA events). Each case is
PyTorch's own way to do the same work, float32, eager: an aten kernel where there is
one (`native_layer_norm`, `gelu_backward`, `addmm`, ...), otherwise the usual
composition of tensor ops; backward cases time `torch.autograd.grad` of a graph built
once (retain_graph), i.e. the backward kernels plus autograd's own overhead, as a
training loop pays it. Timing: warm-up, then samples until the budget is spent (calls
grouped so a sample lasts >= 0.5 ms), median. Exit status 3 when PyTorch is absent.

    python3 benches/pytorch/time_kernels.py --cases target/bench-report/torch_cases.json
"""
import argparse
import gc
import json
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("PyTorch not installed", file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pytorch"))


# ------------------------------------------------------------------------ timing


class Clock:
    def __init__(self, device):
        self.device = device
        self.cuda = device.type == "cuda"

    def describe(self):
        return "CUDA events" if self.cuda else "time.perf_counter"

    def time(self, fn, calls=1):
        """Seconds per call of `calls` calls of fn."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / calls
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t) / calls


def measure(clock, fn, budget, min_samples, max_samples, warmup, max_warmup, min_sample=5e-4):
    t0 = time.perf_counter()
    first = clock.time(fn)
    n = 1
    while n < max_warmup and time.perf_counter() - t0 < warmup:
        first = min(first, clock.time(fn))
        n += 1
    calls = 1 if first >= min_sample else max(1, min(10000, int(min_sample / max(first, 5e-8))))
    samples = []
    t0 = time.perf_counter()
    while len(samples) < min_samples or (len(samples) < max_samples and time.perf_counter() - t0 < budget):
        samples.append(clock.time(fn, calls))
    return {"median_s": statistics.median(samples), "min_s": min(samples),
            "max_s": max(samples), "samples": len(samples)}


# ------------------------------------------------------------------------ helpers


def rnd(dev, *shape, scale=1.0, requires_grad=False):
    x = (torch.rand(*shape, device=dev) * 2 - 1) * scale
    return x.requires_grad_(requires_grad)


def backward_of(fn, inputs, grads=None):
    """Time the backward of fn(*inputs) (one output or a tuple) w.r.t. inputs."""
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if grads is None:
        grads = [torch.ones_like(o) if o.numel() == 1 else torch.randn_like(o) for o in outs]
    return lambda: torch.autograd.grad(outs, inputs, grads, retain_graph=True)


def cos_profile(x):
    x0, rest = x[:, :1, :], x[:, 1:, :]
    dot = (x0 * rest).sum(-1)
    return dot / (x0.norm(dim=-1).clamp_min(1e-8) * rest.norm(dim=-1).clamp_min(1e-8))


def sims_loss(a, b):
    return ((cos_profile(a) - cos_profile(b)) ** 2).mean()


def hsic_from_grams(k, l, unbiased):
    n = k.shape[0]
    if not unbiased:
        h = torch.eye(n, dtype=k.dtype, device=k.device) - 1.0 / n
        return torch.trace(k @ h @ l @ h) / (n - 1) ** 2
    kt = k - torch.diag(torch.diag(k))
    lt = l - torch.diag(torch.diag(l))
    one = torch.ones(n, 1, dtype=k.dtype, device=k.device)
    t1 = torch.trace(kt @ lt)
    t2 = (one.T @ kt @ one) * (one.T @ lt @ one) / ((n - 1) * (n - 2))
    t3 = 2.0 / (n - 2) * (one.T @ kt @ lt @ one)
    return ((t1 + t2 - t3) / (n * (n - 3))).squeeze()


def cka_from_grams(k, l, unbiased):
    return 1.0 - hsic_from_grams(k, l, unbiased) / torch.sqrt(
        hsic_from_grams(k, k, unbiased) * hsic_from_grams(l, l, unbiased))


def cka_loss(a, b, unbiased):
    a, b = a.flatten(1), b.flatten(1)
    return cka_from_grams(a @ a.T, b @ b.T, unbiased)


def contrastive_from_logits(kind, c_pt, c_tt):
    if kind == "softclip":
        soft = F.softmax(c_tt, dim=-1)
        l1 = -(soft * F.log_softmax(c_pt, dim=-1)).sum(-1).mean()
        l2 = -(soft * F.log_softmax(c_pt.T, dim=-1)).sum(-1).mean()
        return 0.5 * (l1 + l2)
    labels = torch.arange(c_pt.shape[0], device=c_pt.device)
    return 0.5 * (F.cross_entropy(c_pt, labels) + F.cross_entropy(c_pt.T, labels))


def clip_loss(kind, p, t, tau):
    p = F.normalize(p.flatten(1), dim=-1)
    t = F.normalize(t.flatten(1), dim=-1)
    return contrastive_from_logits(kind, p @ t.T / tau, t @ t.T / tau if kind == "softclip" else None)


def sobel(x):
    n, c, h, w = x.shape
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device)
    weight = torch.stack([kx, kx.T]).unsqueeze(1).repeat(c, 1, 1, 1)
    g = F.conv2d(x, weight, padding=1, groups=c).view(n, c, 2, h, w)
    gx, gy = g[:, :, 0], g[:, :, 1]
    return gx, gy, torch.sqrt(gx ** 2 + gy ** 2 + 1e-6)


def sobel_loss(pred, target):
    return ((sobel(pred)[2] - sobel(target)[2]) ** 2).mean()


def ddim_coefficients():
    """Versatile Diffusion's scheduler (scaled_linear 0.00085..0.012, 1000 steps, 50
    inference steps, leading spacing, steps_offset 1), the 11th step, eta 0."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    ac = torch.cumprod(1.0 - betas, 0)
    ts = [i * 20 + 1 for i in range(50)][::-1]
    t = ts[10]
    a_t, a_prev = float(ac[t]), float(ac[t - 20])
    return a_t, a_prev


# ------------------------------------------------------------------------ cases


def make(case, dev):
    """A zero-argument callable doing one call of the case, or None."""
    k, p = case["kernel"], case["params"]
    R = lambda *s, **kw: rnd(dev, *s, **kw)  # noqa: E731

    if k.startswith("gemm_"):
        m, n, kk, ta, tb = p["m"], p["n"], p["k"], p["trans_a"], p["trans_b"]
        a = R(kk, m) if ta else R(m, kk)
        b = R(n, kk) if tb else R(kk, n)
        c = torch.empty(m, n, device=dev)
        return lambda: torch.matmul(a.T if ta else a, b.T if tb else b, out=c)
    if k == "linear_fwd":
        x, w, bias = R(p["rows"], p["in"]), R(p["out"], p["in"], scale=0.01), R(p["out"])
        y = torch.empty(p["rows"], p["out"], device=dev)
        return lambda: torch.addmm(bias, x, w.T, out=y)
    if k == "linear_bwd":
        dy, x, w = R(p["rows"], p["out"]), R(p["rows"], p["in"]), R(p["out"], p["in"], scale=0.01)
        dx = torch.empty(p["rows"], p["in"], device=dev)
        dw, db = torch.zeros(p["out"], p["in"], device=dev), torch.zeros(p["out"], device=dev)

        def f():
            torch.mm(dy, w, out=dx)
            dw.addmm_(dy.T, x)
            db.add_(dy.sum(0))
        return f
    if k == "bias_add":
        y, b = R(p["outer"], p["channels"]), R(p["channels"])
        return lambda: y.add_(b)
    if k == "bias_bwd":
        dy, db = R(p["outer"], p["channels"]), torch.zeros(p["channels"], device=dev)
        return lambda: db.add_(dy.sum(0))
    if k.endswith("_fwd") and p.get("act"):
        x = R(p["len"], scale=4.0)
        act = p["act"]
        if act == "silu":
            return lambda: F.silu(x)
        approx = "tanh" if act == "gelu_tanh" else "none"
        return lambda: F.gelu(x, approximate=approx)
    if k.endswith("_bwd") and p.get("act"):
        x, dy = R(p["len"], scale=4.0), R(p["len"])
        act = p["act"]
        if act == "silu":
            return lambda: torch.ops.aten.silu_backward(dy, x)
        approx = "tanh" if act == "gelu_tanh" else "none"
        return lambda: torch.ops.aten.gelu_backward(dy, x, approximate=approx)
    if k in ("layernorm_fwd", "layernorm_bwd"):
        r, c = p["rows"], p["cols"]
        x, g, b = R(r, c), R(c), R(c)
        if k == "layernorm_fwd":
            return lambda: torch.native_layer_norm(x, [c], g, b, 1e-5)
        _, mean, rstd = torch.native_layer_norm(x, [c], g, b, 1e-5)
        dy = R(r, c)
        return lambda: torch.ops.aten.native_layer_norm_backward(
            dy, x, [c], mean, rstd, g, b, [True, True, True])
    if k in ("groupnorm_fwd", "groupnorm_bwd"):
        n, c, s, grp = p["batch"], p["channels"], p["spatial"], p["groups"]
        x, g, b = R(n, c, s), R(c), R(c)
        if k == "groupnorm_fwd":
            return lambda: torch.ops.aten.native_group_norm(x, g, b, n, c, s, grp, 1e-5)
        _, mean, rstd = torch.ops.aten.native_group_norm(x, g, b, n, c, s, grp, 1e-5)
        dy = R(n, c, s)
        return lambda: torch.ops.aten.native_group_norm_backward(
            dy, x, mean, rstd, g, n, c, s, grp, [True, True, True])
    if k in ("dropout_fwd", "dropout_bwd"):
        x, prob = R(p["len"]), p["p"]
        if k == "dropout_fwd":
            return lambda: torch.ops.aten.native_dropout(x, prob, True)
        _, mask = torch.ops.aten.native_dropout(x, prob, True)
        return lambda: torch.ops.aten.native_dropout_backward(x, mask, 1.0 / (1.0 - prob))
    if k.startswith("upsample_"):
        n, c, h, w = p["shape"]
        f = p["factor"]
        mode = p["mode"]
        kw = {"align_corners": False} if mode == "bilinear" else {}
        up = lambda x: F.interpolate(x, scale_factor=f, mode=mode, **kw)  # noqa: E731
        if k.endswith("_fwd"):
            x = R(n, c, h, w)
            return lambda: up(x)
        return backward_of(up, [R(n, c, h, w, requires_grad=True)])
    if k == "add":
        a, b, c = R(p["len"]), R(p["len"]), torch.empty(p["len"], device=dev)
        return lambda: torch.add(a, b, out=c)
    if k == "scale":
        x = R(p["len"])
        return lambda: x.mul_(-1.0)
    if k == "axpy":
        x, y = R(p["len"]), R(p["len"])
        return lambda: y.add_(x, alpha=0.5)
    if k.startswith("reduce_"):
        x = R(p["rows"], p["cols"])
        return {
            "sum": lambda: x.sum(1),
            "mean": lambda: x.mean(1),
            "max": lambda: x.amax(1),
            "logsumexp": lambda: torch.logsumexp(x, 1),
            "sum_squares": lambda: x.square().sum(1),
        }[p["op"]]
    if k == "adamw":
        t, total = p["tensors"], p["params"]
        sizes = [total // t + (1 if i < total % t else 0) for i in range(t)]
        params = [torch.nn.Parameter(R(s)) for s in sizes]
        for q in params:
            q.grad = R(q.numel(), scale=0.01)
        try:
            opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.01, fused=True)
            opt.step()
        except (RuntimeError, TypeError):
            opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.01, foreach=True)
        grads = [q.grad for q in params]

        def f():
            # The Rust kernel also writes the global gradient norm.
            torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            opt.step()
        return f
    if k == "philox_bits":
        x = torch.empty(p["len"], device=dev)
        return lambda: x.random_(0, 65536)
    if k == "fill_uniform":
        x = torch.empty(p["len"], device=dev)
        return lambda: x.uniform_()
    if k == "fill_normal":
        x = torch.empty(p["len"], device=dev)
        return lambda: x.normal_()
    if k in ("mse_fwd", "mse_bwd"):
        a, b = R(p["len"], requires_grad=k == "mse_bwd"), R(p["len"], requires_grad=k == "mse_bwd")
        if k == "mse_fwd":
            return lambda: F.mse_loss(a, b)
        return backward_of(F.mse_loss, [a, b])
    if k.startswith("cka_grams_"):
        n = p["n"]
        unbiased = p["estimator"] == "unbiased"
        a, b = R(n, 64), R(n, 64)
        kk, ll = (a @ a.T).requires_grad_(True), (b @ b.T).requires_grad_(True)
        if k.endswith("_fwd"):
            return lambda: cka_from_grams(kk, ll, unbiased)
        return backward_of(lambda x, y: cka_from_grams(x, y, unbiased), [kk, ll])
    if k in ("sims_fwd", "sims_bwd"):
        shape = p["shape"]
        a, b = R(*shape, requires_grad=k == "sims_bwd"), R(*shape, requires_grad=k == "sims_bwd")
        if k == "sims_fwd":
            return lambda: sims_loss(a, b)
        return backward_of(sims_loss, [a, b])
    if k in ("l2norm_fwd", "l2norm_bwd"):
        x = R(p["rows"], p["cols"], requires_grad=k == "l2norm_bwd")
        norm = lambda v: F.normalize(v, dim=1)  # noqa: E731
        if k == "l2norm_fwd":
            return lambda: norm(x)
        return backward_of(norm, [x])
    if k.startswith("contrastive_"):
        n, kind, tau = p["n"], p["kind"], p["temperature"]
        bwd = k.endswith("_bwd")
        pt = R(n, n, scale=1.0 / tau, requires_grad=bwd)
        tt = R(n, n, scale=1.0 / tau, requires_grad=bwd) if kind == "softclip" else None
        if not bwd:
            return lambda: contrastive_from_logits(kind, pt, tt)
        if kind == "softclip":
            return backward_of(lambda a, b: contrastive_from_logits(kind, a, b), [pt, tt])
        return backward_of(lambda a: contrastive_from_logits(kind, a, None), [pt])
    if k.startswith("clip_logits_"):
        n, kind, tau = p["n"], p["kind"], p["temperature"]
        soft = kind == "softclip"
        bwd = k.endswith("_bwd")
        g_pt = R(n, n, requires_grad=bwd)
        g_tt = R(n, n, requires_grad=bwd) if soft else None
        p_sq = (1.0 + 0.5 * R(n)).requires_grad_(bwd)
        t_sq = (1.0 + 0.5 * R(n)).requires_grad_(bwd)

        def logits(gp, gt, ps, ts):
            r = 1.0 / ps.sqrt().clamp_min(1e-12)
            s = 1.0 / ts.sqrt().clamp_min(1e-12)
            out = gp * (r[:, None] * s[None, :]) / tau
            return (out, gt * (s[:, None] * s[None, :]) / tau) if gt is not None else out

        if not bwd:
            return lambda: logits(g_pt, g_tt, p_sq, t_sq)
        if soft:
            return backward_of(logits, [g_pt, g_tt, p_sq, t_sq])
        return backward_of(lambda gp, ps, ts: logits(gp, None, ps, ts), [g_pt, p_sq, t_sq])
    if k.startswith("clip_grams_"):
        n, d, soft = p["n"], p["d"], p["kind"] == "softclip"
        a, b = R(n, d), R(n, d)

        def f():
            ps, ts = a.square().sum(1), b.square().sum(1)
            g = a @ b.T
            return (ps, ts, g, b @ b.T) if soft else (ps, ts, g)
        return f
    if k.startswith("clip_inputs_"):
        n, d, soft = p["n"], p["d"], p["kind"] == "softclip"
        w_pt, d_p, w_tt = R(n, n), R(n, n), R(n, n)
        a, b = R(n, d), R(n, d)
        da, db = torch.zeros(n, d, device=dev), torch.zeros(n, d, device=dev)
        dp_diag, wtt_diag = d_p.diagonal()[:, None], w_tt.diagonal()[:, None]

        def f():
            da.add_(w_pt @ b).add_(dp_diag * a)
            db.add_(w_pt.T @ a)
            db.add_(w_tt @ b if soft else wtt_diag * b)
        return f
    if k in ("sobel_fwd", "sobel_bwd"):
        shape = p["shape"]
        x = R(*shape, requires_grad=k == "sobel_bwd")
        if k == "sobel_fwd":
            return lambda: sobel(x)
        return backward_of(sobel, [x])
    if k in ("sobel_loss_fwd", "sobel_loss_bwd"):
        shape = p["shape"]
        a, b = R(*shape, requires_grad=k == "sobel_loss_bwd"), R(*shape)
        if k == "sobel_loss_fwd":
            return lambda: sobel_loss(a, b)
        return backward_of(lambda x: sobel_loss(x, b), [a])
    if k == "scheduler_step_ddim":
        shape = p["shape"]
        eps, x = R(*shape), R(*shape)
        a_t, a_prev = ddim_coefficients()

        def f():
            x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
            return a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps
        return f
    if k == "add_noise":
        shape = p["shape"]
        x0, noise = R(*shape), R(*shape)
        sa = torch.tensor([0.3 + 0.6 * i / shape[0] for i in range(shape[0])], device=dev)
        sb = (1 - sa ** 2).sqrt()
        sa, sb = sa.view(-1, 1, 1, 1), sb.view(-1, 1, 1, 1)
        return lambda: sa * x0 + sb * noise
    if k == "guidance_combine":
        shape = p["shape"]
        u, c = R(*shape), R(*shape)
        return lambda: u + 7.5 * (c - u)
    if k.startswith("loss_"):
        tok, lat, tau = p["tokens"], p["latents"], p["temperature"]
        if k == "loss_sobel":
            a, b = R(*lat, requires_grad=True), R(*lat)
            fn, inputs = (lambda x: sobel_loss(x, b)), [a]
        else:
            a, b = R(*tok, requires_grad=True), R(*tok, requires_grad=True)
            inputs = [a, b]
            fn = {
                "loss_mse": F.mse_loss,
                "loss_cka_biased": lambda x, y: cka_loss(x, y, False),
                "loss_cka_unbiased": lambda x, y: cka_loss(x, y, True),
                "loss_sims": sims_loss,
                "loss_mg": lambda x, y: cka_loss(x, y, False) + sims_loss(x, y),
                "loss_softclip": lambda x, y: clip_loss("softclip", x, y, tau),
                "loss_infonce": lambda x, y: clip_loss("infonce", x, y, tau),
            }[k]

        def f():
            for x in inputs:
                x.grad = None
            fn(*inputs).backward()
        return f
    if k.startswith("step_"):
        return model_step(p["config"], p["batch"], dev)
    return None


def model_step(cfg, batch, dev):
    import brain_models as bm

    model = bm.build_model(cfg).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    R = lambda *s: torch.randn(*s, device=dev)  # noqa: E731
    if cfg["model"] == "brainmclip":
        inputs = {"f_s": R(batch, cfg["n_semantic"]), "f_d": R(batch, cfg["n_detail"])}
        targets = {"e_t": R(batch, cfg["text_tokens"], cfg["embed_dim"]),
                   "e_is": R(batch, cfg["image_tokens"], cfg["embed_dim"]),
                   "e_id": R(batch, cfg["image_tokens"], cfg["embed_dim"])}
    else:
        L = cfg["latent_size"]
        inputs = {"f_low": R(batch, cfg["n_low"]), "f_high": R(batch, cfg["n_high"])}
        targets = {"z": R(batch, cfg["latent_channels"], L, L),
                   "e_img": R(batch, cfg["image_tokens"], cfg["embed_dim"]),
                   "e_cap": R(batch, cfg["text_tokens"], cfg["embed_dim"])}

    def step():
        opt.zero_grad(set_to_none=True)
        total, _ = model.loss(inputs, targets)
        total.backward()
        opt.step()
        return total.item()  # the Rust step downloads its loss terms too
    return step


def warm_up(dev, seconds=0.5):
    """PyTorch initialises lazily (thread pools, oneDNN/cuBLAS handles): its first ops
    take up to hundreds of ms. Run a mix of ops first so no case pays for that."""
    a = torch.rand(256, 256, device=dev, requires_grad=True)
    x = torch.rand(4, 4, 32, 32, device=dev, requires_grad=True)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        y = (a @ a).relu().sum() + sobel_loss(x, x.detach() * 0.5)
        y.backward()
        F.gelu(a).sum().item()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def floors(clock, dev):
    n = 2048
    a, b = torch.rand(n, n, device=dev), torch.rand(n, n, device=dev)
    c = torch.empty(n, n, device=dev)
    mm = measure(clock, lambda: torch.matmul(a, b, out=c), 0.3, 3, 20, 0.1, 3)
    del a, b, c
    elems = 32 << 20  # 128 MiB each way
    src, dst = torch.rand(elems, device=dev), torch.empty(elems, device=dev)
    cp = measure(clock, lambda: dst.copy_(src), 0.3, 3, 50, 0.1, 3)
    del src, dst
    return {"matmul_n": n, "matmul_s": mm["median_s"], "copy_bytes": 8.0 * elems,
            "copy_s": cp["median_s"]}


def run_device(dev_id, name, dev, cases, budget):
    if dev.type == "cuda":
        torch.cuda.set_device(dev)  # events and new tensors on this device
    clock = Clock(dev)
    print(f"== {dev_id}: {name} ({clock.describe()})", file=sys.stderr, flush=True)
    warm_up(dev)
    out = {"id": dev_id, "name": name, "clock": clock.describe(), "floors": floors(clock, dev),
           "results": {}}
    for i, case in enumerate(cases):
        cid = case["id"]
        step = case["kernel"].startswith("step_")
        tiny = case["set"] == "tiny"
        try:
            fn = make(case, dev)
            if fn is None:
                res = {"error": "no PyTorch equivalent"}
            elif step:
                res = measure(clock, fn, (0.05 if tiny else 5.0) * budget, 3, 10, 0.0, 1, 0.0)
            elif tiny:
                res = measure(clock, fn, 0.02 * budget, 3, 20, 0.01, 5, 1e-4)
            else:
                res = measure(clock, fn, budget, 5, 200, 0.2, 50)
        except Exception as e:  # a case PyTorch cannot run here (memory, op missing)
            res = {"error": f"{type(e).__name__}: {e}"[:200]}
        fn = None
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        what = (f"{1e3 * res['median_s']:.3f} ms" if "median_s" in res else res["error"])
        print(f"[{i + 1}/{len(cases)}] {dev_id} {cid}: {what}", file=sys.stderr, flush=True)
        out["results"][cid] = res
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", required=True, help="case list written by the report")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: the list's)")
    ap.add_argument("--devices", default="cpu,cuda", help="cpu and/or cuda")
    ap.add_argument("--budget", type=float, default=None, help="sampling seconds per case")
    args = ap.parse_args()
    with open(args.cases) as f:
        spec = json.load(f)
    threads = args.threads or spec.get("threads") or os.cpu_count()
    budget = args.budget or spec.get("budget") or 1.0
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    wanted = set(args.devices.split(","))
    devices = []
    if "cpu" in wanted:
        devices.append(("torch-cpu", f"cpu ({threads} threads)", torch.device("cpu")))
    if "cuda" in wanted and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            devices.append((f"torch-cuda:{i}", torch.cuda.get_device_name(i), torch.device("cuda", i)))
    result = {"torch": torch.__version__, "devices": []}
    for dev_id, name, dev in devices:
        result["devices"].append(run_device(dev_id, name, dev, spec["cases"], budget))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
