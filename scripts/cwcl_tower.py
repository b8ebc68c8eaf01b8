#!/usr/bin/env python3
"""Rebuild a tower exported by `cwcl export` in PyTorch (README "Export to PyTorch").

    from cwcl_tower import load_tower
    tower = load_tower("export/")           # a torch.nn.Module in eval mode
    q = tower.embed(images_uint8)           # image towers: uint8 [B, 28, 28]; resnet: uint8 [B, 3, S, S]
    q = tower.embed(mel, lengths)           # speech towers: log-mel [B, T, n_mels], frames [B]

Run as a script to verify a rebuild against cwcl's own embeddings of the
inputs in check.safetensors (exit status 1 when they differ by more than
--tolerance):

    /usr/bin/python3 scripts/cwcl_tower.py export/ --check

Needs torch only (Debian: python3-torch). Speech towers take log-mel features
as cwcl computes them (`cwcl features`); the audio front end is not rebuilt
here.
"""
import argparse
import json
import math
import os
import struct
import sys

import torch
from torch import nn
import torch.nn.functional as F

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}


def read_safetensors(path):
    """The tensors of a safetensors file (the format's spec: an 8-byte header
    length, a JSON header, then raw little-endian data)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = bytearray(data[base + begin:base + end])
        t = torch.frombuffer(raw, dtype=_DTYPES[entry["dtype"]]) if raw else torch.empty(0, dtype=_DTYPES[entry["dtype"]])
        out[name] = t.reshape(entry["shape"]).clone()
    return out


class FramePooling(nn.Module):
    """Masked mean, or softmax attention with one learned query, over real frames."""

    def __init__(self, dim, kind):
        super().__init__()
        self.kind = kind
        if kind == "attention":
            self.query = nn.Parameter(torch.zeros(dim))

    def forward(self, x, lengths):
        padding = torch.arange(x.shape[1], device=x.device).unsqueeze(0) >= lengths.unsqueeze(1)
        if self.kind == "mean":
            real = (~padding).to(x.dtype).unsqueeze(-1)
            return (x * real).sum(1) / real.sum(1).clamp_min(1.0)
        scores = torch.matmul(x, self.query) / math.sqrt(x.shape[2])
        scores = scores.masked_fill(padding, float("-inf"))
        return (torch.softmax(scores, 1).unsqueeze(-1) * x).sum(1)


class ImageEncoder(nn.Module):
    def __init__(self, width, hidden, out_dim):
        super().__init__()
        layers = []
        for cin, cout, pool in [(1, width, False), (width, 2 * width, True), (2 * width, 4 * width, True),
                                (4 * width, 4 * width, False)]:
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
            if pool:
                layers.append(nn.MaxPool2d(2))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(4 * width, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x):
        return self.head(self.features(x))


class ResNetBlock(nn.Module):
    """cwcl's ResNetBlock: two 3x3 convolutions with batch norm, a strided
    1x1 shortcut where the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    """cwcl's ResNet tower: a stride-2 stem, four stages, mean pooling, a head."""

    def __init__(self, width, blocks, hidden, out_dim):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        stages, cin = [], width
        for stage in range(4):
            cout = width << stage
            stages.append(nn.Sequential(*[ResNetBlock(cin if b == 0 else cout, cout, 2 if b == 0 and stage > 0 else 1)
                                          for b in range(blocks)]))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nn.Linear(cin, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x.mean((2, 3)))


def sinusoids(t, d):
    pos = torch.arange(t, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(t, d)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, :d // 2]
    return pe


class ScratchSpeechEncoder(nn.Module):
    """Two unpadded stride-2 convolutions, a post-norm transformer, pooling, a linear head."""

    def __init__(self, s, out_dim):
        super().__init__()
        self.conv1 = nn.Conv2d(1, s["channels"], 3, stride=2)
        self.conv2 = nn.Conv2d(s["channels"], s["channels"], 3, stride=2)
        freq = ((s["n_mels"] - 3) // 2 + 1 - 3) // 2 + 1
        self.input_projection = nn.Linear(s["channels"] * freq, s["d_model"])
        layer = nn.TransformerEncoderLayer(s["d_model"], s["heads"], dim_feedforward=s["ff"], dropout=0.1)
        self.transformer = nn.TransformerEncoder(layer, s["layers"], enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(s["d_model"])
        self.pooling = FramePooling(s["d_model"], s["pooling"])
        self.head = nn.Linear(s["d_model"], out_dim)
        self.d_model = s["d_model"]

    def forward(self, mel, lengths):
        def once(n):
            return torch.div(n - 3, 2, rounding_mode="floor") + 1
        out_lengths = once(once(lengths)).clamp_min(0)
        x = torch.relu(self.conv2(torch.relu(self.conv1(mel.unsqueeze(1)))))
        b, _, t, _ = x.shape
        x = self.input_projection(x.permute(0, 2, 1, 3).reshape(b, t, -1))
        x = x + sinusoids(t, self.d_model).unsqueeze(0)
        padding = torch.arange(t).unsqueeze(0) >= out_lengths.unsqueeze(1)
        x = self.transformer(x.transpose(0, 1), src_key_padding_mask=padding).transpose(0, 1)
        return self.head(self.pooling(self.final_norm(x), out_lengths))


class WhisperBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)
        self.attention_out = nn.Linear(d, d)
        self.mlp_norm = nn.LayerNorm(d, eps=1e-5)
        self.mlp_in = nn.Linear(d, 4 * d)
        self.mlp_out = nn.Linear(4 * d, d)

    def forward(self, x, key_mask_add):
        b, t, d = x.shape
        dh = d // self.heads
        q, k, v = self.qkv(self.attention_norm(x)).view(b, t, 3, self.heads, dh).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh)
        if key_mask_add is not None:
            scores = scores + key_mask_add
        context = torch.matmul(torch.softmax(scores, -1), v).transpose(1, 2).reshape(b, t, d)
        y = x + self.attention_out(context)
        return y + self.mlp_out(F.gelu(self.mlp_in(self.mlp_norm(y))))


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder (Radford et al. 2022) with cwcl's padding masks."""

    def __init__(self, s):
        super().__init__()
        d = s["d_model"]
        self.conv1 = nn.Conv1d(s["n_mels"], d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(s["max_positions"], d))
        self.blocks = nn.ModuleList([WhisperBlock(d, s["heads"]) for _ in range(s["layers"])])
        self.final_norm = nn.LayerNorm(d, eps=1e-5)

    def forward(self, mel, lengths):
        b, t, _ = mel.shape
        frame_mask = (torch.arange(t, device=mel.device).unsqueeze(0) < lengths.unsqueeze(1)).to(mel.dtype)
        x = mel.transpose(1, 2) * frame_mask.unsqueeze(1)
        x = F.gelu(self.conv1(x)) * frame_mask.unsqueeze(1)
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        t_out = x.shape[1]
        x = x + self.positions[:t_out].unsqueeze(0)
        out_lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
        key_mask = None
        if int(out_lengths.min()) < t_out:
            valid = torch.arange(t_out, device=x.device).unsqueeze(0) < out_lengths.unsqueeze(1)
            key_mask = torch.zeros(b, 1, 1, t_out, device=x.device, dtype=x.dtype).masked_fill(~valid.view(b, 1, 1, t_out), float("-inf"))
        for block in self.blocks:
            x = block(x, key_mask)
        return self.final_norm(x), out_lengths


class WhisperTower(nn.Module):
    def __init__(self, s, out_dim):
        super().__init__()
        d = s["d_model"]
        self.encoder = WhisperEncoder(s)
        self.pooling = FramePooling(d, s["pooling"])
        h = s["head_hidden"]
        self.head = nn.Sequential(nn.Linear(d, out_dim)) if h == 0 else \
            nn.Sequential(nn.Linear(d, h), nn.GELU(), nn.Linear(h, out_dim))

    def forward(self, mel, lengths):
        hidden, out_lengths = self.encoder(mel, lengths)
        return self.head(self.pooling(hidden, out_lengths))


class Tower(nn.Module):
    """The exported tower under the same module path as in cwcl (image,
    scratch or whisper), so that model.safetensors loads with strict names."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        kind, s, out_dim = config["tower"], config["sizes"], config["out_dim"]
        if kind == "image":
            self.image = ImageEncoder(s["width"], s["hidden"], out_dim)
        elif kind == "resnet":
            self.resnet = ResNet(s["width"], s["blocks"], s["hidden"], out_dim)
        elif kind == "scratch":
            self.scratch = ScratchSpeechEncoder(s, out_dim)
        elif kind == "whisper":
            self.whisper = WhisperTower(s, out_dim)
        else:
            raise ValueError(f"unknown tower '{kind}'")
        self.kind = kind

    def forward(self, x, lengths=None):
        """Image: normalised [B, 1, 28, 28]; resnet: normalised [B, 3, S, S];
        speech: log-mel [B, T, n_mels] and frames [B]."""
        if self.kind == "image":
            return self.image(x)
        if self.kind == "resnet":
            return self.resnet(x)
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
        max_frames = self.config["input"].get("max_frames", 0)
        if max_frames and x.shape[1] > max_frames:
            x, lengths = x[:, :max_frames], lengths.clamp_max(max_frames)
        return (self.scratch if self.kind == "scratch" else self.whisper)(x, lengths)

    @torch.no_grad()
    def embed(self, x, lengths=None):
        """L2-normalised embeddings; image inputs as uint8 [B, 28, 28], resnet
        inputs as uint8 [B, 3, S, S] (RGB, already resized as config.json's input says)."""
        i = self.config["input"]
        if self.kind == "image":
            x = ((x.float() / 255.0 - i["mean"]) / i["std"]).unsqueeze(1)
        if self.kind == "resnet":
            mean = torch.tensor(i["mean"]).view(1, 3, 1, 1)
            std = torch.tensor(i["std"]).view(1, 3, 1, 1)
            x = (x.float() / 255.0 - mean) / std
        return F.normalize(self.forward(x, lengths), dim=1)


def load_tower(folder):
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    if config.get("format") != "cwcl-export-1":
        raise ValueError(f"{folder}/config.json: format {config.get('format')!r}, expected 'cwcl-export-1'")
    tower = Tower(config)
    state = read_safetensors(os.path.join(folder, "model.safetensors"))
    tower.load_state_dict(state, strict=True)
    return tower.eval()


def check(folder, tolerance):
    tower = load_tower(folder)
    c = read_safetensors(os.path.join(folder, "check.safetensors"))
    q = tower.embed(c["images"]) if tower.kind in ("image", "resnet") else tower.embed(c["mel"], c["lengths"])
    diff = (q - c["embeddings"]).abs().max().item()
    print(json.dumps({"folder": folder, "tower": tower.kind, "inputs": q.shape[0], "max_abs_diff": diff,
                      "tolerance": tolerance}))
    return diff <= tolerance


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a folder written by cwcl export")
    parser.add_argument("--check", action="store_true", help="compare with cwcl's embeddings in check.safetensors")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.check:
        return 0 if check(args.folder, args.tolerance) else 1
    tower = load_tower(args.folder)
    print(tower)
    return 0


if __name__ == "__main__":
    sys.exit(main())
