#!/usr/bin/python3
"""Off-diagonal cosine statistics of an embedding store (how crowded the
frozen tower's space is, and so what a weight map makes of it).
usage: /usr/bin/python3 scripts/teacher_cosines.py <store.safetensors> [sample size]"""
import json
import struct
import sys

import torch


def read_store(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    entry = header["embeddings"]
    begin, end = entry["data_offsets"]
    raw = bytearray(data[8 + n + begin:8 + n + end])
    return torch.frombuffer(raw, dtype=torch.float32).view(*entry["shape"])


def main():
    x = read_store(sys.argv[1])
    sample = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rows = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:sample]
    x = torch.nn.functional.normalize(x[rows], dim=1)
    cos = (x @ x.T)[~torch.eye(x.shape[0], dtype=torch.bool)]
    q = cos.quantile(torch.tensor([0.1, 0.5, 0.9]))
    affine = (cos + 1) / 2
    print(json.dumps({"rows": x.shape[0], "mean_cos": round(cos.mean().item(), 3),
                      "negative": round((cos < 0).float().mean().item(), 3),
                      "q10": round(q[0].item(), 3), "q50": round(q[1].item(), 3), "q90": round(q[2].item(), 3),
                      "mean_affine_weight": round(affine.mean().item(), 3)}))


if __name__ == "__main__":
    main()
