#!/usr/bin/python3
"""Golden values for the cwcl losses, computed independently in PyTorch.

Rerun (system python3-torch; the pyenv python3 on PATH has no torch):

    /usr/bin/python3 scripts/make_loss_golden.py > tests/golden/loss_golden.json

Inputs are fixed by a seed and written into the file, so the C++ test does not
depend on matching random generators. Everything is float64. The formulas are
written from docs/method.md (CWCL), CLIP (symmetric cross-entropy) and SigLIP
(Algorithm 1) with PyTorch's own cross_entropy (soft targets),
binary_cross_entropy_with_logits and an explicit per-row SupCon loop, not by
translating the C++ code.
"""
import json
import math

import torch
import torch.nn.functional as F

N, D = 12, 8


def make_inputs():
    g = torch.Generator().manual_seed(20231122)
    # Four clusters of three near-duplicates on the frozen side, so that the
    # weight maps have something to tell apart.
    centres = torch.randn(4, D, generator=g, dtype=torch.float64)
    labels = torch.arange(4).repeat_interleave(3)
    p = centres[labels] + 0.15 * torch.randn(N, D, generator=g, dtype=torch.float64)
    p[7] = p[6] + 1e-4 * torch.randn(D, generator=g, dtype=torch.float64)  # near-identical pair
    q = 0.6 * p + torch.randn(N, D, generator=g, dtype=torch.float64)
    p = p * (1.0 + torch.rand(N, 1, generator=g, dtype=torch.float64))  # unnormalised rows
    custom = torch.rand(N, N, generator=g, dtype=torch.float64)
    custom = 0.5 * (custom + custom.T)
    custom.fill_diagonal_(1.0)
    center = F.normalize(p, dim=1).mean(0)
    labels = labels.clone()
    labels[11] = 0  # one label crosses its cluster
    return p, q, labels, custom, center


def cosines(p, center):
    a = F.normalize(p, dim=1)
    if center is not None:
        a = F.normalize(a - center, dim=1)
    return a @ a.T


def weights(cfg, p, labels, custom, center):
    m = cfg["map"]
    if m == "identity":
        return torch.eye(p.shape[0], dtype=p.dtype)
    if m == "labels":
        return (labels[:, None] == labels[None, :]).to(p.dtype)
    if m == "custom":
        return custom
    cos = cosines(p, center if cfg.get("center") else None)
    if m == "affine":
        return (cos + 1) / 2
    if m == "relu":
        return torch.relu(cos)
    if m == "power":
        return ((cos + 1) / 2) ** cfg["gamma"]
    if m == "kernel":
        return torch.exp((cos - 1) / cfg["kernel_tau"])
    if m == "row_minmax":
        lo = cos.min(dim=1, keepdim=True).values
        hi = cos.max(dim=1, keepdim=True).values
        return (cos - lo) / (hi - lo)
    raise ValueError(m)


def supcon_direction(logits, labels):
    total = 0.0
    logp = torch.log_softmax(logits, dim=1)
    for i in range(logits.shape[0]):
        positives = (labels == labels[i]).nonzero().flatten()
        total = total - logp[i, positives].mean()
    return total / logits.shape[0]


def loss(cfg, p, q, scale, bias, labels, custom, center):
    # The cosine regression term: alone (kind "cosine") or added with a weight.
    distance = (1 - F.cosine_similarity(p, q, dim=1)).mean()
    if cfg["kind"] == "cosine":
        return distance
    return contrastive(cfg, p, q, scale, bias, labels, custom, center) + cfg.get("cosine_weight", 0.0) * distance


def contrastive(cfg, p, q, scale, bias, labels, custom, center):
    pn, qn = F.normalize(p, dim=1), F.normalize(q, dim=1)
    s = torch.exp(torch.clamp(scale, max=math.log(100.0))) if cfg["learn_scale"] else 1.0 / cfg["temperature"]
    cos = pn @ qn.T
    kind = cfg["kind"]
    n = p.shape[0]
    if kind in ("siglip", "cwsiglip"):
        z = s * cos + (bias if cfg["learn_bias"] else cfg["bias"])
        if kind == "siglip":
            y = 2 * torch.eye(n, dtype=p.dtype) - 1
            return -F.logsigmoid(y * z).sum() / n
        w = weights(cfg, p.detach(), labels, custom, center)
        return F.binary_cross_entropy_with_logits(z, w, reduction="sum") / n
    logits = s * cos
    target = torch.arange(n)
    if kind == "cl":
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    if kind == "supcon":
        return 0.5 * (supcon_direction(logits, labels) + supcon_direction(logits.T, labels))
    w = weights(cfg, p.detach(), labels, custom, center)
    soft = w / w.sum(dim=1, keepdim=True)
    directions = cfg.get("directions", "both")
    pq = F.cross_entropy(logits, soft if directions != "trained_to_frozen" else target)
    qp = F.cross_entropy(logits.T, soft if directions != "frozen_to_trained" else target)
    return 0.5 * (pq + qp)


def cases():
    base = {"temperature": 0.07, "learn_scale": False, "bias": -10.0, "learn_bias": False}
    out = [
        {"name": "cl", "kind": "cl"},
        {"name": "cl_learned_scale", "kind": "cl", "learn_scale": True, "scale": math.log(1 / 0.07)},
        {"name": "cl_scale_clamped", "kind": "cl", "learn_scale": True, "scale": 5.3},
        {"name": "supcon", "kind": "supcon"},
        {"name": "siglip", "kind": "siglip", "learn_scale": True, "scale": math.log(10.0),
         "learn_bias": True, "bias_value": -10.0},
        {"name": "siglip_fixed", "kind": "siglip", "temperature": 0.1, "bias": -3.0},
        {"name": "cosine", "kind": "cosine"},
        {"name": "cl_plus_cosine", "kind": "cl", "cosine_weight": 0.5},
        {"name": "siglip_plus_cosine", "kind": "siglip", "cosine_weight": 1.0},
    ]
    maps = [
        {"map": "affine"},
        {"map": "relu"},
        {"map": "power", "gamma": 3.0},
        {"map": "kernel", "kernel_tau": 0.2},
        {"map": "row_minmax"},
        {"map": "labels"},
        {"map": "identity"},
        {"map": "custom"},
        {"map": "affine", "center": True},
        {"map": "kernel", "kernel_tau": 0.1, "center": True},
    ]
    for m in maps:
        tag = m["map"] + ("_centred" if m.get("center") else "")
        out.append({"name": "cwcl_" + tag, "kind": "cwcl", **m})
        out.append({"name": "cwsiglip_" + tag, "kind": "cwsiglip", "learn_scale": True,
                    "scale": math.log(10.0), "learn_bias": True, "bias_value": -5.0, **m})
    out.append({"name": "cwcl_affine_learned_scale", "kind": "cwcl", "map": "affine",
                "learn_scale": True, "scale": 2.0})
    out.append({"name": "cwcl_affine_plus_cosine", "kind": "cwcl", "map": "affine", "cosine_weight": 2.0})
    for d in ("frozen_to_trained", "trained_to_frozen"):
        out.append({"name": "cwcl_power_" + d, "kind": "cwcl", "map": "power", "gamma": 3.0,
                    "directions": d})
    return [{**base, **c} for c in out]


def main():
    p0, q0, labels, custom, center = make_inputs()
    result = {
        "generator": "scripts/make_loss_golden.py",
        "torch": torch.__version__,
        "inputs": {"p": p0.tolist(), "q": q0.tolist(), "labels": labels.tolist(),
                   "custom": custom.tolist(), "center": center.tolist()},
        "cases": [],
    }
    for cfg in cases():
        p = p0.clone().requires_grad_(True)
        q = q0.clone().requires_grad_(True)
        scale = torch.tensor(cfg.get("scale", 0.0), dtype=torch.float64, requires_grad=True)
        bias = torch.tensor(cfg.get("bias_value", 0.0), dtype=torch.float64, requires_grad=True)
        value = loss(cfg, p, q, scale, bias, labels, custom, center)
        value.backward()
        case = dict(cfg)
        case["loss"] = value.item()
        case["grad_p"] = p.grad.tolist()
        case["grad_q"] = q.grad.tolist()
        if cfg["learn_scale"]:
            case["grad_scale"] = scale.grad.item()
        if cfg["learn_bias"]:
            case["grad_bias"] = bias.grad.item()
        result["cases"].append(case)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
