#!/usr/bin/env python3
"""Golden vectors for the evaluation metrics (SPEC section 7), float64, from scikit-image,
SciPy and NumPy.

Run from the repository root:  python3 conformance/golden/make_metrics.py
Writes conformance/golden/metrics.json next to this script. Deterministic (fixed seed; the
test images are the ones bundled with scikit-image, no download).
Requires: scikit-image >= 0.20, scipy, numpy.

Kernels, params and tensors (all float64):
  ssim           a, b [H, W] (grayscale in [0, 1]) -> ssim [1], ssim_map [H, W],
                 gaussian_window_1d [11] (the separable window scipy applies)
                 params: source, distortion, height, width, sigma 1.5, truncate 3.5, win_size 11,
                 K1, K2, data_range 1, use_sample_covariance false, filter_mode "reflect",
                 crop 5 (ssim = mean of ssim_map[5:-5, 5:-5])
  sobel_skimage  image [H, W] ->
                 sobel_h, sobel_v            skimage.filters.sobel_h / sobel_v (installed version has no
                                             mode argument: scipy mode "reflect" borders)
                 sobel_h_constant, sobel_v_constant
                                             skimage.filters.sobel(image, axis=0 / 1, mode="constant")
                                             (= sobel_h / sobel_v with zero padding)
                 gx, gy, magnitude           SPEC convention (3x3 cross-correlation, zero padding,
                                             Kx = [[-1,0,1],[-2,0,2],[-1,0,1]], Ky = Kx^T, eps 1e-6)
                 params: relation strings, gx_scale 4, gy_scale 4 (gx = 4 * sobel_v_constant,
                 gy = 4 * sobel_h_constant, exactly, borders included)
  pixcorr        pred, true [n, 3, h, w] -> r [n] (Pearson r per image), pixcorr [1] (mean)
  two_way        pred, true [n, d] -> per_sample [n] (fraction of j != i won), two_way [1]
                 (mean; a fraction in [0, 1], x100 for percent), corr [n, n] (corr[i, j] =
                 Pearson r(pred_i, true_j))
  retrieval      pred, true [n, d] or [n, m, d] (flattened per row) -> sim [n, n] (cos(pred_i, true_j)),
                 fwd_argmax [n] (argmax_j sim[i, j]), bwd_argmax [n] (argmax_i sim[i, j] for each
                 true j), fwd_acc [1], bwd_acc [1]
  corr_distance  u, v [k, d] -> distance [k] (scipy.spatial.distance.correlation(u_i, v_i))
  rsa            x [n, d1], y [n, d2] -> rdm_x, rdm_y [n, n] (1 - Pearson r between rows),
                 rho [1] (scipy.stats.spearmanr of the k = 1 upper triangles)
  spearman       x, y [k] (with ties) -> rho [1] (scipy.stats.spearmanr, average ranks for ties)
  cka_matrix     x0..x{L1-1} [n, d_l], y0..y{L2-1} [n, e_l] -> cka [L1, L2] (linear, biased HSIC)
"""
import json
import os
import sys

import numpy as np
import scipy
import scipy.ndimage as ndi
import scipy.spatial.distance as ssd
import scipy.stats
import skimage
from skimage import color, data, filters, metrics, transform

SEED = 20240614
rng = np.random.default_rng(SEED)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics.json")


def tj(a):
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1).tolist()]}


cases = []


def add(kernel, name, params, tensors):
    assert all(c["name"] != name for c in cases), name
    for k, v in tensors.items():
        assert np.all(np.isfinite(np.asarray(v, dtype=np.float64))), (name, k)
    cases.append({"kernel": kernel, "name": name, "params": params,
                  "tensors": {k: tj(v) for k, v in tensors.items()}})


def gray(name):
    img = getattr(data, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img)          # 0.2125 R + 0.7154 G + 0.0721 B, float in [0, 1]
    return skimage.img_as_float(img).astype(np.float64)


def small(name, h, w):
    return transform.resize(gray(name), (h, w), anti_aliasing=True).astype(np.float64)


# ---------------------------------------------------------------- ssim
SIGMA, TRUNC = 1.5, 3.5
RADIUS = int(TRUNC * SIGMA + 0.5)
WIN = 2 * RADIUS + 1
_x = np.arange(-RADIUS, RADIUS + 1, dtype=np.float64)
GW = np.exp(-0.5 * _x ** 2 / SIGMA ** 2)
GW /= GW.sum()
_delta = np.zeros(2 * WIN + 1)
_delta[WIN] = 1.0
assert np.allclose(ndi.gaussian_filter(_delta, SIGMA, truncate=TRUNC, mode="reflect")[WIN - RADIUS:WIN + RADIUS + 1],
                   GW, rtol=0, atol=1e-15)


def distort(img, kind):
    if kind == "noise":
        return np.clip(img + 0.1 * rng.standard_normal(img.shape), 0.0, 1.0)
    if kind == "blur":
        return filters.gaussian(img, sigma=1.5, mode="reflect", preserve_range=True)
    if kind == "brightness":
        return np.clip(img + 0.15, 0.0, 1.0)
    if kind == "noise_strong":
        return rng.uniform(0.0, 1.0, img.shape)
    raise ValueError(kind)


def ssim_numpy(a, b):
    """Independent recomputation (Wang et al. 2004 with skimage's choices)."""
    f = lambda z: ndi.correlate1d(ndi.correlate1d(z, GW, axis=0, mode="reflect"), GW, axis=1, mode="reflect")
    ux, uy = f(a), f(b)
    vx = f(a * a) - ux * ux
    vy = f(b * b) - uy * uy
    vxy = f(a * b) - ux * uy
    C1, C2 = 0.01 ** 2, 0.03 ** 2
    S = (2 * ux * uy + C1) * (2 * vxy + C2) / ((ux ** 2 + uy ** 2 + C1) * (vx + vy + C2))
    return S[RADIUS:-RADIUS, RADIUS:-RADIUS].mean(), S


SSIM_CASES = [("camera", 64, 64, "noise"), ("camera", 64, 64, "blur"),
              ("astronaut", 48, 80, "brightness"), ("astronaut", 48, 80, "noise"),
              ("coins", 31, 29, "blur"), ("moon", 33, 47, "noise_strong"),
              ("coins", 31, 29, "identical")]
for (src, h, w, kind) in SSIM_CASES:
    a = small(src, h, w)
    b = a.copy() if kind == "identical" else distort(a, kind)
    s, smap = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=SIGMA,
                                            use_sample_covariance=False, data_range=1.0, full=True)
    s2, smap2 = ssim_numpy(a, b)
    assert abs(s - s2) < 1e-12 and np.allclose(smap, smap2, rtol=0, atol=1e-12), (src, kind)
    add("ssim", f"ssim_{src}_{h}x{w}_{kind}",
        {"source": f"skimage.data.{src}" + (" (rgb2gray)" if src == "astronaut" else ""),
         "distortion": kind, "height": h, "width": w, "gaussian_weights": True, "sigma": SIGMA,
         "truncate": TRUNC, "win_size": WIN, "K1": 0.01, "K2": 0.03, "data_range": 1.0,
         "use_sample_covariance": False, "filter_mode": "reflect", "crop": RADIUS},
        {"a": a, "b": b, "ssim": [s], "ssim_map": smap, "gaussian_window_1d": GW})

# ---------------------------------------------------------------- sobel_skimage
KX = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
KY = KX.T


def xcorr_zero(img, k):
    p = np.pad(img, 1, mode="constant")
    H, W = img.shape
    out = np.zeros_like(img)
    for di in range(3):
        for dj in range(3):
            out += k[di, dj] * p[di:di + H, dj:dj + W]
    return out


for (src, h, w) in [("camera", 16, 16), ("coins", 31, 29)]:
    img = small(src, h, w)
    sh, sv = filters.sobel_h(img), filters.sobel_v(img)
    shc = filters.sobel(img, axis=0, mode="constant", cval=0.0)
    svc = filters.sobel(img, axis=1, mode="constant", cval=0.0)
    gx, gy = xcorr_zero(img, KX), xcorr_zero(img, KY)
    mag = np.sqrt(gx * gx + gy * gy + 1e-6)
    # the constants, determined by least squares, then checked exactly everywhere
    cx = float(np.dot(gx.ravel(), svc.ravel()) / np.dot(svc.ravel(), svc.ravel()))
    cy = float(np.dot(gy.ravel(), shc.ravel()) / np.dot(shc.ravel(), shc.ravel()))
    assert abs(cx - 4.0) < 1e-12 and abs(cy - 4.0) < 1e-12, (cx, cy)
    assert np.allclose(gx, 4 * svc, rtol=0, atol=1e-13) and np.allclose(gy, 4 * shc, rtol=0, atol=1e-13)
    # skimage's default (reflect) outputs agree with zero padding in the interior only
    assert np.allclose(gx[1:-1, 1:-1], 4 * sv[1:-1, 1:-1], atol=1e-13)
    assert np.allclose(gy[1:-1, 1:-1], 4 * sh[1:-1, 1:-1], atol=1e-13)
    assert not np.allclose(gx, 4 * sv, atol=1e-6)      # borders differ under reflect
    # skimage's magnitude filter divides by sqrt(ndim)
    smag = filters.sobel(img, mode="constant")
    assert np.allclose(smag, np.sqrt((shc ** 2 + svc ** 2) / 2), atol=1e-14)
    add("sobel_skimage", f"sobel_skimage_{src}_{h}x{w}",
        {"source": f"skimage.data.{src}", "height": h, "width": w, "eps": 1e-6,
         "gx_scale": 4.0, "gy_scale": 4.0,
         "relation_gx": "gx = 4 * sobel_v_constant (= 4 * skimage.filters.sobel(img, axis=1, mode='constant'))",
         "relation_gy": "gy = 4 * sobel_h_constant (= 4 * skimage.filters.sobel(img, axis=0, mode='constant'))",
         "relation_default_mode": "sobel_h / sobel_v take no mode argument in this version and use "
                                  "mode='reflect': equal to gy/4, gx/4 on the interior [1:-1, 1:-1] only",
         "relation_magnitude": "skimage.filters.sobel(img, mode='constant') = sqrt((sobel_h_c^2 + sobel_v_c^2) / 2); "
                               "SPEC magnitude = sqrt(gx^2 + gy^2 + 1e-6) = sqrt(32 * skimage_mag^2 + 1e-6)"},
        {"image": img, "sobel_h": sh, "sobel_v": sv, "sobel_h_constant": shc, "sobel_v_constant": svc,
         "skimage_magnitude_constant": smag, "gx": gx, "gy": gy, "magnitude": mag})


# ---------------------------------------------------------------- pixcorr
def pearson(x, y):
    x = x - x.mean()
    y = y - y.mean()
    return float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y)))


for (n, h, w, noise) in [(5, 13, 11, 0.3), (1, 8, 8, 0.1), (3, 17, 9, 1.0)]:
    true = rng.uniform(0, 1, (n, 3, h, w))
    pred = np.clip(true + noise * rng.standard_normal(true.shape), 0, 1)
    r = np.array([np.corrcoef(pred[i].reshape(-1), true[i].reshape(-1))[0, 1] for i in range(n)])
    assert np.allclose(r, [pearson(pred[i].ravel(), true[i].ravel()) for i in range(n)], atol=1e-14)
    add("pixcorr", f"pixcorr_{n}x3x{h}x{w}", {"n": n, "height": h, "width": w},
        {"pred": pred, "true": true, "r": r, "pixcorr": [r.mean()]})

# ---------------------------------------------------------------- two_way
for (n, d, noise) in [(12, 40, 2.0), (7, 5, 1.0), (2, 9, 0.5), (30, 64, 4.0)]:
    true = rng.standard_normal((n, d))
    pred = true + noise * rng.standard_normal((n, d))
    corr = np.array([[pearson(pred[i], true[j]) for j in range(n)] for i in range(n)])
    per = np.array([np.mean([corr[i, i] > corr[i, j] for j in range(n) if j != i]) for i in range(n)])
    # MindEye / Brain-Diffuser vectorised form
    r = np.corrcoef(true, pred)[:n, n:]            # r[i, j] = corr(true_i, pred_j)
    assert np.allclose(r.T, corr, atol=1e-13)
    success_cnt = np.sum(r < np.diag(r), 0)
    assert abs(np.mean(success_cnt) / (n - 1) - per.mean()) < 1e-15
    off = corr[~np.eye(n, dtype=bool)]
    assert np.min(np.abs(off[:, None] - np.diag(corr)[None, :])) > 1e-9   # no near-ties
    add("two_way", f"two_way_{n}x{d}", {"n": n, "d": d},
        {"pred": pred, "true": true, "corr": corr, "per_sample": per, "two_way": [per.mean()]})

# ---------------------------------------------------------------- retrieval
for (n, tail, noise) in [(20, (33,), 1.5), (9, (3, 7), 1.0), (1, (5,), 1.0), (50, (16,), 2.5)]:
    true = rng.standard_normal((n, *tail))
    pred = true + noise * rng.standard_normal((n, *tail))
    P = pred.reshape(n, -1)
    T = true.reshape(n, -1)
    P = P / np.linalg.norm(P, axis=1, keepdims=True)
    T = T / np.linalg.norm(T, axis=1, keepdims=True)
    sim = P @ T.T
    fa = sim.argmax(1)
    ba = sim.argmax(0)
    srt = np.sort(sim, axis=1)
    if n > 1:
        assert np.min(srt[:, -1] - srt[:, -2]) > 1e-9 and np.min(np.diff(np.sort(sim, 0), axis=0)[-1]) > 1e-9
    add("retrieval", "retrieval_" + "x".join(map(str, (n,) + tail)), {"n": n, "input_shape": [n, *tail]},
        {"pred": pred, "true": true, "sim": sim, "fwd_argmax": fa, "bwd_argmax": ba,
         "fwd_acc": [np.mean(fa == np.arange(n))], "bwd_acc": [np.mean(ba == np.arange(n))]})

# ---------------------------------------------------------------- corr_distance
k, d = 6, 17
u = rng.standard_normal((k, d))
v = rng.standard_normal((k, d))
v[0] = u[0]                      # identical -> 0
v[1] = -3.0 * u[1] + 2.0         # perfectly anti-correlated -> 2
v[2] = 0.5 * u[2] - 7.0          # affine copy -> 0
v[3] = u[3] + 0.3 * v[3]         # correlated
v[4] = u[4] + 1e3                # large offset (tests centring before the dot product)
dist = np.array([ssd.correlation(u[i], v[i]) for i in range(k)])
assert np.allclose(dist, [1 - pearson(u[i], v[i]) for i in range(k)], atol=1e-12)
add("corr_distance", f"corr_distance_{k}x{d}", {"k": k, "d": d},
    {"u": u, "v": v, "distance": dist})


# ---------------------------------------------------------------- rsa
def rdm(X):
    return 1.0 - np.corrcoef(X)


for (n, d1, d2) in [(10, 20, 7), (25, 33, 65), (4, 3, 5)]:
    X = rng.standard_normal((n, d1))
    Y = X @ rng.standard_normal((d1, d2)) / np.sqrt(d1) + 0.8 * rng.standard_normal((n, d2))
    rx, ry = rdm(X), rdm(Y)
    iu = np.triu_indices(n, k=1)
    rho = scipy.stats.spearmanr(rx[iu], ry[iu]).statistic
    # independent: Pearson of ranks (no ties in continuous data)
    rk = lambda z: scipy.stats.rankdata(z)
    assert abs(rho - pearson(rk(rx[iu]), rk(ry[iu]))) < 1e-12
    assert len(np.unique(rx[iu])) == len(iu[0]) and len(np.unique(ry[iu])) == len(iu[0])
    add("rsa", f"rsa_{n}_{d1}_{d2}", {"n": n, "d1": d1, "d2": d2, "triangle": "upper, k=1, row-major"},
        {"x": X, "y": Y, "rdm_x": rx, "rdm_y": ry, "rho": [rho]})

for (kk, levels) in [(15, 4), (40, 7)]:
    x = rng.integers(0, levels, kk).astype(np.float64)
    y = (x + rng.integers(0, levels, kk)).astype(np.float64)
    rho = scipy.stats.spearmanr(x, y).statistic
    assert abs(rho - pearson(scipy.stats.rankdata(x), scipy.stats.rankdata(y))) < 1e-12
    add("spearman", f"spearman_ties_{kk}", {"k": kk, "ties": "average ranks"},
        {"x": x, "y": y, "rho": [rho]})


# ---------------------------------------------------------------- cka_matrix
def cka_biased(X, Y):
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T
    hs = lambda A, B: np.trace(A @ H @ B @ H) / (n - 1) ** 2
    return hs(K, L) / np.sqrt(hs(K, K) * hs(L, L))


def cka_feature(X, Y):
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    return np.linalg.norm(Yc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))


for (n, dx, dy) in [(20, (7, 33, 5), (12, 65)), (6, (4,), (3, 9, 2))]:
    base = rng.standard_normal((n, 8))
    xs = [base @ rng.standard_normal((8, dl)) + rng.standard_normal((n, dl)) * (0.5 + l) for l, dl in enumerate(dx)]
    ys = [base @ rng.standard_normal((8, dl)) + rng.standard_normal((n, dl)) * (0.7 + l) for l, dl in enumerate(dy)]
    M = np.array([[cka_biased(a, b) for b in ys] for a in xs])
    M2 = np.array([[cka_feature(a, b) for b in ys] for a in xs])
    assert np.allclose(M, M2, atol=1e-12)
    t = {f"x{l}": a for l, a in enumerate(xs)}
    t.update({f"y{l}": b for l, b in enumerate(ys)})
    t["cka"] = M
    add("cka_matrix", f"cka_matrix_n{n}_{len(dx)}x{len(dy)}",
        {"n": n, "layers_x": len(dx), "layers_y": len(dy), "dims_x": list(dx), "dims_y": list(dy),
         "estimator": "biased"}, t)

# ---------------------------------------------------------------- write
doc = {
    "generator": "conformance/golden/make_metrics.py",
    "versions": {"scikit-image": skimage.__version__, "scipy": scipy.__version__,
                 "numpy": np.__version__, "python": sys.version.split()[0]},
    "torch_version": "n/a (scikit-image / scipy / numpy)",
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
