import json
import os
import runpy

import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "tiny-caption-gpt2")


def test_corpus_is_deterministic_and_matches_the_committed_file(tmp_path):
    out = tmp_path / "captions.txt"
    runpy.run_path(os.path.join(ROOT, "training", "fixtures", "make_corpus.py"))["main"](["--out", str(out)])
    with open(os.path.join(ROOT, "training", "fixtures", "captions.txt"), encoding="utf-8") as f:
        committed = f.read()
    assert out.read_text(encoding="utf-8") == committed
    lines = committed.splitlines()
    assert len(lines) == 3000 and sum("a lighthouse" in line for line in lines) > 50


def test_committed_tiny_model_directory_is_complete():
    assert {"model.onnx", "imagine-model.json", "golden.json", "README.md"} <= set(os.listdir(MODEL))
    with open(os.path.join(MODEL, "imagine-model.json")) as f:
        meta = json.load(f)
    assert meta["architecture"]["vocabSize"] == 50257 and meta["tags"]["end"] == "<|endoftext|>"
    assert 10 <= meta["meanCaptionTokens"] <= 25
    path = os.path.join(MODEL, meta["onnx"])
    assert os.path.getsize(path) < 8_000_000
    m = onnx.load(path)
    onnx.checker.check_model(m)
    n = meta["architecture"]["nLayer"]
    assert len(m.graph.input) == 3 + 2 * n and len(m.graph.output) == 1 + 2 * n
    with open(os.path.join(MODEL, "golden.json")) as f:
        golden = json.load(f)
    assert golden["greedy"]["steps"] == 16 and len(golden["inputIds"]) == 12
