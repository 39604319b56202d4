#!/usr/bin/env python3
"""Check a Rust-written checkpoint and its forward outputs against the PyTorch twins.

    python3 pytorch/check_checkpoint.py --checkpoint CKPT.safetensors --io IO.safetensors [--tol 1e-5]

Builds the model of docs/models.md from the checkpoint's "config" metadata, loads its
weights with load_state_dict(strict=True) (the `optimizer.*` entries are dropped), and
runs the forward pass in eval mode (dropout off) on the `input.<name>` tensors of IO,
twice: in float32 and in a float64 copy (weights and inputs upcast). Every
`output.<name>` tensor of IO is compared with the PyTorch output of that name; the max
abs diff is printed against both runs, and the float64 run is the reference that is
gated on. If IO also holds `target.*` tensors and `loss` / `loss.<term>`, the eval-mode
loss terms are compared too (gated on |diff| <= tol * max(1, |loss|)).

Exit status 1 if any diff exceeds the tolerance, if IO has an output name the model
does not produce, or if shapes differ.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brain_models as bm  # noqa: E402


def main():
    ap = argparse.ArgumentParser(
        description="Compare a Rust checkpoint's forward outputs with the PyTorch twin.",
        epilog="The tolerance is absolute, on float32 outputs whose magnitude is O(1) "
               "(token embeddings, reconstructions, latents): 1e-5 is ~100 float32 ulps at 1. "
               "Each output is gated on its max abs diff from the float64 PyTorch forward; the "
               "diff from the float32 PyTorch forward and float32 PyTorch's own error are "
               "printed alongside for scale.")
    ap.add_argument("--checkpoint", required=True, help="safetensors checkpoint written by Rust")
    ap.add_argument("--io", required=True,
                    help="safetensors with input.<name> and output.<name> tensors "
                         "(optionally target.<name>, loss, loss.<term>)")
    ap.add_argument("--tol", type=float, default=1e-5,
                    help="absolute tolerance on each output's max abs diff (default 1e-5); "
                         "outputs are float32 of magnitude O(1)")
    args = ap.parse_args()

    from safetensors.torch import load_file

    model, meta = bm.load_rust_checkpoint(args.checkpoint, dtype=torch.float32)
    model.eval()
    print(f"model {model.config['model']}: {bm.param_count(model)} parameters")
    print(f"config {model.config}")

    io = {k: v.clone() for k, v in load_file(args.io).items()}
    inputs = {k[len("input."):]: v for k, v in io.items() if k.startswith("input.")}
    targets = {k[len("target."):]: v for k, v in io.items() if k.startswith("target.")}
    outputs = {k[len("output."):]: v for k, v in io.items() if k.startswith("output.")}
    if not inputs or not outputs:
        print(f"error: {args.io} needs input.* and output.* tensors", file=sys.stderr)
        return 1

    model64 = bm.build_model(model.config).to(torch.float64)
    model64.load_state_dict({k: v.to(torch.float64) for k, v in model.state_dict().items()}, strict=True)
    model64.eval()
    ins32 = {k: v.to(torch.float32) for k, v in inputs.items()}
    ins64 = {k: v.to(torch.float64) for k, v in inputs.items()}
    with torch.no_grad():
        out32 = model(**ins32)
        out64 = model64(**ins64)

    failed = False
    print(f"{'output':<16} {'shape':<18} {'|rust-f64|':>11} {'|rust-f32|':>11} {'|f32-f64|':>11} {'max|f64|':>9}")
    for name, got in outputs.items():
        if name not in out64:
            print(f"{name:<16} not produced by the PyTorch model (it gives {list(out64)})")
            failed = True
            continue
        ref64, ref32 = out64[name], out32[name]
        if tuple(got.shape) != tuple(ref64.shape):
            print(f"{name:<16} shape {tuple(got.shape)} != PyTorch {tuple(ref64.shape)}")
            failed = True
            continue
        g = got.to(torch.float64)
        d64 = (g - ref64).abs().max().item()
        d32 = (g - ref32.to(torch.float64)).abs().max().item()
        base = (ref32.to(torch.float64) - ref64).abs().max().item()
        bad = not (d64 <= args.tol)  # NaN fails
        failed |= bad
        print(f"{name:<16} {str(tuple(got.shape)):<18} {d64:11.3e} {d32:11.3e} {base:11.3e} "
              f"{ref64.abs().max().item():9.3g}{'  FAIL' if bad else ''}")
    missing = [k for k in out64 if k not in outputs]
    if missing:
        print(f"(not in IO, not compared: {missing})")

    if targets and any(k == "loss" or k.startswith("loss.") for k in io):
        tg64 = {k: v.to(torch.float64) for k, v in targets.items()}
        with torch.no_grad():
            total, terms = model64.loss_from_outputs(out64, ins64, tg64)
        ref = {"loss": total}
        ref.update({"loss." + k: v for k, v in terms.items()})
        for k in sorted(k for k in io if k == "loss" or k.startswith("loss.")):
            if k not in ref:
                print(f"{k:<32} not a PyTorch loss term (terms: {list(ref)})")
                failed = True
                continue
            r = ref[k].item()
            d = abs(io[k].double().reshape(-1)[0].item() - r)
            bad = not (d <= args.tol * max(1.0, abs(r)))
            failed |= bad
            print(f"{k:<32} rust-f64 {d:11.3e}  (f64 value {r:.6g}){'  FAIL' if bad else ''}")

    print("FAIL" if failed else f"OK (tol {args.tol:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
