"""Builds the caption corpus of the shipped default model (models/caption-gpt2-small) from the real
caption data in ../shared/data, one caption per line, plus a JSON summary for the data card.

    /usr/bin/python3 training/default_corpus.py --data ../shared/data --out WORK/corpus.txt

Sources (each folder's SOURCE.txt states its licence; all allow this use):
  laion    laion400m-img2dataset-10k/captions_10000.txt      LAION-400M-style alt-text; metadata CC-BY 4.0, repo MIT
  laion2b  laion-nemo-memorization-prompts/unmemorized_laion_prompts.txt  LAION-2B captions; CC-BY 4.0, repo MIT
           (the *memorized* set is left out: those are near-duplicate images, over-represented on purpose)
  cc3m     cc3m-validation/captions.txt                       Conceptual Captions; "freely used for any purpose"
  sd       sd-prompts/diffusiondb-10k-imagereward/refl_prompts.txt  DiffusionDB prompts; CC0-1.0, repo Apache-2.0
Flickr8k is not used: it is distributed for research use only.

The filter removes what a prompt model should not learn to write: non-English or mostly non-letter
alt-text, URLs, product codes (long digit runs), captions under 3 or over 40 words (the over-long
ones are SEO keyword lists and DiffusionDB's pasted style dumps) and duplicates (case-insensitive).
Explicit captions are dropped later by `data prepare`, with the project's one filter.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Dict, Iterator, List, Tuple

SOURCES: List[Tuple[str, str]] = [
    ("laion", "laion400m-img2dataset-10k/captions_10000.txt"),
    ("laion2b", "laion-nemo-memorization-prompts/unmemorized_laion_prompts.txt"),
    ("cc3m", "cc3m-validation/captions.txt"),
    ("sd", "sd-prompts/diffusiondb-10k-imagereward/refl_prompts.txt"),
]

MIN_WORDS = 3
MAX_WORDS = 40
URL = re.compile(r"https?:|www\.|\.com\b|\.jpg\b|\.png\b", re.IGNORECASE)
DIGIT_RUN = re.compile(r"\d{5,}")
# Characters an English caption is made of; anything else counts against it.
ENGLISH_CHARS = re.compile(r"[A-Za-z0-9 ,.;:!?'\"()&/+\-]")
# CC3M's hypernymised placeholders and stock-photo boilerplate add nothing to a prompt.
BOILERPLATE = re.compile(r"stock (photo|vector|image)|royalty free|\bimage may contain\b", re.IGNORECASE)


def clean(line: str) -> str:
    text = " ".join(line.split())
    # CC3M tokenises punctuation ("a dog , running ."); rejoin it the way people write.
    text = re.sub(r" ([,.;:!?])", r"\1", text)
    return text.strip(" .")


def keep(text: str) -> bool:
    words = text.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return False
    if URL.search(text) or DIGIT_RUN.search(text) or BOILERPLATE.search(text):
        return False
    english = len(ENGLISH_CHARS.findall(text))
    letters = sum(c.isalpha() for c in text)
    return english >= 0.97 * len(text) and letters >= 0.6 * len(text)


def read_source(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            yield line


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    p.add_argument("--out", required=True, help="corpus file to write (one caption per line)")
    p.add_argument("--summary", help="JSON summary (default: OUT with .json)")
    args = p.parse_args(argv)

    seen = set()
    summary: Dict[str, Dict[str, int]] = {}
    kept: List[str] = []
    for name, rel in SOURCES:
        path = os.path.join(args.data, rel)
        if not os.path.exists(path):
            print(f"default_corpus: {path} is missing (see ../shared/data/README.md)", file=sys.stderr)
            return 2
        read = taken = 0
        for line in read_source(path):
            read += 1
            text = clean(line)
            key = text.lower()
            if not keep(text) or key in seen:
                continue
            seen.add(key)
            kept.append(text)
            taken += 1
        summary[name] = {"file": rel, "read": read, "kept": taken}
        print(f"{name}: kept {taken:,} of {read:,} ({rel})")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for text in kept:
            f.write(text + "\n")
    summary_path = args.summary or os.path.splitext(args.out)[0] + ".json"
    with open(summary_path, "w", encoding="utf-8") as f:
        json.dump({"sources": summary, "captions": len(kept)}, f, indent=2)
    print(f"wrote {len(kept):,} captions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
