#!/usr/bin/env python3
"""The Markdown report of scripts/gpu_check.sh, from its $OUT folder
(stages.jsonl: one line per time-boxed stage; results.jsonl: one line per
measurement) and the machine's description. Standard library only.

    scripts/gpu_report.py OUT machine.txt > OUT/report.md
"""
import json
import os
import sys


def lines(path):
    if not os.path.exists(path):
        return []
    out = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def fmt(v, digits=3):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def main():
    out = sys.argv[1]
    stages = lines(os.path.join(out, "stages.jsonl"))
    results = lines(os.path.join(out, "results.jsonl"))
    machine = open(sys.argv[2]).read().strip() if len(sys.argv) > 2 and os.path.exists(sys.argv[2]) else ""
    print("# GPU check (scripts/gpu_check.sh)\n")
    print("```\n" + machine + "\n```\n")
    print("## Stages\n")
    print(table(["stage", "exit", "seconds", "limit", "timed out"],
                [[s["stage"], s["rc"], s["seconds"], s["limit"], s["timed_out"]] for s in stages]))
    loss = [r for r in results if "kind" in r and "n" in r and "impl" in r]
    if loss:
        print("\n## Loss: forward + backward, D = 384\n")
        cl = {(r["impl"], r["n"]): r["seconds"] for r in loss if r["kind"] == "cl"}
        rows = []
        for r in sorted(loss, key=lambda r: (r["n"], r["impl"], r["kind"], r.get("weights", ""))):
            base = cl.get((r["impl"], r["n"]))
            rows.append([r["impl"], r["kind"], r.get("weights", "") if r["kind"] != "cl" else "", r.get("path", ""), r["n"], r["seconds"],
                         r.get("floor_seconds"), r.get("ratio_to_floor"),
                         r["seconds"] / base if base and r["kind"] != "cl" else None,
                         r.get("gpu_extra_mib", r.get("extra_mib"))])
        print(table(["impl", "kind", "weights", "path", "N", "seconds", "GEMM floor s", "x floor", "x CL (same impl)",
                     "extra MiB (GPU for python)"], rows))
    tower = [r for r in results if r.get("tower") == "whisper" or "seconds_per_step" in r]
    if tower:
        print("\n## Whisper tower: training steps (top 2 blocks, CL, AdamW)\n")
        print(table(["impl", "precision", "batch", "frames", "s/step", "samples/s"],
                    [[r.get("impl"), r.get("precision"), r.get("batch"), r.get("frames"), r.get("seconds_per_step"),
                      r.get("samples_per_s")] for r in tower]))
    runs = [r for r in results if "run" in r]
    if runs:
        print("\n## Trainings on the carried data\n")
        rows = []
        for r in runs:
            metrics = lines(os.path.join(r["run_dir"], "metrics.jsonl")) if os.path.isdir(r.get("run_dir", "")) else []
            rows.append([r["run"], r["steps"], r.get("resumed_at"), r["seconds"], r["final_loss"],
                         metrics[-1].get("samples_per_s") if metrics else None, r.get("peak_rss_mib")])
        print(table(["run", "steps", "resumed at", "seconds", "final loss", "samples/s (last window)", "peak RSS MiB"],
                    rows))
    failed = [s["stage"] for s in stages if s["rc"] != 0]
    print("\n" + ("Every stage passed." if not failed else "Stages that failed or ran out of time: " + ", ".join(failed)
                  + " (their logs are in the same folder)."))


if __name__ == "__main__":
    main()
