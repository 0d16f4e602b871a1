"""The stand-in Stable Diffusion components (sd_models.py), the CLIP BPE tokenizer (sd_tokenizer.py)
and make_tiny_sd.py's exports: shapes, the diffusers ONNX contract (names, dtypes, dynamic axes),
and the FLOP count checked against PyTorch's profiler."""

import json
import os

import numpy as np
import onnx
import pytest
import torch
from torch.profiler import profile

import make_tiny_sd
import sd_tokenizer
from sd_models import MAX_TEXT_LENGTH, build_models, count_unet_flops, parameter_count, preset


@pytest.fixture(scope="module")
def tiny():
    merges = make_tiny_sd.learn_merges("tiny")
    p = preset("tiny", len(sd_tokenizer.build_vocab(merges)))
    return p, build_models(p, 0)


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    merges = make_tiny_sd.learn_merges("tiny")
    sd_tokenizer.write_tokenizer_dir(str(root / "sd1"), merges, sd_tokenizer.EOS)
    sd_tokenizer.write_tokenizer_dir(str(root / "sd2"), merges, "!")
    return root


def _decode(tok, ids):
    inverse = {v: k for k, v in tok.vocab.items()}
    byte_of = {c: b for b, c in sd_tokenizer.bytes_to_unicode().items()}
    text = "".join(inverse[i] for i in ids).replace(sd_tokenizer.END_OF_WORD, " ")
    return bytes(byte_of[c] for c in text.replace(" ", "")).decode(), text.split()


def test_tokenizer_round_trips_and_uses_merges(tokenizer_dirs):
    tok = sd_tokenizer.ClipTokenizer(str(tokenizer_dirs / "sd1"))
    ids = tok.tokens("A Lighthouse on a cliff, 42 quokkas!")
    words = ["a", "lighthouse", "on", "a", "cliff", ",", "4", "2", "quokkas", "!"]
    joined, pieces = _decode(tok, ids)
    assert joined == "".join(words)
    # Every word ends with a </w> token: the decoded pieces are exactly the words.
    assert pieces == words
    # Words from the merge corpus become few tokens; unseen ones fall back to smaller pieces.
    assert len(tok.tokens("lighthouse")) <= 2 and len(tok.tokens("quokkas")) >= 3
    with open(tokenizer_dirs / "sd1" / "merges.txt") as f:
        assert f.readline() == "#version: 0.2\n"


def test_tokenizer_pads_with_the_configured_token_and_truncates(tokenizer_dirs):
    sd1 = sd_tokenizer.ClipTokenizer(str(tokenizer_dirs / "sd1"))
    sd2 = sd_tokenizer.ClipTokenizer(str(tokenizer_dirs / "sd2"))
    bos, eos = sd1.vocab[sd_tokenizer.BOS], sd1.vocab[sd_tokenizer.EOS]
    assert eos == max(sd1.vocab.values())  # CLIP's pooling picks argmax(input_ids): the end token
    assert sd1("") == [bos, eos] + [eos] * 75
    assert sd2("") == [bos, eos] + [0] * 75 and sd2.vocab["!"] == 0
    long = sd1(" ".join(["lighthouse"] * 200))
    assert len(long) == MAX_TEXT_LENGTH and long[0] == bos and long[-1] == eos
    assert sd1("  MANY   spaces ") == sd1("many spaces")


def test_bpe_training_is_deterministic():
    corpus = ["low lower lowest", "newer wider", "low low"]
    assert sd_tokenizer.train_bpe(corpus, 10) == sd_tokenizer.train_bpe(list(corpus), 10)
    assert sd_tokenizer.train_bpe(corpus, 10)[0] == ("l", "o")


def test_component_shapes_and_timestep_forms(tiny):
    p, (text, unet, vae) = tiny
    ids = torch.randint(0, p.text.vocab_size - 2, (2, MAX_TEXT_LENGTH))
    ids[:, 5] = p.text.vocab_size - 1  # end of text
    with torch.no_grad():
        hidden, pooled = text(ids.to(torch.int32))
        assert hidden.shape == (2, 77, 32) and pooled.shape == (2, 32)
        torch.testing.assert_close(pooled, hidden[:, 5])
        torch.testing.assert_close(text(ids)[0], hidden)  # int32 and int64 ids agree
        sample = torch.randn(2, 4, 6, 4)  # 48×32 pixels: non-square works
        out = unet(sample, torch.tensor([500]), hidden)
        assert out.shape == sample.shape
        torch.testing.assert_close(unet(sample, torch.tensor([500, 500]), hidden), out)
        torch.testing.assert_close(unet(sample, torch.tensor([500.0]), hidden), out)
        assert not torch.allclose(unet(sample, torch.tensor([499]), hidden), out)  # the timestep matters
        assert vae(sample).shape == (2, 3, 48, 32)


def test_weights_depend_only_on_the_seed(tiny):
    p, (text, unet, vae) = tiny
    again = build_models(p, 0)
    for a, b in zip((text, unet, vae), again):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), name
    assert not torch.equal(build_models(p, 1)[1].conv_in.weight, unet.conv_in.weight)


@pytest.mark.parametrize("name,latent", [("tiny", 8), ("bench", 8)])
def test_flop_count_matches_the_profiler(name, latent):
    p = preset(name, 714)
    unet = build_models(p, 0)[1]
    counted = count_unet_flops(unet, latent, latent)
    with torch.no_grad(), profile(with_flops=True) as prof:
        unet(torch.zeros(1, 4, latent, latent), torch.tensor([999]), torch.zeros(1, 77, p.unet.cross_attention_dim))
    matmul_like = ("aten::conv2d", "aten::addmm", "aten::mm", "aten::bmm", "aten::matmul")
    profiled = sum(e.flops for e in prof.key_averages() if e.key in matmul_like)
    assert counted == profiled


def test_bench_preset_is_realistic_size():
    p = preset("bench", 714)
    text, unet, vae = build_models(p, 0)
    assert 20e6 <= parameter_count(unet) <= 100e6
    ops = {type(m).__name__ for m in unet.modules()}
    assert {"Conv2d", "GroupNorm", "Attention", "SpatialTransformer"} <= ops
    # SD 2.x's attention: heads 64 wide, 320 channels (4096 tokens at 512×512) at the top level.
    widths = {m.to_q.out_features // m.heads for m in unet.modules() if type(m).__name__ == "Attention"}
    assert widths == {64} and p.unet.block_out_channels[0] == 320


def test_flops_cli_prints_json(capsys):
    make_tiny_sd.main(["--preset", "tiny", "--flops", "--flops-size", "64"])
    report = json.loads(capsys.readouterr().out)
    assert report["latent_size"] == 8 and report["unet_flops"] > 0 and report["unet_parameters"] > 0


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd")
    make_tiny_sd.write_model_dir(str(root / "a"), family="sd1")
    make_tiny_sd.write_model_dir(str(root / "b"), family="sd2", dtype="fp16", timestep_dtype="float32",
                                 input_ids_dtype="int64", scheduler="turbo", prediction="v_prediction", external_data="weights.pb")
    return root


def _io(path):
    m = onnx.load(path)
    onnx.checker.check_model(m)

    def desc(v):
        t = v.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return onnx.TensorProto.DataType.Name(t.elem_type), dims

    return {v.name: desc(v) for v in m.graph.input}, {v.name: desc(v) for v in m.graph.output}


def test_exports_follow_the_diffusers_onnx_contract(exported):
    for variant, float_type, ids_type, t_type in (("a", "FLOAT", "INT32", "INT64"), ("b", "FLOAT16", "INT64", "FLOAT16")):
        d = exported / variant
        ins, outs = _io(str(d / "text_encoder" / "model.onnx"))
        assert list(ins) == ["input_ids"] and ins["input_ids"] == (ids_type, ["batch", 77])
        assert outs == {"last_hidden_state": (float_type, ["batch", 77, 32]), "pooler_output": (float_type, ["batch", 32])}
        ins, outs = _io(str(d / "unet" / "model.onnx"))
        assert list(ins) == ["sample", "timestep", "encoder_hidden_states"]
        assert ins["sample"] == (float_type, ["batch", 4, "height", "width"])
        assert ins["timestep"] == (t_type, ["timestep_batch"])
        assert ins["encoder_hidden_states"] == (float_type, ["batch", "sequence", 32])
        assert outs == {"out_sample": (float_type, ["batch", 4, "height", "width"])}
        ins, outs = _io(str(d / "vae_decoder" / "model.onnx"))
        assert ins == {"latent_sample": (float_type, ["batch", 4, "height", "width"])}
        assert outs == {"sample": (float_type, ["batch", 3, "image_height", "image_width"])}
    assert sorted(os.listdir(exported / "b" / "unet")) == ["config.json", "model.onnx", "weights.pb"]
    assert os.path.getsize(exported / "b" / "unet" / "weights.pb") > 50_000  # the weights live outside the graph


def test_model_directory_files(exported):
    d = exported / "b"
    with open(d / "model_index.json") as f:
        index = json.load(f)
    assert index["_class_name"] == "OnnxStableDiffusionPipeline" and index["scheduler"] == ["diffusers", "EulerDiscreteScheduler"]
    with open(d / "scheduler" / "scheduler_config.json") as f:
        sched = json.load(f)
    assert sched["timestep_spacing"] == "trailing" and sched["prediction_type"] == "v_prediction"
    with open(d / "vae_decoder" / "config.json") as f:
        assert json.load(f)["scaling_factor"] == 0.18215
    with open(d / "tokenizer" / "tokenizer_config.json") as f:
        config = json.load(f)
    assert config["pad_token"] == "!" and config["model_max_length"] == 77


def test_fp16_export_stores_half_weights(exported):
    m = onnx.load(str(exported / "b" / "text_encoder" / "model.onnx"))
    types = [init.data_type for init in m.graph.initializer]
    assert types.count(onnx.TensorProto.FLOAT16) > 10
    a = onnx.load(str(exported / "a" / "text_encoder" / "model.onnx"))
    assert sum(np.prod(i.dims) for i in a.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16) == 0


@pytest.mark.parametrize("kwargs,message", [
    ({"dtype": "bf16"}, "--dtype"),
    ({"timestep_dtype": "int32"}, "--timestep-dtype"),
    ({"input_ids_dtype": "float32"}, "--input-ids-dtype"),
    ({"prediction": "flow"}, "--prediction"),
    ({"scheduler": "pndm"}, "unknown scheduler"),
    ({"family": "sdxl"}, "unknown family"),
])
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_tiny_sd.write_model_dir(str(tmp_path / "x"), **kwargs)
    assert not (tmp_path / "x").exists()


def test_tokenizer_json_matches_vocab_and_merges(tmp_path):
    merges = make_tiny_sd.learn_merges("tiny")
    sd_tokenizer.write_tokenizer_dir(str(tmp_path), merges, "!", tokenizer_json=True)
    with open(tmp_path / "tokenizer.json", encoding="utf-8") as f:
        fast = json.load(f)
    with open(tmp_path / "vocab.json", encoding="utf-8") as f:
        assert fast["model"]["vocab"] == json.load(f)
    with open(tmp_path / "merges.txt", encoding="utf-8") as f:
        assert fast["model"]["merges"] == f.read().splitlines()[1:]
    assert fast["model"]["end_of_word_suffix"] == "</w>" and fast["model"]["unk_token"] == sd_tokenizer.EOS
    assert [t["content"] for t in fast["added_tokens"]] == [sd_tokenizer.BOS, sd_tokenizer.EOS]
    assert fast["post_processor"]["cls"] == [sd_tokenizer.BOS, 712] and fast["post_processor"]["sep"] == [sd_tokenizer.EOS, 713]
