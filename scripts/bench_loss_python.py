#!/usr/bin/python3
"""The plain CL / CWCL loss in Python PyTorch, timed like `cwcl bench loss`.

Run with the same allocator and thread count as the C++ side, e.g.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \\
    MALLOC_CONF=retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1 \\
    /usr/bin/python3 scripts/bench_loss_python.py --kind cwcl -n 8192 --threads 1

Prints one JSON line: median seconds of forward + backward, peak extra
resident memory over the first run (on a GPU: peak device memory), and the
time of three N x D x N products.

--device cuda runs it on a GPU; --compile wraps the loss in torch.compile
(PyTorch 2.x), whose compilation happens in the untimed warm-up at full size.
The loss is written the way a PyTorch user writes it (OpenCLIP-style
cross-entropy; CWCL with the paper's affine weights as soft targets).
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def weights_of(p, weights, gamma, tau):
    """The weight map of the frozen rows' cosines, as cwcl's maps define them."""
    cos = (p @ p.T).clamp(-1, 1)
    if weights == "affine":
        return cos * 0.5 + 0.5
    if weights == "power":
        return (cos * 0.5 + 0.5).clamp(min=0) ** gamma
    if weights == "kernel":
        return torch.exp((cos - 1) / tau)
    raise ValueError(weights)


def loss_fn(kind, p, q, logit_scale, weights="affine", gamma=8.0, tau=0.1):
    p = F.normalize(p, dim=1)
    q = F.normalize(q, dim=1)
    logits = logit_scale.clamp(max=math.log(100)).exp() * p @ q.T
    n = p.shape[0]
    if kind == "cl":
        target = torch.arange(n, device=p.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    with torch.no_grad():
        w = weights_of(p, weights, gamma, tau)
        w = w / w.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, w) + F.cross_entropy(logits.T, w))


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_floor(p, q):
    n, block = p.shape[0], 1024
    out = torch.empty(block, n, device=p.device)
    synchronize(p.device)
    start = time.perf_counter()
    for _ in range(3):
        for i in range(0, n, block):
            rows = min(block, n - i)
            torch.mm(p[i:i + rows], q.T, out=out[:rows])
    synchronize(p.device)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", default="cwcl", choices=["cl", "cwcl"])
    ap.add_argument("--weights", default="affine", choices=["affine", "power", "kernel"], help="cwcl's weight map")
    ap.add_argument("--gamma", type=float, default=8.0, help="power map exponent")
    ap.add_argument("--tau", type=float, default=0.1, help="kernel map bandwidth")
    ap.add_argument("-n", type=int, default=8192)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the loss (PyTorch 2.x)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.compile and not hasattr(torch, "compile"):
        raise SystemExit(f"--compile needs PyTorch 2.x; this is {torch.__version__}")
    base_fn = lambda kind, p, q, s: loss_fn(kind, p, q, s, args.weights, args.gamma, args.tau)  # noqa: E731
    fn = torch.compile(base_fn, dynamic=False) if args.compile else base_fn
    torch.manual_seed(0)
    p = torch.randn(args.n, args.dim).to(device)
    q = torch.randn(args.n, args.dim).to(device).requires_grad_(True)
    q.grad = torch.zeros_like(q)
    scale = torch.tensor(math.log(1 / 0.07), device=device, requires_grad=True)

    small = torch.randn(256, args.dim, device=device, requires_grad=True)
    base_fn(args.kind, small.detach(), small, scale.detach()).backward()
    torch.mm(p[:1024], q.detach().T)

    def step():
        loss = fn(args.kind, p, q, scale)
        loss.backward()
        return loss.item()  # waits for the device

    if args.compile or device.type == "cuda":
        step()  # compiles (at this size) and warms the GPU's libraries; not timed
    rss_before = status_kib("VmRSS")
    peak_ok = reset_peak()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    loss = step()
    times = [time.perf_counter() - start] if args.n >= 32768 else []
    peak = status_kib("VmHWM")
    if device.type == "cuda":
        gpu_extra_mib = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    while len(times) < args.repeats:
        start = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - start)
    times.sort()
    seconds = times[len(times) // 2]
    time_floor(p, q.detach())
    floor = time_floor(p, q.detach())
    out = {"impl": "python-compile" if args.compile else "python", "torch": torch.__version__,
           "kind": args.kind, "weights": args.weights if args.kind == "cwcl" else "identity", "path": "plain", "n": args.n, "d": args.dim, "device": str(device),
           "torch_threads": torch.get_num_threads(), "seconds": seconds, "loss": loss,
           "extra_mib": (peak - rss_before) / 1024 if peak_ok else -1,
           "floor_seconds": floor, "ratio_to_floor": seconds / floor}
    if device.type == "cuda":
        out["gpu_extra_mib"] = gpu_extra_mib
    print(json.dumps(out))


if __name__ == "__main__":
    main()
