#!/usr/bin/env python3
"""Sentences per second of all-MiniLM-L6-v2 in Python (transformers), done the
way `cwcl bench text` does it: sort by length, batches of 64, mean pooling,
L2 normalisation. Needs the throwaway environment of make_minilm_golden.py:

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \\
    MALLOC_CONF=retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1 \\
    /tmp/refvenv/bin/python scripts/bench_text_python.py \\
        ~/.cache/cwcl/models/all-MiniLM-L6-v2 data/slurp/lm.txt --threads 1
"""
import argparse
import json
import time

import torch
from transformers import AutoModel, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("sentences")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lines = open(args.sentences, encoding="utf-8").read().split("\n")
    lines = [l for l in lines if l is not None]
    texts = [lines[i % len(lines)] for i in range(args.count)]
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model).eval()

    def encode(batch):
        enc = tok(batch, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=1)

    with torch.no_grad():
        encode(texts[:64])
        start = time.perf_counter()
        order = sorted(range(len(texts)), key=lambda i: -len(tok(texts[i])["input_ids"]))
        for s in range(0, len(order), args.batch_size):
            encode([texts[i] for i in order[s:s + args.batch_size]])
        seconds = time.perf_counter() - start
    print(json.dumps({"impl": "python-transformers", "sentences": args.count, "threads": args.threads,
                      "seconds": seconds, "sentences_per_second": args.count / seconds}))


if __name__ == "__main__":
    main()
