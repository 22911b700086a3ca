"""Sharded checkpoints with an index (read and written, shards kept inside the folder) and bf16
checkpoints kept or cast (--dtype)."""

import json

import pytest
import torch
from safetensors.torch import load_file

transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from glassformer.cli import main  # noqa: E402
from glassformer.errors import UserError  # noqa: E402
from glassformer.interop import export_hf, load_hf_folder  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402

transformers.logging.set_verbosity_error()


def save_tokenizer(folder):
    words = ["<|endoftext|>", *"the cat sat on mat a dog ran".split()]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(folder / "tokenizer.json"))


def save_gpt2(folder, dtype=torch.float32, **save):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64, vocab_size=90,
                                       initializer_range=0.2)).eval().to(dtype)
    model.save_pretrained(folder, **save)
    save_tokenizer(folder)
    return model


def all_tensors(folder):
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return load_file(str(folder / "model.safetensors"))
    files = set(json.loads(index.read_text())["weight_map"].values())
    return {k: v for f in files for k, v in load_file(str(folder / f)).items()}


def test_sharded_folder_reads_and_exports_sharded(tmp_path):
    hf = save_gpt2(tmp_path / "sharded", max_shard_size="20KB")
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1
    run = load_hf_folder(tmp_path / "sharded")
    ids = torch.randint(0, 90, (2, 8))
    with torch.no_grad():
        assert (run.model(ids) - hf(ids).logits).abs().max() < 1e-4
    out = export_hf(run, tmp_path / "out", max_shard_size=20_000)
    shards = sorted(p.name for p in out.glob("model-*.safetensors"))
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(shards) > 1 and sorted(set(index["weight_map"].values())) == shards and not (out / "model.safetensors").exists()
    assert all(p.stat().st_size <= 20_000 + 1_000 for p in out.glob("model-*.safetensors"))  # + the file header
    original, written = all_tensors(tmp_path / "sharded"), all_tensors(out)
    assert written.keys() == original.keys() and all(torch.equal(written[k], original[k]) for k in original)
    again = GPT2LMHeadModel.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.equal(again(ids).logits, hf(ids).logits)


@pytest.mark.parametrize("shard", ["../elsewhere.safetensors", "/etc/passwd"])
def test_an_index_naming_a_shard_outside_the_folder_is_refused(tmp_path, shard):
    save_gpt2(tmp_path / "sharded", max_shard_size="20KB")
    index = tmp_path / "sharded" / "model.safetensors.index.json"
    document = json.loads(index.read_text())
    first = next(iter(document["weight_map"]))
    document["weight_map"][first] = shard
    index.write_text(json.dumps(document))
    with pytest.raises(UserError, match="names a shard outside the folder"):
        load_hf_folder(tmp_path / "sharded")


def test_bf16_checkpoint_is_kept_or_cast(tmp_path, capsys):
    hf = save_gpt2(tmp_path / "bf16", dtype=torch.bfloat16)
    original = load_file(str(tmp_path / "bf16" / "model.safetensors"))
    assert {t.dtype for t in original.values()} == {torch.bfloat16}
    kept = load_hf_folder(tmp_path / "bf16", dtype="keep")
    assert {p.dtype for p in kept.model.parameters()} == {torch.bfloat16}
    cast = load_hf_folder(tmp_path / "bf16")  # float32 by default: every bf16 value is exact in fp32
    assert {p.dtype for p in cast.model.parameters()} == {torch.float32}
    ids = torch.randint(0, 90, (2, 8))
    with torch.no_grad():
        assert (cast.model(ids) - hf.float()(ids).logits).abs().max() < 1e-4
    # keep writes bf16 back bit for bit; --dtype float32 casts
    out = export_hf(kept, tmp_path / "kept")
    written = load_file(str(out / "model.safetensors"))
    assert written.keys() == original.keys() and all(torch.equal(written[k], original[k]) for k in original)
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert main(["export", "--model", str(tmp_path / "bf16"), "--out", str(tmp_path / "fp32"), "--dtype", "float32"]) == 0
    upcast = load_file(str(tmp_path / "fp32" / "model.safetensors"))
    assert all(upcast[k].dtype == torch.float32 and torch.equal(upcast[k], original[k].float()) for k in original)
    assert main(["export", "--model", str(tmp_path / "fp32"), "--out", str(tmp_path / "again"), "--dtype", "bfloat16"]) == 0
    again = load_file(str(tmp_path / "again" / "model.safetensors"))
    assert all(torch.equal(again[k], original[k]) for k in original)
    capsys.readouterr()
