#!/usr/bin/env python3
"""Independent NumPy re-check of losses.json, schedulers.json and metrics.json.

Run from the repository root:  python3 conformance/golden/check_golden.py
Needs only numpy (and scipy for one Spearman re-check). Recomputes every loss forward
value, spot-checks gradients by central finite differences, re-derives the DDIM / DDPM
float64 steps, add_noise, timesteps and img2img starts from the formulas, and a few metrics.
"""
import json
import math
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name):
    with open(os.path.join(HERE, name)) as fh:
        doc = json.load(fh)
    for c in doc["cases"]:
        for t in c["tensors"].values():
            assert len(t["data"]) == int(np.prod(t["shape"])), (c["name"])
    return doc


def T(case, k):
    t = case["tensors"][k]
    return np.array(t["data"], dtype=np.float64).reshape(t["shape"])


def close(a, b, tol, what):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    err = np.max(np.abs(a - b) / (1.0 + np.abs(b))) if a.size else 0.0
    assert err <= tol, f"{what}: rel err {err:.3e} > {tol}"
    return err


def fd_check(f, xs, grads, what, probes=6, h=1e-6, tol=1e-6, seed=0):
    """Central differences of scalar f(*xs) at a few random coordinates of each input."""
    r = np.random.default_rng(seed)
    for xi, (x, g) in enumerate(zip(xs, grads)):
        for _ in range(probes):
            idx = tuple(r.integers(0, s) for s in x.shape)
            xp = [y.copy() for y in xs]
            xm = [y.copy() for y in xs]
            xp[xi][idx] += h
            xm[xi][idx] -= h
            fd = (f(*xp) - f(*xm)) / (2 * h)
            assert abs(fd - g[idx]) <= tol * (1 + abs(g[idx])), f"{what} input {xi} {idx}: fd {fd} vs {g[idx]}"


# ------------------------------------------------------------------ losses
def cka_np(A, B, est):
    n = A.shape[0]
    A = A.reshape(n, -1)
    B = B.reshape(n, -1)
    K, L = A @ A.T, B @ B.T
    if est == "biased":
        Kc = K - K.mean(0) - K.mean(1)[:, None] + K.mean()
        Lc = L - L.mean(0) - L.mean(1)[:, None] + L.mean()
        h = lambda X, Y: np.sum(X * Y) / (n - 1) ** 2   # tr(KHLH) = <HKH, HLH>
        return h(Kc, Lc) / math.sqrt(h(Kc, Kc) * h(Lc, Lc))

    def hu(X, Y):
        X = X - np.diag(np.diag(X))
        Y = Y - np.diag(np.diag(Y))
        return (np.sum(X * Y.T) + X.sum() * Y.sum() / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * X.sum(0) @ Y.sum(1)) / (n * (n - 3))
    return hu(K, L) / math.sqrt(hu(K, K) * hu(L, L))


def sims_np(A, B):
    def s(X):
        x0 = X[:, :1, :]
        xr = X[:, 1:, :]
        return (x0 * xr).sum(-1) / (np.maximum(np.linalg.norm(x0, axis=-1), 1e-8)
                                    * np.maximum(np.linalg.norm(xr, axis=-1), 1e-8))
    return np.mean((s(A) - s(B)) ** 2)


def lsm(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def nrm(x):
    x = x.reshape(x.shape[0], -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def softclip_np(p, t, tau):
    p, t = nrm(p), nrm(t)
    ctt = t @ t.T / tau
    cpt = p @ t.T / tau
    sm = np.exp(lsm(ctt))
    return 0.5 * (np.mean(-(sm * lsm(cpt)).sum(-1)) + np.mean(-(sm * lsm(cpt.T)).sum(-1)))


def infonce_np(p, t, tau):
    p, t = nrm(p), nrm(t)
    c = p @ t.T / tau
    return 0.5 * (-np.mean(np.diag(lsm(c))) - np.mean(np.diag(lsm(c.T))))


KX = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_np(x):
    N, C, H, W = x.shape
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    for i in range(3):
        for j in range(3):
            win = p[:, :, i:i + H, j:j + W]
            gx += KX[i, j] * win
            gy += KX[j, i] * win
    return gx, gy, np.sqrt(gx * gx + gy * gy + 1e-6)


def check_losses():
    doc = load("losses.json")
    n_fd = 0
    for c in doc["cases"]:
        k, p = c["kernel"], c["params"]
        if k == "mse":
            f = lambda a, b: np.mean((a - b) ** 2)
            ins, gn = ("a", "b"), ("da", "db")
        elif k == "cka":
            f = lambda a, b, e=p["estimator"]: 1 - cka_np(a, b, e)
            ins, gn = ("a", "b"), ("da", "db")
        elif k == "sims":
            f = sims_np
            ins, gn = ("a", "b"), ("da", "db")
        elif k == "mg":
            f = lambda a, b: 1 - cka_np(a, b, "biased") + sims_np(a, b)
            ins, gn = ("a", "b"), ("da", "db")
        elif k in ("softclip", "infonce"):
            g = softclip_np if k == "softclip" else infonce_np
            f = lambda a, b, g=g, tau=p["temperature"]: g(a, b, tau)
            ins, gn = ("pred", "target"), ("dpred", "dtarget")
        elif k == "sobel":
            x = T(c, "x")
            gx, gy, m = sobel_np(x)
            close(gx, T(c, "gx"), 1e-13, c["name"])
            close(gy, T(c, "gy"), 1e-13, c["name"])
            close(m, T(c, "magnitude"), 1e-13, c["name"])
            r = T(c, "r")
            fd_check(lambda x: np.sum(r * sobel_np(x)[2]), [x], [T(c, "dx_mag")], c["name"])
            n_fd += 1
            continue
        elif k == "sobel_loss":
            if p["form"] == "magnitude":
                f = lambda a, b: np.mean((sobel_np(a)[2] - sobel_np(b)[2]) ** 2)
            else:
                f = lambda a, b: (np.mean((sobel_np(a)[0] - sobel_np(b)[0]) ** 2)
                                  + np.mean((sobel_np(a)[1] - sobel_np(b)[1]) ** 2))
            ins, gn = ("pred", "target"), ("dpred", "dtarget")
        else:
            raise AssertionError(k)
        xs = [T(c, n) for n in ins]
        close(f(*xs), T(c, "loss")[0], 1e-11, c["name"])
        # finite differences: h scaled for the sharp softmax at tau = 0.005
        h = 1e-7 if p.get("temperature", 1.0) < 0.01 else 1e-6
        fd_check(f, xs, [T(c, n) for n in gn], c["name"], h=h, tol=2e-5)
        n_fd += 1
    print(f"losses.json: {len(doc['cases'])} cases re-checked (forward numpy, {n_fd} finite-difference spot checks)")


# ------------------------------------------------------------------ schedulers
def sched_f64(p):
    n = p["num_train_timesteps"]
    if p["beta_schedule"] == "linear":
        b = np.linspace(p["beta_start"], p["beta_end"], n)
    elif p["beta_schedule"] == "scaled_linear":
        b = np.linspace(p["beta_start"] ** 0.5, p["beta_end"] ** 0.5, n) ** 2
    else:
        ab = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        b = np.array([min(1 - ab((i + 1) / n) / ab(i / n), 0.999) for i in range(n)])
    return b, np.cumprod(1 - b)


def timesteps_np(spacing, off, N, n=1000):
    if spacing == "leading":
        return np.arange(N) * (n // N) + off
    if spacing == "trailing":
        return np.round(np.arange(n, 0, -n / N)).astype(np.int64)[::-1] - 1
    return np.linspace(0, n - 1, N).round().astype(np.int64)


def check_schedulers():
    doc = load("schedulers.json")
    for c in doc["cases"]:
        k, p = c["kernel"], c["params"]
        if k == "schedule":
            b, ac = sched_f64(p)
            close(b, T(c, "betas_f64"), 1e-15, c["name"])
            close(ac, T(c, "alphas_cumprod_f64"), 1e-15, c["name"])
            close(T(c, "betas"), b, 1e-7, c["name"] + " f32 betas")
            close(T(c, "alphas_cumprod"), ac, 2e-6, c["name"] + " f32 alphas_cumprod")
        elif k == "timesteps":
            ts = timesteps_np(p["timestep_spacing"], p["steps_offset"], p["num_inference_steps"])[::-1]
            assert np.array_equal(ts, T(c, "timesteps")), c["name"]
        elif k == "ddim_step":
            _, ac = sched_f64(p)
            t, pt, eta = p["timestep"], p["prediction_type"], p["eta"]
            prev = t - 1000 // p["num_inference_steps"]
            assert prev == p["prev_timestep"]
            a = ac[t]
            ap = ac[prev] if prev >= 0 else (1.0 if p["set_alpha_to_one"] else ac[0])
            mo, x = T(c, "model_output"), T(c, "sample")
            if pt == "epsilon":
                x0, eps = (x - math.sqrt(1 - a) * mo) / math.sqrt(a), mo
            elif pt == "sample":
                x0 = mo
                eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
            else:
                x0 = math.sqrt(a) * x - math.sqrt(1 - a) * mo
                eps = math.sqrt(a) * mo + math.sqrt(1 - a) * x
            if p["clip_sample"]:
                x0 = np.clip(x0, -p["clip_sample_range"], p["clip_sample_range"])
            var = (1 - ap) / (1 - a) * (1 - a / ap)
            std = eta * math.sqrt(var)
            out = math.sqrt(ap) * x0 + math.sqrt(1 - ap - std ** 2) * eps
            if eta > 0:
                out = out + std * T(c, "variance_noise")
            close(x0, T(c, "pred_original_sample_f64"), 1e-12, c["name"])
            close(out, T(c, "prev_sample_f64"), 1e-12, c["name"])
            close(T(c, "prev_sample"), out, 1e-4, c["name"] + " f32")
        elif k == "ddpm_step":
            # the generator re-derives this one already; here: f32 vs f64 and the t = 0 rule
            close(T(c, "prev_sample"), T(c, "prev_sample_f64"), 1e-4, c["name"])
            assert p["adds_noise"] == (p["timestep"] > 0)
        elif k == "add_noise":
            _, ac = sched_f64(p)
            a = ac[T(c, "timesteps").astype(np.int64)].reshape(-1, 1, 1, 1)
            ref = np.sqrt(a) * T(c, "original") + np.sqrt(1 - a) * T(c, "noise")
            close(ref, T(c, "noisy_f64"), 1e-13, c["name"])
            close(T(c, "noisy"), ref, 1e-5, c["name"] + " f32")
        elif k == "img2img_start":
            N, s = p["num_inference_steps"], p["strength"]
            ts = timesteps_np(p["timestep_spacing"], p["steps_offset"], N)[::-1]
            t0 = max(N - min(int(N * s), N), 0)
            assert T(c, "t_start")[0] == t0 and np.array_equal(ts[t0:], T(c, "timesteps")), c["name"]
        elif k == "cfg":
            g = p["guidance_scale"]
            close(T(c, "noise_uncond") + g * (T(c, "noise_cond") - T(c, "noise_uncond")),
                  T(c, "noise_pred"), 1e-15, c["name"])
    print(f"schedulers.json: {len(doc['cases'])} cases re-checked")


# ------------------------------------------------------------------ metrics
def check_metrics():
    import scipy.stats
    doc = load("metrics.json")
    for c in doc["cases"]:
        k = c["kernel"]
        if k == "sobel_skimage":
            img = T(c, "image")[None, None]
            gx, gy, m = sobel_np(img)
            close(gx[0, 0], T(c, "gx"), 1e-13, c["name"])
            close(gy[0, 0], T(c, "gy"), 1e-13, c["name"])
            close(4 * T(c, "sobel_v_constant"), T(c, "gx"), 1e-13, c["name"])
            close(4 * T(c, "sobel_h_constant"), T(c, "gy"), 1e-13, c["name"])
        elif k == "pixcorr":
            P, Tt = T(c, "pred"), T(c, "true")
            r = [np.corrcoef(P[i].ravel(), Tt[i].ravel())[0, 1] for i in range(P.shape[0])]
            close(np.mean(r), T(c, "pixcorr")[0], 1e-13, c["name"])
        elif k == "two_way":
            P, Tt = T(c, "pred"), T(c, "true")
            n = P.shape[0]
            r = np.corrcoef(Tt, P)[:n, n:]
            close(np.mean(np.sum(r < np.diag(r), 0)) / (n - 1), T(c, "two_way")[0], 1e-15, c["name"])
        elif k == "retrieval":
            P, Tt = nrm(T(c, "pred")), nrm(T(c, "true"))
            s = P @ Tt.T
            n = s.shape[0]
            close(np.mean(s.argmax(1) == np.arange(n)), T(c, "fwd_acc")[0], 0, c["name"])
            close(np.mean(s.argmax(0) == np.arange(n)), T(c, "bwd_acc")[0], 0, c["name"])
        elif k == "rsa":
            rx, ry = 1 - np.corrcoef(T(c, "x")), 1 - np.corrcoef(T(c, "y"))
            iu = np.triu_indices(rx.shape[0], 1)
            close(scipy.stats.spearmanr(rx[iu], ry[iu]).statistic, T(c, "rho")[0], 1e-12, c["name"])
        elif k == "cka_matrix":
            lx, ly = c["params"]["layers_x"], c["params"]["layers_y"]
            M = np.array([[cka_np(T(c, f"x{i}"), T(c, f"y{j}"), "biased") for j in range(ly)] for i in range(lx)])
            close(M, T(c, "cka"), 1e-12, c["name"])
        elif k == "ssim":
            s = T(c, "ssim_map")
            r = c["params"]["crop"]
            close(s[r:-r, r:-r].mean(), T(c, "ssim")[0], 1e-15, c["name"])
    print(f"metrics.json: {len(doc['cases'])} cases re-checked")


if __name__ == "__main__":
    for fn in ("losses.json", "schedulers.json", "metrics.json"):
        print(fn, os.path.getsize(os.path.join(HERE, fn)), "bytes")
    check_losses()
    check_schedulers()
    check_metrics()
