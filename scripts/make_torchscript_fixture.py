#!/usr/bin/python3
"""A tiny TorchScript text tower and its expected outputs, for the C++ test.

The contract of a TorchScript tower in cwcl: forward(texts: List[str]) -> Tensor
of shape [len(texts), D]. This one embeds a text as the mean of learned rows
picked by its characters' code points (a hashing bag of characters). Rerun:

    /usr/bin/python3 scripts/make_torchscript_fixture.py tests/fixtures
"""
import json
import sys
from typing import List

import torch


class CharBag(torch.nn.Module):
    def __init__(self, buckets: int = 64, dim: int = 8):
        super().__init__()
        self.buckets = buckets
        self.table = torch.nn.Parameter(torch.randn(buckets, dim))

    def forward(self, texts: List[str]) -> torch.Tensor:
        rows: List[torch.Tensor] = []
        for text in texts:
            ids = [ord(c) % self.buckets for c in text]
            if len(ids) == 0:
                rows.append(torch.zeros(self.table.shape[1]))
            else:
                rows.append(self.table[torch.tensor(ids)].mean(0))
        return torch.stack(rows)


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    module = torch.jit.script(CharBag())
    module.save(f"{out}/char_bag.pt")
    texts = ["hello", "", "wake me up at seven", "café ☕"]
    with torch.no_grad():
        emb = module(texts)
    with open(f"{out}/char_bag_expected.json", "w") as f:
        json.dump({"texts": texts, "embeddings": emb.tolist(), "torch": torch.__version__}, f,
                  ensure_ascii=False)


if __name__ == "__main__":
    main()
