#!/usr/bin/env python3
"""Does a hub correction of the class scores help word tasks? (docs/experiments.md)

A hub is a class text that scores high against every clip. The correction
subtracts lam x the class's mean cosine over a reference set of clips from
every clip's score for that class (the reference: words-devel, never test).
Reads `cwcl zeroshot` JSON lines:
  DEVEL:      words-devel clips against words-devel's words
  REFERENCE:  words-devel clips against the test's words
  TEST:       the test's clips against the test's words
and the manifests that give each clip's word. Prints top-1 (%) for each lam;
on DEVEL the class means leave the scored clip out.

  scripts/hub_probe.py DEVEL DEVEL_MANIFEST REFERENCE TEST TEST_MANIFEST
"""
import json
import os
import sys


def scores(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    labels = sorted(rows[0]["scores"])
    return [os.path.basename(r["input"]) for r in rows], labels, [[r["scores"][c] for c in labels] for r in rows]


def words(manifest):
    lines = [json.loads(line) for line in open(manifest, encoding="utf-8")]
    return {os.path.basename(line["audio"]): line["word"] for line in lines}


def top1(matrix, truth, bias):
    right = 0
    for i, row in enumerate(matrix):
        b = bias(i)
        corrected = [s - b[j] for j, s in enumerate(row)]
        right += corrected.index(max(corrected)) == truth[i]
    return 100.0 * right / len(matrix)


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    devel_clips, devel_labels, devel = scores(sys.argv[1])
    devel_truth = [devel_labels.index(w) for w in map(words(sys.argv[2]).get, devel_clips)]
    _, ref_labels, ref = scores(sys.argv[3])
    test_clips, test_labels, test = scores(sys.argv[4])
    assert ref_labels == test_labels, "REFERENCE and TEST must score the same words"
    test_truth = [test_labels.index(w) for w in map(words(sys.argv[5]).get, test_clips)]
    n, k = len(devel), len(devel_labels)
    total = [sum(row[j] for row in devel) for j in range(k)]
    ref_mean = [sum(row[j] for row in ref) / len(ref) for j in range(len(ref_labels))]
    for lam in (0.0, 0.25, 0.5, 0.75, 1.0):
        d = top1(devel, devel_truth, lambda i: [lam * (total[j] - devel[i][j]) / (n - 1) for j in range(k)])
        t = top1(test, test_truth, lambda i: [lam * m for m in ref_mean])
        print(f"lam {lam:.2f}: devel {d:.1f}  test {t:.1f}")


if __name__ == "__main__":
    main()
