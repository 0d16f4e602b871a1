import base64
import collections
import dataclasses
import json
import os

import numpy as np
import onnx
import pytest
import torch

import export_onnx
from checkpoint import load_pretrained, save_pretrained
from gpt2 import GPT2LMHeadModel, preset

EXPECTED_INPUTS = ["input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"]
EXPECTED_OUTPUTS = ["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"]
BUFFER_OUTPUTS = ["logits", "new_key_values.0.key", "new_key_values.0.value", "new_key_values.1.key", "new_key_values.1.value"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny random model saved as a checkpoint with a training.json, then exported via the CLI."""
    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(5)
    model = GPT2LMHeadModel(preset("tiny"))
    save_pretrained(model, str(root / "ckpt"))
    training = {"baseModel": "gpt2-xl", "tags": {"start": "<|startoftext|>", "end": "<|endoftext|>"}, "meanCaptionTokens": 15.2,
                "frozenBlocks": 42, "steps": 7, "data": {"source": "captions.txt", "trainTokens": 10}}
    with open(root / "ckpt" / "training.json", "w") as f:
        json.dump(training, f)
    assert export_onnx.main(["--checkpoint", str(root / "ckpt"), "--out", str(root / "model")]) == 0
    return root


def dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_onnx_graph_has_the_engine_names_dynamic_axes_and_passes_the_checker(exported):
    path = str(exported / "model" / "model.onnx")
    m = onnx.load(path)
    onnx.checker.check_model(m)
    assert [i.name for i in m.graph.input] == EXPECTED_INPUTS
    assert [o.name for o in m.graph.output] == EXPECTED_OUTPUTS
    shapes = {v.name: dims(v) for v in list(m.graph.input) + list(m.graph.output)}
    assert shapes["input_ids"] == ["batch_size", "sequence_length"]
    assert shapes["attention_mask"] == ["batch_size", "past_sequence_length + sequence_length"]
    assert shapes["past_key_values.1.value"] == ["batch_size", 2, "past_sequence_length", 16]
    assert shapes["logits"] == ["batch_size", "sequence_length", 50257]
    # --kv-cache auto on a 32-wide model: Hugging Face's layout, the past + this step.
    assert shapes["present.0.key"] == ["batch_size", 2, "past_sequence_length + sequence_length", 16]
    elem = {v.name: v.type.tensor_type.elem_type for v in list(m.graph.input) + list(m.graph.output)}
    assert elem["input_ids"] == elem["attention_mask"] == elem["position_ids"] == onnx.TensorProto.INT64
    assert elem["logits"] == elem["past_key_values.0.key"] == onnx.TensorProto.FLOAT
    assert m.opset_import[0].version == 17
    # The tied embedding matrix stored once (not also as lm_head's transpose)…
    assert sum(1 for init in m.graph.initializer if list(init.dims) in ([50257, 32], [32, 50257])) == 1
    # …and every weight in one external-data file beside the graph, which onnxruntime maps.
    graph_only = onnx.load(path, load_external_data=False)
    big = [t for t in graph_only.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert {entry.value for t in big for entry in t.external_data if entry.key == "location"} == {"model.onnx.data"}
    assert any(list(t.dims) == [50257, 32] for t in big)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL and len(t.raw_data) < export_onnx.EXTERNAL_DATA_THRESHOLD
               for t in graph_only.graph.initializer if t not in big)
    assert os.path.getsize(path) < 1_000_000 and os.path.getsize(path + ".data") > 50257 * 32 * 4


def test_buffer_layout_returns_only_this_steps_keys_and_values(tmp_path):
    torch.manual_seed(1)
    path = str(tmp_path / "buffer.onnx")
    export_onnx.export_onnx(GPT2LMHeadModel(preset("tiny")), path, kv_cache="buffer")
    m = onnx.load(path)
    onnx.checker.check_model(m)
    assert [i.name for i in m.graph.input] == EXPECTED_INPUTS  # the past goes in as before
    assert [o.name for o in m.graph.output] == BUFFER_OUTPUTS
    key = {v.name: dims(v) for v in m.graph.output}["new_key_values.0.key"]
    assert (key[0], key[2]) == ("batch_size", "sequence_length")


def test_auto_layout_is_the_buffer_from_768_wide_and_concat_below_or_fused():
    narrow, gpt2 = preset("caption-small"), preset("gpt2")
    assert export_onnx.kv_cache_layout(gpt2) == export_onnx.kv_cache_layout(gpt2, "auto") == "buffer"
    assert export_onnx.kv_cache_layout(preset("gpt2-xl")) == "buffer"
    assert export_onnx.kv_cache_layout(narrow) == "concat"
    assert export_onnx.kv_cache_layout(gpt2, fused_attention=True) == "concat"
    assert export_onnx.kv_cache_layout(narrow, "buffer") == "buffer"  # asked for: as asked
    assert export_onnx.kv_cache_layout(gpt2, "concat") == "concat"


def test_kv_cache_flag_refuses_layouts_it_cannot_write(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_onnx.main(["--random", "tiny", "--fused-attention", "--kv-cache", "buffer", "--out", str(tmp_path / "a")])
    assert "needs --kv-cache concat" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_onnx.main(["--from-onnx", str(tmp_path), "--fused-attention", "--out", str(tmp_path / "b")])
    assert "--from-onnx keeps the source graph's attention" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_from_onnx_kv_cache_reexports_the_same_weights_in_the_other_layout(tmp_path):
    # models/ fixtures and older exports are concat graphs; --kv-cache rebuilds the PyTorch model from
    # the initializers (their state-dict names) and exports it again, golden.json included. Trained
    # weights all differ (the noise here); an untrained model's equal ones are refused (next test).
    torch.manual_seed(5)
    model = GPT2LMHeadModel(preset("tiny"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    save_pretrained(model, str(tmp_path / "ckpt"))
    with open(tmp_path / "ckpt" / "training.json", "w") as f:
        json.dump({"steps": 7}, f)
    source = tmp_path / "concat"
    assert export_onnx.main(["--checkpoint", str(tmp_path / "ckpt"), "--out", str(source)]) == 0
    out = tmp_path / "buffer"
    assert export_onnx.main(["--from-onnx", str(source), "--kv-cache", "buffer", "--out", str(out)]) == 0
    before, after = (onnx.load(str(d / "model.onnx")) for d in (source, out))
    assert [o.name for o in after.graph.output] == BUFFER_OUTPUTS
    weights = lambda m: {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer if t.name.startswith("model.")}
    old, new = weights(before), weights(after)
    assert old.keys() == new.keys() and all(np.array_equal(old[k], new[k]) for k in old)
    with open(source / "golden.json") as f, open(out / "golden.json") as g:
        a, b = json.load(f), json.load(g)
    assert a["inputIds"] == b["inputIds"] and a["greedy"]["tokens"] == b["greedy"]["tokens"]
    with open(out / "imagine-model.json") as f:
        meta = json.load(f)
    assert meta["provenance"]["reexported"]["kvCache"] == "buffer" and meta["provenance"]["steps"] == 7


def test_from_onnx_kv_cache_refuses_a_graph_it_did_not_write_in_float32(exported, tmp_path):
    # The fixture's untrained weights: torch stored its equal zero biases once.
    with pytest.raises(SystemExit, match="only as copies of equal ones"):
        export_onnx.main(["--from-onnx", str(exported / "model"), "--kv-cache", "buffer", "--out", str(tmp_path / "y")])
    quantized = tmp_path / "int8"
    assert export_onnx.main(["--from-onnx", str(exported / "model"), "--quant", "int8", "--out", str(quantized)]) == 0
    with pytest.raises(SystemExit, match="not a float32 graph written by training/export_onnx.py"):
        export_onnx.main(["--from-onnx", str(quantized), "--kv-cache", "buffer", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.parametrize("kv_cache", ["buffer", "concat"])
def test_exported_graph_is_lean(tmp_path, kv_cache):
    # The decoder runs one token per step, so every node costs a kernel launch per step. The
    # attention bias (causal structure + attention_mask) is built once and shared by all blocks, the
    # head split/merge reshapes use one shared shape tensor or a constant one (no per-layer
    # Shape -> Gather -> Unsqueeze -> Concat chains), and c_attn's output is split once. Counted for
    # 2 and 4 layers, so a per-layer regression shows up as growth.
    counts = {}
    for n_layer in (2, 4):
        torch.manual_seed(1)
        model = GPT2LMHeadModel(dataclasses.replace(preset("tiny"), n_layer=n_layer))
        path = str(tmp_path / f"m{n_layer}.onnx")
        export_onnx.export_onnx(model, path, kv_cache=kv_cache)
        counts[n_layer] = collections.Counter(n.op_type for n in onnx.load(path).graph.node)
    two, four = counts[2], counts[4]
    # (buffer: each block slices its attention weights, past | this step, with bounds of its own.)
    shared = ("Where", "And", "Not", "LessOrEqual", "Range", "Shape", "Gather", "Cast")
    for op in shared + (("Unsqueeze", "Slice") if kv_cache == "concat" else ()):
        assert two[op] == four[op], f"{op} grows with the number of layers: {two[op]} -> {four[op]}"
    per_layer = {op: (four[op] - two[op]) // 2 for op in four if four[op] != two[op]}
    # Per block: 2 Reshape (head split, head merge), 1 Split, 2 Transpose (qkv, merge) + 1 for k^T.
    assert per_layer["Reshape"] == 2 and per_layer["Split"] == 1 and per_layer["Transpose"] == 3
    if kv_cache == "concat":
        # 2 Concat (the cache); nothing else that only moves data.
        assert two["Where"] == 1 and two["Shape"] <= 3 and two["Slice"] == 0
        assert per_layer["Concat"] == 2
    else:
        # No Concat of the cache: 1 of the scores (past | this step), 2 Slices of the weights, and
        # the past's length read once for all blocks (from the shared bias).
        assert two["Where"] == 1 and two["Shape"] <= 5
        assert per_layer["Concat"] == 1 and per_layer["Slice"] == 2
        graph = onnx.load(str(tmp_path / "m2.onnx")).graph
        past = {i.name for i in graph.input if i.name.startswith("past_key_values.")}
        assert not any(n.op_type == "Concat" and past & set(n.input) for n in graph.node)


@pytest.mark.parametrize("kv_cache", ["buffer", "concat"])
def test_traced_graph_does_not_depend_on_the_dummy_shapes(tmp_path, kv_cache):
    # If any batch/sequence/past length were baked into the graph as a constant, tracing with other
    # dummy shapes would produce a different graph. (verify_onnx.mjs also runs past length 0.)
    torch.manual_seed(1)
    model = GPT2LMHeadModel(preset("tiny"))
    graphs = []
    for i, shape in enumerate([(2, 3, 4), (3, 5, 1), (1, 1, 6)]):
        path = str(tmp_path / f"m{i}.onnx")
        export_onnx.export_onnx(model, path, trace_shape=shape, kv_cache=kv_cache)
        graphs.append([n.SerializeToString() for n in onnx.load(path).graph.node])
    assert graphs[0] == graphs[1] == graphs[2]


def test_model_json_carries_training_provenance(exported):
    with open(exported / "model" / "imagine-model.json") as f:
        meta = json.load(f)
    assert meta["format"] == "imagine-bot/model" and meta["version"] == 1 and meta["onnx"] == "model.onnx"
    assert meta["architecture"] == {"type": "gpt2", "vocabSize": 50257, "nPositions": 64, "nEmbd": 32, "nLayer": 2, "nHead": 2}
    assert meta["tags"] == {"start": "<|startoftext|>", "end": "<|endoftext|>"}
    assert meta["meanCaptionTokens"] == 15.2
    prov = meta["provenance"]
    assert (prov["baseModel"], prov["frozenBlocks"], prov["steps"], prov["exporter"]) == ("gpt2-xl", 42, 7, "training/export_onnx.py")
    assert prov["data"]["source"] == "captions.txt" and prov["torch"] == torch.__version__ and "T" in prov["exportedAt"]


def test_metadata_flags_override_training_json(exported, tmp_path):
    model = load_pretrained(str(exported / "ckpt"))
    args = export_onnx.build_parser().parse_args(["--checkpoint", "x", "--out", "y", "--tags", "<s>,</s>", "--mean-caption-tokens", "9"])
    meta = export_onnx.model_metadata(model, {"tags": None, "meanCaptionTokens": 15.2}, args)
    assert meta["tags"] == {"start": "<s>", "end": "</s>"} and meta["meanCaptionTokens"] == 9.0
    assert "maxNewTokens" not in meta  # absent unless asked for: the engine then caps at the mean
    args = export_onnx.build_parser().parse_args(["--checkpoint", "x", "--out", "y", "--no-tags"])
    assert export_onnx.model_metadata(model, {"tags": {"start": "a", "end": "b"}}, args)["tags"] is None
    args = export_onnx.build_parser().parse_args(["--checkpoint", "x", "--out", "y", "--max-new-tokens", "64"])
    assert export_onnx.model_metadata(model, {"meanCaptionTokens": 15.2}, args)["maxNewTokens"] == 64


def test_golden_matches_the_pytorch_model_full_and_cached(exported):
    with open(exported / "model" / "golden.json") as f:
        golden = json.load(f)
    model = load_pretrained(str(exported / "ckpt")).eval()
    ids = golden["inputIds"]
    assert ids == export_onnx.DEFAULT_GOLDEN_IDS
    assert golden["logits"]["tokenIds"] == list(range(0, 50257, 97))
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids]))
    for p, row in zip(golden["logits"]["positions"], golden["logits"]["values"]):
        want = logits[0, p, golden["logits"]["tokenIds"]]
        assert torch.allclose(torch.tensor(row), want, atol=1e-5)
    last = np.frombuffer(base64.b64decode(golden["lastLogitsBase64"]), dtype="<f4")
    assert last.shape == (50257,) and np.allclose(last, logits[0, -1].numpy(), atol=1e-5)

    # The greedy run was decoded through the cache; a cache-less full forward must pick the same
    # tokens with the same logits.
    greedy = golden["greedy"]
    assert greedy["steps"] == 16 == len(greedy["tokens"]) == len(greedy["logits"])
    seq = list(ids)
    for token, value in zip(greedy["tokens"], greedy["logits"]):
        with torch.no_grad():
            out, _ = model(torch.tensor([seq]))
        assert int(out[0, -1].argmax()) == token
        assert abs(float(out[0, -1, token]) - value) < 1e-4
        seq.append(token)


def test_random_preset_export_without_training_json(tmp_path):
    assert export_onnx.main(["--random", "tiny", "--seed", "2", "--out", str(tmp_path), "--no-golden", "--opset", "14"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["imagine-model.json", "model.onnx", "model.onnx.data"]
    with open(tmp_path / "imagine-model.json") as f:
        meta = json.load(f)
    assert meta["provenance"]["baseModel"] == "random:tiny (seed 2)" and meta["tags"] is None and meta["meanCaptionTokens"] == 0
    assert onnx.load(str(tmp_path / "model.onnx")).opset_import[0].version == 14


def test_fused_attention_export_has_one_attention_node_per_block(tmp_path):
    # --fused-attention: the per-block Transpose/Concat/MatMul/Softmax chain becomes one
    # com.microsoft MultiHeadAttention that appends to the cache; the dense layers stay as they
    # are (so --quant still applies). Numerical equality is checked through onnxruntime-node in
    # test/prompt/fusedExport.test.ts.
    counts = {}
    for fused in (False, True):
        torch.manual_seed(1)
        model = GPT2LMHeadModel(preset("tiny"))
        path = str(tmp_path / f"m{fused}.onnx")
        export_onnx.export_onnx(model, path, fused_attention=fused, kv_cache="concat")
        m = onnx.load(path)
        onnx.checker.check_model(m)
        counts[fused] = collections.Counter(n.op_type for n in m.graph.node)
        assert [o.name for o in m.graph.output] == EXPECTED_OUTPUTS
        if fused:
            attention = [n for n in m.graph.node if n.op_type == "MultiHeadAttention"]
            assert [n.domain for n in attention] == ["com.microsoft"] * 2
            assert [list(n.output)[1:] for n in attention] == [["present.0.key", "present.0.value"], ["present.1.key", "present.1.value"]]
            assert {o.domain: o.version for o in m.opset_import}["com.microsoft"] == 1
    plain, fused = counts[False], counts[True]
    assert fused["Softmax"] == 0 and fused["Concat"] == plain["Concat"] - 4 and fused["Transpose"] == plain["Transpose"] - 6
    assert fused["MatMul"] == plain["MatMul"] - 4  # scores and weighted sum are inside the fused node
    # Model weights are untouched by the flag: the next plain export is the same graph as before.
    assert all(not block.attn.fused_export for block in model.transformer.h)


def test_a_failed_export_leaves_the_earlier_model_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "model"
    args = ["--random", "tiny", "--seed", "2", "--out", str(out), "--no-golden", "--opset", "14"]
    assert export_onnx.main(args) == 0
    (out / "weights.safetensors").write_bytes(b"kept")  # a file the export does not write
    before = {name: (out / name).read_bytes() for name in ("model.onnx", "model.onnx.data", "imagine-model.json")}

    real_export = export_onnx.export_onnx

    def export_then_fail(model, path, *rest, **kwargs):
        real_export(model, path, *rest, **kwargs)  # a complete new model.onnx, staged…
        raise RuntimeError("killed while writing the metadata")  # …then the export dies

    monkeypatch.setattr(export_onnx, "export_onnx", export_then_fail)
    with pytest.raises(RuntimeError, match="killed"):
        export_onnx.main(["--random", "tiny", "--seed", "3", "--out", str(out), "--no-golden", "--opset", "14"])
    assert {name: (out / name).read_bytes() for name in before} == before
    assert (out / "weights.safetensors").read_bytes() == b"kept"
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no staging folder left behind

    monkeypatch.setattr(export_onnx, "export_onnx", real_export)
    assert export_onnx.main(["--random", "tiny", "--seed", "3", "--out", str(out), "--no-golden", "--opset", "14"]) == 0
    assert (out / "model.onnx.data").read_bytes() != before["model.onnx.data"]
    assert (out / "weights.safetensors").read_bytes() == b"kept"
    assert sorted(os.listdir(tmp_path)) == ["model"]
