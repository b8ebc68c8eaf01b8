#!/usr/bin/python3
"""Training steps of the Whisper tower in Python PyTorch, timed like
`cwcl bench tower` (docs/performance.md): the same tower, rebuilt from the
folder `cwcl bench tower --export <folder>` writes (scripts/cwcl_tower.py),
the same trained parameters (top blocks, final norm, pooling, head), CL loss
with a learned temperature, AdamW, random log-mel batches of the same shape.

    build/release/cwcl bench tower --export /tmp/tower0 --steps 1
    /usr/bin/python3 scripts/bench_tower_python.py /tmp/tower0 --threads 1 [--precision bf16] [--device cuda] [--compile]

Prints one JSON line.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cwcl_tower import load_tower  # noqa: E402


def cl_loss(p, q, logit_scale):
    p = F.normalize(p, dim=1)
    q = F.normalize(q, dim=1)
    logits = logit_scale.clamp(max=math.log(100)).exp() * q @ p.T
    target = torch.arange(p.shape[0], device=p.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def time_steps(step, steps):
    """Two untimed steps, then `steps` timed ones: (last loss, seconds)."""
    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    return loss, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", help="cwcl bench tower --export's folder")
    ap.add_argument("--top-blocks", type=int, default=2)
    ap.add_argument("-b", "--batch", type=int, default=32)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--compile", action="store_true", help="torch.compile the tower (PyTorch 2.x)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.compile and not hasattr(torch, "compile"):
        raise SystemExit(f"--compile needs PyTorch 2.x; this is {torch.__version__}")
    device = torch.device(args.device)
    torch.manual_seed(0)
    tower = load_tower(args.folder).to(device).train()
    whisper = tower.whisper
    trained = [whisper.encoder.final_norm, whisper.pooling, whisper.head]
    trained += list(whisper.encoder.blocks[-args.top_blocks:])
    for p in tower.parameters():
        p.requires_grad_(False)
    params = [p for m in trained for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    logit_scale = torch.tensor(math.log(1 / 0.07), device=device, requires_grad=True)
    optimizer = torch.optim.AdamW(params + [logit_scale], lr=1e-4)
    forward = torch.compile(tower) if args.compile else tower

    n_mels = tower.config["sizes"]["n_mels"]
    mel = torch.randn(args.batch, args.frames, n_mels).to(device)
    lengths = torch.randint(args.frames // 2, args.frames + 1, (args.batch,))
    lengths[0] = args.frames
    lengths = lengths.to(device)
    p = torch.randn(args.batch, tower.config["out_dim"]).to(device)

    def step():
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            q = forward(mel, lengths)
        loss = cl_loss(p, q.float(), logit_scale)
        loss.backward()
        optimizer.step()
        return loss.item()  # waits for the device

    loss, seconds = time_steps(step, args.steps)
    print(json.dumps({"impl": "python-compile" if args.compile else "python", "torch": torch.__version__,
                      "tower": "whisper", "top_blocks": args.top_blocks, "batch": args.batch,
                      "frames": args.frames, "device": str(device), "precision": args.precision,
                      "torch_threads": torch.get_num_threads(), "steps": args.steps,
                      "seconds_per_step": seconds / args.steps,
                      "samples_per_s": args.steps * args.batch / seconds, "loss": loss}))


if __name__ == "__main__":
    main()
