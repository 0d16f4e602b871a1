"""Weight-only quantization in export_onnx.py (--quant int8|int4): MatMulNBits' block layout and
the graph rewrite. Runtime speed and quality go through onnxruntime-node (test/prompt/quantized.test.ts,
bench/prompt.ts --quant, bench/prompt-quality.ts): Python's onnxruntime is not installed here."""

import collections
import json
import os

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import export_onnx
from gpt2 import GPT2LMHeadModel, preset


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("k", [96, 64, 40])  # 3 blocks (odd: packed zero points get a pad nibble), 2, and a ragged last block
def test_block_codes_round_trip_within_half_a_step(bits, k):
    rng = np.random.default_rng(bits * 100 + k)
    n, block = 7, 32
    weight = rng.normal(0, 0.02, size=(n, k)).astype(np.float32)
    weight[0, :] = 0.0  # an all-zero row must come back exactly
    weight[1, :5] = 0.5  # an outlier widens one block's range only
    codes, scales, zeros = export_onnx.quantize_blocks(weight, bits, block)
    k_blocks = -(-k // block)
    assert codes.dtype == np.uint8 and codes.shape == (n, k_blocks, block * bits // 8)
    assert scales.dtype == np.float32 and scales.shape == (n * k_blocks,)
    assert zeros.dtype == np.uint8 and zeros.shape == (n * -(-k_blocks * bits // 8),)
    back = export_onnx.dequantize_blocks(codes, scales, zeros, bits, k)
    assert back.shape == weight.shape
    assert np.array_equal(back[0], weight[0])
    step = scales.reshape(n, k_blocks).repeat(block, axis=1)[:, :k]
    assert np.all(np.abs(back - weight) <= step / 2 + 1e-7)
    # 4-bit codes are packed low nibble first: element 0 of a block is the low half of byte 0.
    if bits == 4:
        first = (codes[2, 0, 0] & 0x0F).astype(np.float32)
        zero = float(zeros[2 * (-(-k_blocks // 2))] & 0x0F)
        assert np.isclose((first - zero) * scales[2 * k_blocks], back[2, 0])


def weight_matmuls(model):
    inits = {t.name for t in model.graph.initializer}
    transposed = {n.output[0] for n in model.graph.node if n.op_type == "Transpose" and n.input[0] in inits}
    return [n for n in model.graph.node if n.op_type == "MatMul" and (n.input[1] in inits or n.input[1] in transposed)]


@pytest.mark.parametrize("quant", ["int8", "int4"])
def test_quantized_graph_replaces_every_dense_matmul(tmp_path, quant):
    torch.manual_seed(3)
    model = GPT2LMHeadModel(preset("tiny"))
    path = str(tmp_path / "model.onnx")
    export_onnx.export_onnx(model, path)
    fp32 = onnx.load(path)
    dense = len(weight_matmuls(fp32))
    assert dense == 4 * 2 + 1  # c_attn, c_proj, c_fc, mlp c_proj per layer + lm_head

    counts = export_onnx.write_quantized(path, path, quant)
    q = onnx.load(path)
    onnx.checker.check_model(q)
    assert counts["quantized"] == dense and weight_matmuls(q) == []
    nbits = [n for n in q.graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) == dense and all(n.domain == "com.microsoft" for n in nbits)
    attrs = [{a.name: a.i for a in n.attribute} for n in nbits]
    head = [a for n, a in zip(nbits, attrs) if "logits" in n.output]
    assert len(head) == 1 and head[0]["bits"] == 8 and (head[0]["N"], head[0]["K"]) == (50257, 32)
    assert {a["bits"] for n, a in zip(nbits, attrs) if "logits" not in n.output} == {export_onnx.QUANT_BITS[quant]}
    # The tiny model's rows are 32 wide (128 for the MLP's c_proj): blocks of 256 shrink to fit.
    assert export_onnx.QUANT_BLOCK_SIZE == 256
    assert {(a["K"], a["block_size"]) for a in attrs} == {(32, 32), (128, 128)}
    assert all(a["accuracy_level"] == export_onnx.QUANT_ACCURACY_LEVEL for a in attrs)
    # The float block weights are gone, and so is the float32 token embedding (its Gather reads
    # int8 rows) with lm_head's Transpose of it; the position embedding stays float32.
    floats = {t.name for t in q.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2}
    assert {f for f in floats if not f.endswith(".scales")} == {"model.transformer.wpe.weight"}
    readers = collections.Counter(n.op_type for n in q.graph.node if "input_ids" in n.input)
    assert readers["GatherBlockQuantized"] == 1 and readers["Gather"] == 0
    assert collections.Counter(n.op_type for n in q.graph.node)["Transpose"] == collections.Counter(
        n.op_type for n in fp32.graph.node)["Transpose"] - 1
    assert any(o.domain == "com.microsoft" for o in q.opset_import)

    # Each MatMulNBits holds the weight it replaced, to within half a quantization step.
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    source = {t.name: numpy_helper.to_array(t) for t in fp32.graph.initializer}
    for node, a in zip(nbits, attrs):
        if "logits" in node.output:
            want = source["model.transformer.wte.weight"]
        else:
            want = source[node.input[1].rsplit("_q", 1)[0]].T
        codes, scales, zeros = (inits[name] for name in node.input[1:4])
        got = export_onnx.dequantize_blocks(codes, scales, zeros, a["bits"], a["K"])
        assert np.abs(got - want).max() <= scales.max() / 2 + 1e-7


def test_from_onnx_converts_a_model_directory_without_touching_it(tmp_path):
    src = tmp_path / "fp32"
    assert export_onnx.main(["--random", "tiny", "--seed", "4", "--out", str(src), "--no-golden"]) == 0
    before = [(src / name).read_bytes() for name in ("model.onnx", "model.onnx.data")]
    out = tmp_path / "int4"
    assert export_onnx.main(["--from-onnx", str(src), "--quant", "int4", "--out", str(out)]) == 0
    assert [(src / name).read_bytes() for name in ("model.onnx", "model.onnx.data")] == before
    assert sorted(os.listdir(out)) == ["imagine-model.json", "model.onnx", "model.onnx.data"]
    meta = json.loads((out / "imagine-model.json").read_text())
    q = meta["provenance"]["quantization"]
    assert (q["weights"], q["op"], q["blockSize"], q["lmHeadBits"], q["matmuls"]) == ("int4", "com.microsoft.MatMulNBits", 256, 8, 9)
    assert (q["zeroPoints"], q["accuracyLevel"], q["embeddingBits"]) == (True, 4, 8)
    assert meta["architecture"]["nEmbd"] == 32 and meta["onnx"] == "model.onnx"

    with pytest.raises(SystemExit, match="needs --quant"):
        export_onnx.main(["--from-onnx", str(src), "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="must differ"):
        export_onnx.main(["--from-onnx", str(src), "--quant", "int8", "--out", str(src)])
    assert export_onnx.main(["--from-onnx", str(tmp_path / "missing"), "--quant", "int8", "--out", str(tmp_path / "y")]) == 2


def test_quantized_export_skips_the_float32_golden_fixture(tmp_path):
    assert export_onnx.main(["--random", "tiny", "--seed", "2", "--out", str(tmp_path), "--quant", "int8"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["imagine-model.json", "model.onnx", "model.onnx.data"]
    meta = json.loads((tmp_path / "imagine-model.json").read_text())
    assert meta["provenance"]["quantization"]["weights"] == "int8"


def test_unmerge_inlines_the_with_past_branch_of_a_merged_decoder(tmp_path):
    # A merged decoder in optimum's layout (training/make_hf_style_fixture.py builds the test
    # fixture the same way); the TypeScript test checks the unmerged copy against PyTorch.
    import make_hf_style_fixture as hf

    torch.manual_seed(6)
    model = GPT2LMHeadModel(preset("tiny")).eval()
    merged = hf.merge(hf.export_plain(model, str(tmp_path / "plain.onnx")), 2)
    weights = {t.name for t in merged.graph.initializer}
    assert export_onnx.unmerge_onnx(merged) is True
    onnx.checker.check_model(merged)
    ops = collections.Counter(n.op_type for n in merged.graph.node)
    assert ops["If"] == 0 and ops["MatMul"] == 13  # one decoder's worth: 9 dense + 2 per layer attention
    assert "use_cache_branch" not in [i.name for i in merged.graph.input]
    assert [o.name for o in merged.graph.output][:3] == ["logits", "present.0.key", "present.0.value"]
    assert {t.name for t in merged.graph.initializer} <= weights
    assert export_onnx.unmerge_onnx(merged) is False  # already plain

    src = tmp_path / "plain-dir"
    assert export_onnx.main(["--random", "tiny", "--seed", "4", "--out", str(src), "--no-golden"]) == 0
    with pytest.raises(SystemExit, match="plain decoder: converting it needs --quant"):
        export_onnx.main(["--from-onnx", str(src), "--out", str(tmp_path / "x")])


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("k", [96, 40])
def test_symmetric_blocks_have_no_zero_points_and_round_trip(bits, k):
    rng = np.random.default_rng(bits * 10 + k)
    n, block = 5, 32
    weight = rng.normal(0, 0.02, size=(n, k)).astype(np.float32)
    weight[0, :] = 0.0
    weight[1, 3] = -0.4  # the largest magnitude maps onto code 0 exactly
    codes, scales, zeros = export_onnx.quantize_blocks(weight, bits, block, symmetric=True)
    assert zeros is None and codes.shape == (n, -(-k // block), block * bits // 8)
    back = export_onnx.dequantize_blocks(codes, scales, None, bits, k)
    assert np.array_equal(back[0], weight[0]) and np.isclose(back[1, 3], -0.4)
    # The opposite extreme sits one step short of the codes' range (2^(bits-1) - 1 steps): it
    # clips by at most one step, every other value rounds to within half a step.
    step = np.abs(scales.reshape(n, -1)).repeat(block, axis=1)[:, :k]
    assert np.all(np.abs(back - weight) <= step + 1e-7)
    assert np.mean(np.abs(back - weight) <= step / 2 + 1e-7) > 0.99


def test_quant_options_choose_block_size_symmetry_head_bits_and_a_quantized_embedding(tmp_path):
    torch.manual_seed(5)
    model = GPT2LMHeadModel(preset("tiny"))
    path = str(tmp_path / "model.onnx")
    export_onnx.export_onnx(model, path)
    wte = numpy_helper.to_array(next(t for t in onnx.load(path).graph.initializer
                                     if t.name == "model.transformer.wte.weight"))
    options = export_onnx.QuantOptions(block_size=16, head_bits=4, accuracy_level=1, symmetric=True, embedding_bits=8)
    counts = export_onnx.write_quantized(path, path, "int4", options)
    assert (counts["quantized"], counts["embeddings"]) == (9, 1)
    q = onnx.load(path)
    onnx.checker.check_model(q)
    nbits = [n for n in q.graph.node if n.op_type == "MatMulNBits"]
    assert all(len(n.input) == 3 for n in nbits)  # no zero points
    attrs = [{a.name: a.i for a in n.attribute} for n in nbits]
    assert {(a["bits"], a["block_size"], a["accuracy_level"]) for a in attrs} == {(4, 16, 1)}
    # The float32 token embedding is gone: its Gather reads int8 rows with per-block scales.
    assert "model.transformer.wte.weight" not in {t.name for t in q.graph.initializer}
    (gather,) = [n for n in q.graph.node if n.op_type == "GatherBlockQuantized"]
    assert gather.domain == "com.microsoft" and gather.input[1] == "input_ids" and len(gather.input) == 3
    g = {a.name: a.i for a in gather.attribute}
    assert (g["bits"], g["block_size"], g["gather_axis"], g["quantize_axis"]) == (8, 16, 0, 1)
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    codes, scales = inits[gather.input[0]], inits[gather.input[2]]
    assert codes.shape == (50257, 32) and scales.shape == (50257, 2)
    rows = (codes.astype(np.float32) - 128).reshape(50257, 2, 16) * scales[:, :, None]
    step = np.abs(scales).repeat(16, axis=1)  # symmetric: within one step (see above)
    assert np.all(np.abs(rows.reshape(50257, 32) - wte) <= step + 1e-7)
    # The position embedding (indexed by position_ids) stays float32.
    assert any(n.op_type == "Gather" and n.input[1] == "position_ids" for n in q.graph.node)


def test_blocks_are_no_wider_than_the_rows_they_cut():
    assert export_onnx.fitted_block_size(256, 1600) == 256  # gpt2-xl: 6 full blocks, a ragged one (12% padding)
    assert export_onnx.fitted_block_size(256, 6400) == 256
    assert export_onnx.fitted_block_size(128, 1600) == 128
    assert export_onnx.fitted_block_size(256, 32) == 32
    assert export_onnx.fitted_block_size(256, 300) == 64  # 512 and 384 would pad more than a quarter
    assert export_onnx.fitted_block_size(32, 8) == 16  # never under MatMulNBits' minimum


def test_quant_options_refuse_what_matmulnbits_cannot_run():
    with pytest.raises(SystemExit, match="16, 32, 64, 128 or 256"):
        export_onnx.QuantOptions(block_size=48)
    with pytest.raises(SystemExit, match="16, 32, 64, 128 or 256"):
        export_onnx.QuantOptions(block_size=512)  # a power of 2 that onnxruntime 1.30 refuses at load
    with pytest.raises(SystemExit, match="4 or 8"):
        export_onnx.QuantOptions(embedding_bits=2)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_gather_of_rows_with_a_ragged_last_block(bits):
    # gpt2-xl's rows are 1600 wide: 6 blocks of 256 and a ragged one. GatherBlockQuantized's output
    # is as wide as its data, so the codes keep K columns (no padding) and the scales cover ceil(K / block).
    from onnx import helper

    rng = np.random.default_rng(bits)
    table = rng.normal(0, 0.1, size=(6, 56)).astype(np.float32)  # blocks of 32 and 24
    graph = helper.make_graph([], "g", [], [])
    node = helper.make_node("Gather", ["wte", "input_ids"], ["rows"], name="/wte/Gather")
    gather = export_onnx._quantized_gather(node, table, bits, export_onnx.QuantOptions(block_size=32), graph)
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    codes, scales, zeros = (inits[name] for name in gather.input[:1] + gather.input[2:])
    assert codes.shape == (6, 56 * bits // 8) and scales.shape == (6, 2)
    assert zeros.shape == ((6, 2) if bits == 8 else (6, 1))
    attrs = {a.name: a.i for a in gather.attribute}
    assert (attrs["bits"], attrs["block_size"]) == (bits, 32) and list(gather.output) == ["rows"]
    if bits == 4:
        codes = np.stack([codes & 0x0F, codes >> 4], axis=2).reshape(6, 56)
        zeros = np.stack([zeros & 0x0F, zeros >> 4], axis=2).reshape(6, 2)
    block_of = np.arange(56) // 32
    back = (codes.astype(np.float32) - zeros[:, block_of]) * scales[:, block_of]
    assert np.all(np.abs(back - table) <= scales[:, block_of] / 2 + 1e-6)


def test_quant_flags_without_quant_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_onnx.main(["--random", "tiny", "--out", str(tmp_path / "x"), "--quant-block-size", "64"])
    assert "--quant-block-size only applies with --quant" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="16, 32, 64, 128 or 256"):
        export_onnx.main(["--random", "tiny", "--out", str(tmp_path / "y"), "--quant", "int4", "--quant-block-size", "48"])
    assert not (tmp_path / "y").exists()
