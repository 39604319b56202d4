"""PyTorch twins of the two mapping models (BrainMCLIP, HAVIR) of docs/models.md.

The contract is docs/models.md: module structure, `state_dict` key names and shapes,
losses and the config JSON. A safetensors checkpoint written by the Rust side
(`brain_core::model`) loads here with `load_rust_checkpoint(path)` (drops the
`optimizer.*` entries, `load_state_dict(strict=True)`).

The loss kernels (MSE, linear CKA with the biased HSIC from Gram matrices, Sims,
SoftCLIP, InfoNCE, Sobel magnitude loss) are the definitions of
`conformance/golden/make_losses.py`, copied here (that file is a script that writes
losses.json on import) with the dtype taken from the inputs instead of a global float64.

Forward outputs (dict, names used by `check_checkpoint.py` and the golden files):

BrainMCLIP (`forward(f_s=..., f_d=...)`; `f_d` only needed when the detail pathway exists)
  e_t_hat        [B, T_t, D]  Ê_T = D_T(backbone(b_S))
  rec_s_text     [B, N_S]     D_S(b_S)
  -- branches text+semantic, text+semantic+detail, full:
  e_is_hat       [B, T_i, D]  ê_I,S = D_I(backbone(b_I,S))
  e_i_hat        [B, T_i, D]  Ê_I = (ê_I,S + ê_I,D)/2, or ê_I,S without the detail pathway
  rec_s_semantic [B, N_S]     D_I,S(b_I,S)                     (self-reconstruction)
  -- branches text+semantic+detail, full:
  e_id_hat       [B, T_i, D]  ê_I,D
  rec_d_detail   [B, N_D]     D_I,D(b_I,D)                     (self-reconstruction)
  -- branches full:
  rec_d_semantic [B, N_D]     D_I,D(b_I,S)                     (cross-reconstruction)
  rec_s_detail   [B, N_S]     D_I,S(b_I,D)                     (cross-reconstruction)
  Naming: rec_<voxel set reconstructed>_<pathway whose embedding b is decoded>.

HAVIR (`forward(f_low=..., f_high=...)`)
  z_prime [B, latent_channels, L, L], e_img [B, T_i, D], e_cap [B, T_t, D]

Loss terms (`loss(inputs, targets) -> (total, terms)`; total = sum of all terms, each a
0-d tensor; the order below is the order of the dict):

BrainMCLIP, per branch prefix `text.` and `image.`, the align terms of the `align` option
  mse          MSE(E, Ê)
  one_minus_cka  1 − CKA(E, Ê)   (linear CKA, biased HSIC, samples flattened to T·D)
  sims         Sims(E, Ê)
  infonce      InfoNCE(preds = Ê, targets = E, τ)
  softclip     SoftCLIP(preds = Ê, targets = E, τ)
  (mg = one_minus_cka + sims; mse+X = mse + X; mse+cka+sims = mse + one_minus_cka + sims)
then
  text.rec_s_text          MSE(F_S, D_S(b_S))
  image.rec_s_semantic     MSE(F_S, D_I,S(b_I,S))
  image.rec_d_detail       MSE(F_D, D_I,D(b_I,D))       (detail pathway)
  image.rec_d_semantic     MSE(F_D, D_I,D(b_I,S))       (full only)
  image.rec_s_detail       MSE(F_S, D_I,S(b_I,D))       (full only)
  image.tok_semantic       MSE(e_I,S, ê_I,S)
  image.tok_detail         MSE(e_I,D, ê_I,D)            (detail pathway)
The image align target is E_I = (e_I,S + e_I,D)/2 for every branch option that has the
image branch (docs/models.md: "image terms align(E_I, ê_I,S)" for text+semantic).

HAVIR
  structural.mse      MSE(z', z)
  structural.sobel    mean((S(z') − S(z))²), S = √(gx² + gy² + 1e-6), zero padding
  semantic.image_softclip, semantic.image_mse   SoftCLIP(e'_img, e_img, τ), MSE
  semantic.text_softclip,  semantic.text_mse    SoftCLIP(e'_cap, e_cap, τ), MSE
"""
import json
import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------- losses
# Same definitions as conformance/golden/make_losses.py (dtype from the inputs).


def mse(a, b):
    return ((a - b) ** 2).mean()


def hsic_biased(K, L):
    n = K.shape[0]
    H = torch.eye(n, dtype=K.dtype, device=K.device) - torch.ones(n, n, dtype=K.dtype, device=K.device) / n
    return torch.trace(K @ H @ L @ H) / (n - 1) ** 2


def cka_parts(A, B):
    """Linear CKA with the biased HSIC; returns (cka, hsic_ab, hsic_aa, hsic_bb)."""
    A2 = A.reshape(A.shape[0], -1)
    B2 = B.reshape(B.shape[0], -1)
    K = A2 @ A2.T
    L = B2 @ B2.T
    hab, haa, hbb = hsic_biased(K, L), hsic_biased(K, K), hsic_biased(L, L)
    return hab / torch.sqrt(haa * hbb), hab, haa, hbb


def cos_first(X):
    """s[b, j-1] = cos(X[b,0,:], X[b,j,:]), j = 1..m-1, norms clamped below at 1e-8."""
    x0 = X[:, :1, :]
    xr = X[:, 1:, :]
    dot = (x0 * xr).sum(-1)
    n0 = torch.clamp_min(torch.sqrt((x0 * x0).sum(-1)), 1e-8)
    nr = torch.clamp_min(torch.sqrt((xr * xr).sum(-1)), 1e-8)
    return dot / (n0 * nr)


def sims_loss(A, B):
    return ((cos_first(A) - cos_first(B)) ** 2).mean()


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
    labels = torch.arange(p.shape[0], device=p.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


SOBEL_EPS = 1e-6


def sobel(x):
    C = x.shape[1]
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    ky = kx.T.contiguous()
    wx = kx.reshape(1, 1, 3, 3).repeat(C, 1, 1, 1)
    wy = ky.reshape(1, 1, 3, 3).repeat(C, 1, 1, 1)
    gx = F.conv2d(x, wx, padding=1, groups=C)  # conv2d is cross-correlation
    gy = F.conv2d(x, wy, padding=1, groups=C)
    return gx, gy, torch.sqrt(gx * gx + gy * gy + SOBEL_EPS)


def sobel_loss(pred, target):
    """Magnitude form: mean((S(pred) - S(target))^2)."""
    return ((sobel(pred)[2] - sobel(target)[2]) ** 2).mean()


ALIGN_OPTIONS = {
    "mg": ("one_minus_cka", "sims"),
    "mse+infonce": ("mse", "infonce"),
    "mse+softclip": ("mse", "softclip"),
    "mse+sims": ("mse", "sims"),
    "mse+cka": ("mse", "one_minus_cka"),
    "mse+cka+sims": ("mse", "one_minus_cka", "sims"),
}
BRANCH_OPTIONS = ("text", "text+semantic", "text+semantic+detail", "full")


def align_terms(align, E, E_hat, temperature):
    """Named terms of align(E, Ê) (their sum is the align loss)."""
    out = OrderedDict()
    for term in ALIGN_OPTIONS[align]:
        if term == "mse":
            out[term] = mse(E, E_hat)
        elif term == "one_minus_cka":
            out[term] = 1 - cka_parts(E, E_hat)[0]
        elif term == "sims":
            out[term] = sims_loss(E, E_hat)
        elif term == "infonce":
            out[term] = infonce_loss(E_hat, E, temperature)
        elif term == "softclip":
            out[term] = soft_clip_loss(E_hat, E, temperature)
    return out


# ---------------------------------------------------------------------------- blocks


def _act(name):
    return {"gelu": nn.GELU(), "silu": nn.SiLU()}[name]


class Embed(nn.Module):
    """Dropout(act(LayerNorm(Linear(x)))); keys linear.{weight,bias}, norm.{weight,bias}."""

    def __init__(self, n_in, h, act="gelu", dropout=0.0):
        super().__init__()
        self.linear = nn.Linear(n_in, h)
        self.norm = nn.LayerNorm(h, eps=1e-5)
        self.act = _act(act)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.act(self.norm(self.linear(x))))


class ResidualBlock(nn.Module):
    """x + Dropout(act(LayerNorm(Linear(x))))."""

    def __init__(self, h, act="gelu", dropout=0.0):
        super().__init__()
        self.linear = nn.Linear(h, h)
        self.norm = nn.LayerNorm(h, eps=1e-5)
        self.act = _act(act)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return x + self.dropout(self.act(self.norm(self.linear(x))))


class Head(nn.Module):
    """[B, h] -> [B, T, D].

    direct (rank None): Linear(h -> T·D), keys weight [T·D, h], bias [T·D].
    low-rank r: Linear(r -> D) per token of Linear(h -> T·r),
                keys proj.{weight [T·r, h], bias [T·r]}, token.{weight [D, r], bias [D]}.
    """

    def __init__(self, h, tokens, dim, rank=None):
        super().__init__()
        self.tokens, self.dim, self.rank = tokens, dim, rank
        if rank is None:
            self.weight = nn.Parameter(torch.empty(tokens * dim, h))
            self.bias = nn.Parameter(torch.empty(tokens * dim))
            bound = 1.0 / math.sqrt(h)  # = nn.Linear's default init
            nn.init.uniform_(self.weight, -bound, bound)
            nn.init.uniform_(self.bias, -bound, bound)
        else:
            self.proj = nn.Linear(h, tokens * rank)
            self.token = nn.Linear(rank, dim)

    def forward(self, x):
        B = x.shape[0]
        if self.rank is None:
            return F.linear(x, self.weight, self.bias).reshape(B, self.tokens, self.dim)
        return self.token(self.proj(x).reshape(B, self.tokens, self.rank))


class Branch(nn.Module):
    """Plain container so that keys read `text.encoder...`, `image.head...`."""


# ---------------------------------------------------------------------------- configs

BRAINMCLIP_DEFAULTS = {
    "model": "brainmclip", "blocks": 2, "head_rank": None, "dropout": 0.0,
    "branches": "full", "align": "mg", "temperature": 0.005,
}
BRAINMCLIP_FIELDS = ("model", "n_semantic", "n_detail", "hidden", "blocks", "text_tokens",
                     "image_tokens", "embed_dim", "head_rank", "dropout", "branches", "align",
                     "temperature")
HAVIR_DEFAULTS = {
    "model": "havir", "structural_blocks": 2, "semantic_blocks": 2, "latent_size": 64,
    "latent_channels": 4, "dropout": 0.0, "temperature": 0.005,
}
HAVIR_FIELDS = ("model", "n_low", "n_high", "hidden", "structural_blocks", "semantic_blocks",
                "channels", "map_size", "groups", "latent_size", "latent_channels",
                "image_tokens", "text_tokens", "embed_dim", "dropout", "temperature")


def normalize_config(config):
    """Fill the documented defaults, check the enumerations, order the fields as the doc."""
    kind = config.get("model")
    if kind == "brainmclip":
        defaults, fields = BRAINMCLIP_DEFAULTS, BRAINMCLIP_FIELDS
    elif kind == "havir":
        defaults, fields = HAVIR_DEFAULTS, HAVIR_FIELDS
    else:
        raise ValueError(f"config 'model' must be 'brainmclip' or 'havir', got {kind!r}")
    cfg = dict(defaults)
    cfg.update(config)
    missing = [f for f in fields if f not in cfg]
    if missing:
        raise ValueError(f"{kind} config lacks {missing}")
    if kind == "brainmclip":
        if cfg["branches"] not in BRANCH_OPTIONS:
            raise ValueError(f"branches {cfg['branches']!r} not in {BRANCH_OPTIONS}")
        if cfg["align"] not in ALIGN_OPTIONS:
            raise ValueError(f"align {cfg['align']!r} not in {tuple(ALIGN_OPTIONS)}")
    else:
        if cfg["channels"] % cfg["groups"]:
            raise ValueError("channels must be a multiple of groups")
    out = OrderedDict((f, cfg[f]) for f in fields)
    for k, v in cfg.items():  # keep unknown extra fields, after the documented ones
        if k not in out:
            out[k] = v
    return dict(out)


# ---------------------------------------------------------------------------- BrainMCLIP


class BrainMCLIP(nn.Module):
    def __init__(self, config):
        super().__init__()
        cfg = normalize_config(config)
        assert cfg["model"] == "brainmclip"
        self.config = cfg
        n_s, n_d, h = cfg["n_semantic"], cfg["n_detail"], cfg["hidden"]
        t_t, t_i, d, r = cfg["text_tokens"], cfg["image_tokens"], cfg["embed_dim"], cfg["head_rank"]
        p, nb = cfg["dropout"], cfg["blocks"]
        br = cfg["branches"]
        self.has_image = br != "text"
        self.has_detail = br in ("text+semantic+detail", "full")
        self.has_cross = br == "full"

        self.text = Branch()
        self.text.encoder = Embed(n_s, h, "gelu", p)
        self.text.decoder = nn.Linear(h, n_s)
        self.text.backbone = nn.ModuleList([ResidualBlock(h, "gelu", p) for _ in range(nb)])
        self.text.head = Head(h, t_t, d, r)
        if self.has_image:
            self.image = Branch()
            self.image.encoder_semantic = Embed(n_s, h, "gelu", p)
            if self.has_detail:
                self.image.encoder_detail = Embed(n_d, h, "gelu", p)
            self.image.decoder_semantic = nn.Linear(h, n_s)
            if self.has_detail:
                self.image.decoder_detail = nn.Linear(h, n_d)
            self.image.backbone = nn.ModuleList([ResidualBlock(h, "gelu", p) for _ in range(nb)])
            self.image.head = Head(h, t_i, d, r)

    @staticmethod
    def _trunk(branch, b):
        x = b
        for blk in branch.backbone:
            x = blk(x)
        return branch.head(x)

    def forward(self, f_s, f_d=None):
        out = OrderedDict()
        b_s = self.text.encoder(f_s)
        out["e_t_hat"] = self._trunk(self.text, b_s)
        out["rec_s_text"] = self.text.decoder(b_s)
        if self.has_image:
            im = self.image
            b_is = im.encoder_semantic(f_s)
            e_is_hat = self._trunk(im, b_is)
            out["e_is_hat"] = e_is_hat
            out["rec_s_semantic"] = im.decoder_semantic(b_is)
            if self.has_detail:
                if f_d is None:
                    raise ValueError(f"branches {self.config['branches']!r} needs input f_d")
                b_id = im.encoder_detail(f_d)
                e_id_hat = self._trunk(im, b_id)
                out["e_id_hat"] = e_id_hat
                out["e_i_hat"] = (e_is_hat + e_id_hat) / 2
                out["rec_d_detail"] = im.decoder_detail(b_id)
                if self.has_cross:
                    out["rec_d_semantic"] = im.decoder_detail(b_is)
                    out["rec_s_detail"] = im.decoder_semantic(b_id)
            else:
                out["e_i_hat"] = e_is_hat
        return out

    def loss_from_outputs(self, out, inputs, targets):
        tau = self.config["temperature"]
        align = self.config["align"]
        f_s = inputs["f_s"]
        terms = OrderedDict()
        for k, v in align_terms(align, targets["e_t"], out["e_t_hat"], tau).items():
            terms["text." + k] = v
        terms["text.rec_s_text"] = mse(f_s, out["rec_s_text"])
        if self.has_image:
            e_is, e_id = targets["e_is"], targets["e_id"]
            e_i = (e_is + e_id) / 2
            for k, v in align_terms(align, e_i, out["e_i_hat"], tau).items():
                terms["image." + k] = v
            terms["image.rec_s_semantic"] = mse(f_s, out["rec_s_semantic"])
            if self.has_detail:
                f_d = inputs["f_d"]
                terms["image.rec_d_detail"] = mse(f_d, out["rec_d_detail"])
                if self.has_cross:
                    terms["image.rec_d_semantic"] = mse(f_d, out["rec_d_semantic"])
                    terms["image.rec_s_detail"] = mse(f_s, out["rec_s_detail"])
            terms["image.tok_semantic"] = mse(e_is, out["e_is_hat"])
            if self.has_detail:
                terms["image.tok_detail"] = mse(e_id, out["e_id_hat"])
        total = sum(terms.values())
        return total, terms

    def loss(self, inputs, targets):
        return self.loss_from_outputs(self(**inputs), inputs, targets)


# ---------------------------------------------------------------------------- HAVIR


class Havir(nn.Module):
    def __init__(self, config):
        super().__init__()
        cfg = normalize_config(config)
        assert cfg["model"] == "havir"
        self.config = cfg
        h, p = cfg["hidden"], cfg["dropout"]
        C, s, G = cfg["channels"], cfg["map_size"], cfg["groups"]
        self.structural = Branch()
        self.structural.embed = Embed(cfg["n_low"], h, "silu", p)
        self.structural.blocks = nn.ModuleList(
            [ResidualBlock(h, "silu", p) for _ in range(cfg["structural_blocks"])])
        self.structural.to_maps = nn.Linear(h, C * s * s)
        self.structural.norm = nn.GroupNorm(G, C, eps=1e-5)
        self.structural.mix = nn.Conv2d(C, cfg["latent_channels"], kernel_size=1)
        self.semantic = Branch()
        self.semantic.embed = Embed(cfg["n_high"], h, "gelu", p)
        self.semantic.blocks = nn.ModuleList(
            [ResidualBlock(h, "gelu", p) for _ in range(cfg["semantic_blocks"])])
        self.semantic.image_head = nn.Linear(h, cfg["image_tokens"] * cfg["embed_dim"])
        self.semantic.text_head = nn.Linear(h, cfg["text_tokens"] * cfg["embed_dim"])

    def forward(self, f_low, f_high):
        cfg = self.config
        B = f_low.shape[0]
        st = self.structural
        x = st.embed(f_low)
        for blk in st.blocks:
            x = blk(x)
        m = st.to_maps(x).reshape(B, cfg["channels"], cfg["map_size"], cfg["map_size"])
        m = st.norm(m)
        L = cfg["latent_size"]
        # integer factor L/s: size=(L, L) and scale_factor=L/s give the same sampling grid
        m = F.interpolate(m, size=(L, L), mode="bilinear", align_corners=False)
        z_prime = st.mix(m)
        se = self.semantic
        y = se.embed(f_high)
        for blk in se.blocks:
            y = blk(y)
        D = cfg["embed_dim"]
        e_img = se.image_head(y).reshape(B, cfg["image_tokens"], D)
        e_cap = se.text_head(y).reshape(B, cfg["text_tokens"], D)
        return OrderedDict([("z_prime", z_prime), ("e_img", e_img), ("e_cap", e_cap)])

    def loss_from_outputs(self, out, inputs, targets):
        tau = self.config["temperature"]
        terms = OrderedDict()
        terms["structural.mse"] = mse(out["z_prime"], targets["z"])
        terms["structural.sobel"] = sobel_loss(out["z_prime"], targets["z"])
        terms["semantic.image_softclip"] = soft_clip_loss(out["e_img"], targets["e_img"], tau)
        terms["semantic.image_mse"] = mse(out["e_img"], targets["e_img"])
        terms["semantic.text_softclip"] = soft_clip_loss(out["e_cap"], targets["e_cap"], tau)
        terms["semantic.text_mse"] = mse(out["e_cap"], targets["e_cap"])
        total = sum(terms.values())
        return total, terms

    def loss(self, inputs, targets):
        return self.loss_from_outputs(self(**inputs), inputs, targets)


# ---------------------------------------------------------------------------- checkpoints


def build_model(config):
    kind = config.get("model")
    if kind == "brainmclip":
        return BrainMCLIP(config)
    if kind == "havir":
        return Havir(config)
    raise ValueError(f"unknown model {kind!r}")


def _as_dict(v):
    if isinstance(v, (bytes, str)):
        try:
            v = json.loads(v)
        except (ValueError, TypeError):
            return None
    return v if isinstance(v, dict) else None


def config_from_metadata(meta):
    """Model config dict from a checkpoint's safetensors metadata (a str -> str dict).

    The config JSON is under metadata key "config". Tolerated as well: the config nested
    one level down in that JSON (e.g. {"config": {...}} or {"model_config": {...}}), or
    the config JSON under another metadata key when "config" is absent.
    """
    meta = meta or {}
    candidates = []
    if "config" in meta:
        candidates.append(_as_dict(meta["config"]))
    candidates += [_as_dict(v) for k, v in meta.items() if k != "config"]
    for c in candidates:
        if c is None:
            continue
        if c.get("model") in ("brainmclip", "havir"):
            return normalize_config(c)
        for v in c.values():
            if isinstance(v, dict) and v.get("model") in ("brainmclip", "havir"):
                return normalize_config(v)
    raise ValueError(f"no model config found in metadata keys {sorted(meta)}")


def load_rust_checkpoint(path, dtype=torch.float32):
    """(model, meta): model built from the metadata config, weights loaded strictly."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as fh:
        meta = fh.metadata() or {}
        state = {k: fh.get_tensor(k) for k in fh.keys() if not k.startswith("optimizer.")}
    model = build_model(config_from_metadata(meta)).to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True)
    return model, meta


def param_count(model):
    return sum(p.numel() for p in model.parameters())
