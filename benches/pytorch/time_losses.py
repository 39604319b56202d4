"""Time the PyTorch side of the loss / scheduler comparison (issue: loss, diffusion
and metric kernels, item 5) on this machine, same shapes and thread count as the
Rust side (`cargo run --release -p benches --bin losses_vs_torch`).

Each figure is the median over repeats (after warm-up) of forward + backward of one
loss in eager mode, float32, with `torch.set_num_threads(threads)`.

    python3 benches/pytorch/time_losses.py --threads 2 > torch_losses.json
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def cka_loss(a, b, unbiased=False):
    a = a.flatten(1)
    b = b.flatten(1)
    n = a.shape[0]
    k = a @ a.T
    l = b @ b.T

    def hsic(k, l):
        if not unbiased:
            h = torch.eye(n, dtype=k.dtype) - 1.0 / n
            return torch.trace(k @ h @ l @ h) / (n - 1) ** 2
        kt = k - torch.diag(torch.diag(k))
        lt = l - torch.diag(torch.diag(l))
        one = torch.ones(n, 1, dtype=k.dtype)
        t1 = torch.trace(kt @ lt)
        t2 = (one.T @ kt @ one) * (one.T @ lt @ one) / ((n - 1) * (n - 2))
        t3 = 2.0 / (n - 2) * (one.T @ kt @ lt @ one)
        return ((t1 + t2 - t3) / (n * (n - 3))).squeeze()

    return 1.0 - hsic(k, l) / torch.sqrt(hsic(k, k) * hsic(l, l))


def cos_profile(x):
    x0 = x[:, :1, :]
    rest = x[:, 1:, :]
    dot = (x0 * rest).sum(-1)
    return dot / (x0.norm(dim=-1).clamp_min(1e-8) * rest.norm(dim=-1).clamp_min(1e-8))


def sims_loss(a, b):
    return ((cos_profile(a) - cos_profile(b)) ** 2).mean()


def softclip_loss(p, t, tau):
    p = F.normalize(p.flatten(1), dim=-1)
    t = F.normalize(t.flatten(1), dim=-1)
    c_pt = p @ t.T / tau
    c_tt = t @ t.T / tau
    soft = F.softmax(c_tt, dim=-1)
    l1 = -(soft * F.log_softmax(c_pt, dim=-1)).sum(-1).mean()
    l2 = -(soft * F.log_softmax(c_pt.T, dim=-1)).sum(-1).mean()
    return 0.5 * (l1 + l2)


def infonce_loss(p, t, tau):
    p = F.normalize(p.flatten(1), dim=-1)
    t = F.normalize(t.flatten(1), dim=-1)
    logits = p @ t.T / tau
    labels = torch.arange(p.shape[0])
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def sobel_mag(x):
    n, c, h, w = x.shape
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype)
    ky = kx.T
    weight = torch.stack([kx, ky]).unsqueeze(1).repeat(c, 1, 1, 1)  # [2C, 1, 3, 3]
    g = F.conv2d(x, weight, padding=1, groups=c).view(n, c, 2, h, w)
    return torch.sqrt(g[:, :, 0] ** 2 + g[:, :, 1] ** 2 + 1e-6)


def sobel_loss(pred, target):
    return ((sobel_mag(pred) - sobel_mag(target)) ** 2).mean()


def median_time(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tok = (32, 257, 768)
    lat = (32, 4, 64, 64)
    a = torch.randn(*tok, requires_grad=True)
    b = torch.randn(*tok, requires_grad=True)
    la = torch.randn(*lat, requires_grad=True)
    lb = torch.randn(*lat)

    def fb(loss_fn, *inputs):
        def run():
            for x in inputs:
                x.grad = None
            loss_fn().backward()
        return run

    cases = {
        "mse": fb(lambda: F.mse_loss(a, b), a, b),
        "cka_biased": fb(lambda: cka_loss(a, b), a, b),
        "cka_unbiased": fb(lambda: cka_loss(a, b, unbiased=True), a, b),
        "sims": fb(lambda: sims_loss(a, b), a, b),
        "mg": fb(lambda: cka_loss(a, b) + sims_loss(a, b), a, b),
        "softclip_tau0.005": fb(lambda: softclip_loss(a, b, 0.005), a, b),
        "infonce_tau0.005": fb(lambda: infonce_loss(a, b, 0.005), a, b),
        "sobel_loss": fb(lambda: sobel_loss(la, lb), la),
    }
    out = {"torch": torch.__version__, "threads": args.threads, "shapes": {"tokens": tok, "latents": lat}, "median_s": {}}
    for name, fn in cases.items():
        out["median_s"][name] = median_time(fn, warmup=3, repeats=args.repeats)

    # One DDIM step (eta = 0, epsilon prediction) as diffusers computes it, in eager float32.
    x = torch.randn(*lat)
    eps = torch.randn(*lat)
    a_t = torch.tensor(0.5)
    a_prev = torch.tensor(0.6)

    def ddim():
        x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
        return a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps

    with torch.no_grad():
        out["median_s"]["ddim_step"] = median_time(ddim, warmup=3, repeats=args.repeats * 5)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
