"""The shipped default model's corpus builder: filter rules and the summary it writes."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import default_corpus  # noqa: E402


def test_clean_rejoins_tokenised_punctuation_and_trims():
    assert default_corpus.clean("  a dog , running on the beach .\n") == "a dog, running on the beach"


def test_keep_drops_what_a_prompt_model_should_not_learn():
    assert default_corpus.keep("a lighthouse on a cliff at dusk")
    assert not default_corpus.keep("two words")  # under 3 words
    assert not default_corpus.keep(" ".join(["word"] * 41))  # over 40 words
    assert not default_corpus.keep("buy now at www.example.com today")  # URL
    assert not default_corpus.keep("replacement filter part 1234567 for model")  # product code
    assert not default_corpus.keep("stock photo of a happy family")  # boilerplate
    assert not default_corpus.keep("Москва вечером на берегу реки")  # not English
    assert not default_corpus.keep("$$$ 99 ++ 42 == !!! ###")  # mostly not letters


def test_main_reads_every_source_dedupes_and_summarises(tmp_path):
    data = tmp_path / "data"
    lines = {
        "laion": ["A red car parked by the sea", "a red car parked by the sea", "ok"],
        "laion2b": ["Sunset over the mountains, oil painting"],
        "cc3m": ["a dog , running on the beach ."],
        "sd": ["portrait of a cat, highly detailed, artstation"],
    }
    for name, rel in default_corpus.SOURCES:
        path = data / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines[name]) + "\n", encoding="utf-8")
    out = tmp_path / "corpus.txt"
    assert default_corpus.main(["--data", str(data), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8").splitlines() == [
        "A red car parked by the sea",
        "Sunset over the mountains, oil painting",
        "a dog, running on the beach",
        "portrait of a cat, highly detailed, artstation",
    ]
    summary = json.loads((tmp_path / "corpus.json").read_text(encoding="utf-8"))
    assert summary["captions"] == 4
    assert summary["sources"]["laion"] == {"file": default_corpus.SOURCES[0][1], "read": 3, "kept": 1}


def test_main_names_a_missing_source(tmp_path, capsys):
    assert default_corpus.main(["--data", str(tmp_path), "--out", str(tmp_path / "c.txt")]) == 2
    assert "is missing" in capsys.readouterr().err
