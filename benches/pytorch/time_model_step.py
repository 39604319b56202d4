"""Time the PyTorch side of one full training step of a mapping model at the paper
widths (docs/models.md), on this machine, for comparison with the Rust model step.

One step = zero_grad, forward, loss (every term of docs/models.md), backward, and
torch.optim.AdamW(lr 3e-4, weight_decay 0.01) step; eager mode, float32, train mode
(dropout active), with `torch.set_num_threads(threads)`. The figure is the median over
`--repeats` steps after 2 warm-up steps (the first step also allocates the AdamW state).

    python3 benches/pytorch/time_model_step.py --threads 2                 # BrainMCLIP
    python3 benches/pytorch/time_model_step.py --threads 2 --model havir   # HAVIR

Memory: the paper BrainMCLIP has 0.737e9 parameters, i.e. ~3 GB each for weights,
gradients and the two AdamW moments (~12 GB in all, float32; peak RSS measured ~16 GB);
the paper HAVIR has 0.603e9 (its image head alone is 2048 x 257·768; peak RSS ~13.5 GB).

Most of a step is memory traffic, and glibc malloc hands the multi-GB gradient and AdamW
temporaries back to the kernel after each step (mmap/munmap, page faults: about half the
wall time is system time). That is PyTorch as it is usually run, and what is timed by
default; `MALLOC_MMAP_THRESHOLD_=34359738368 MALLOC_TRIM_THRESHOLD_=68719476736` in the
environment keeps them in the heap (roughly halves the BrainMCLIP step on a 2-core VM).
Last line printed: {"case": ..., "median_ms": ..., "params": ...}.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pytorch"))
import brain_models as bm  # noqa: E402

BRAINMCLIP_PAPER = {"model": "brainmclip", "n_semantic": 8000, "n_detail": 15724, "hidden": 2240,
                    "blocks": 2, "text_tokens": 77, "image_tokens": 257, "embed_dim": 768,
                    "head_rank": None, "dropout": 0.15, "branches": "full", "align": "mg",
                    "temperature": 0.005}
HAVIR_PAPER = {"model": "havir", "n_low": 5000, "n_high": 8000, "hidden": 2048,
               "structural_blocks": 2, "semantic_blocks": 2, "channels": 64, "map_size": 16,
               "groups": 32, "latent_size": 64, "latent_channels": 4, "image_tokens": 257,
               "text_tokens": 77, "embed_dim": 768, "dropout": 0.15, "temperature": 0.005}


def make_batch(cfg, batch, gen):
    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    if cfg["model"] == "brainmclip":
        inputs = {"f_s": randn(batch, cfg["n_semantic"]), "f_d": randn(batch, cfg["n_detail"])}
        targets = {"e_t": randn(batch, cfg["text_tokens"], cfg["embed_dim"]),
                   "e_is": randn(batch, cfg["image_tokens"], cfg["embed_dim"]),
                   "e_id": randn(batch, cfg["image_tokens"], cfg["embed_dim"])}
    else:
        L = cfg["latent_size"]
        inputs = {"f_low": randn(batch, cfg["n_low"]), "f_high": randn(batch, cfg["n_high"])}
        targets = {"z": randn(batch, cfg["latent_channels"], L, L),
                   "e_img": randn(batch, cfg["image_tokens"], cfg["embed_dim"]),
                   "e_cap": randn(batch, cfg["text_tokens"], cfg["embed_dim"])}
    return inputs, targets


def main():
    ap = argparse.ArgumentParser(description="Median time of one training step at the paper widths.")
    ap.add_argument("--model", choices=("brainmclip", "havir"), default="brainmclip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = BRAINMCLIP_PAPER if args.model == "brainmclip" else HAVIR_PAPER
    t0 = time.perf_counter()
    model = bm.build_model(cfg).train()
    params = bm.param_count(model)
    print(f"{args.model} paper config: {params} parameters ({params / 1e9:.3f} B, "
          f"{4 * params / 2**30:.2f} GiB float32 weights; ~4x that with grads and AdamW moments); "
          f"built in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    inputs, targets = make_batch(model.config, args.batch, torch.Generator().manual_seed(1))

    def step():
        opt.zero_grad(set_to_none=True)
        total, _ = model.loss(inputs, targets)
        total.backward()
        opt.step()
        return total.item()

    for i in range(args.warmup):
        t = time.perf_counter()
        loss = step()
        print(f"warm-up {i}: {1e3 * (time.perf_counter() - t):.0f} ms, loss {loss:.4f}",
              file=sys.stderr, flush=True)
    times = []
    for i in range(args.repeats):
        t = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t)
        print(f"step {i}: {1e3 * times[-1]:.0f} ms, loss {loss:.4f}", file=sys.stderr, flush=True)
    med = statistics.median(times)
    print(json.dumps({"case": f"{args.model}_paper_step", "median_ms": round(1e3 * med, 3),
                      "params": params, "batch": args.batch, "threads": args.threads,
                      "repeats": args.repeats, "torch": torch.__version__, "dtype": "float32",
                      "times_ms": [round(1e3 * t, 3) for t in times]}))


if __name__ == "__main__":
    main()
