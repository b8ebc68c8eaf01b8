#!/usr/bin/python3
"""Training steps of the ResNet image tower in Python PyTorch, timed like
`cwcl bench image` (docs/performance.md "Images"): the same tower rebuilt
from the folder `cwcl bench image --export <folder>` writes
(scripts/cwcl_tower.py), the same random batch (seed 1), CL loss with a
learned temperature, AdamW at 1e-4, every parameter trained.

    build/release/cwcl bench image --export /tmp/resnet0 --steps 1
    /usr/bin/python3 scripts/bench_image_python.py /tmp/resnet0 --threads 2 [--precision bf16]

Prints one JSON line.
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_tower_python import cl_loss, time_steps  # noqa: E402
from cwcl_tower import load_tower  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", help="cwcl bench image --export's folder")
    ap.add_argument("-b", "--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tower = load_tower(args.folder).to(device).train()
    size = tower.config["input"]["height"]
    torch.manual_seed(1)
    x = torch.randn(args.batch, 3, size, size).to(device)
    p = torch.randn(args.batch, tower.config["out_dim"]).to(device)
    logit_scale = torch.tensor(math.log(1 / 0.07), device=device, requires_grad=True)
    for q in tower.parameters():
        q.requires_grad_(True)
    optimizer = torch.optim.AdamW(list(tower.parameters()) + [logit_scale], lr=1e-4)

    def step():
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            q = tower(x)
        loss = cl_loss(p, q.float(), logit_scale)
        loss.backward()
        optimizer.step()
        return loss.item()

    loss, seconds = time_steps(step, args.steps)
    s = tower.config["sizes"]
    print(json.dumps({"impl": "python", "torch": torch.__version__, "tower": "resnet", "width": s["width"],
                      "blocks": s["blocks"], "image_size": size, "batch": args.batch, "device": str(device),
                      "precision": args.precision, "torch_threads": torch.get_num_threads(), "steps": args.steps,
                      "seconds_per_step": seconds / args.steps, "samples_per_s": args.steps * args.batch / seconds,
                      "loss": loss}))


if __name__ == "__main__":
    main()
