import pytest

from glassformer.cli import main


@pytest.mark.parametrize(
    "preset, count",
    [
        ("paper-base", "63,082,496"), ("gpt2-small", "124,439,808"), ("bert-base", "109,482,240"),
        # The published counts of the LLaMA family, counted on the meta device (no 32 GB allocated).
        ("llama2-7b", "6,738,415,616"), ("llama3-8b", "8,030,261,248"), ("tinyllama-1.1b", "1,100,048,384"),
        ("qwen2.5-0.5b", "494,032,768"),
        # T5 v1.0 as published (Raffel et al. 2020), with its relative position bias tables.
        ("t5-small", "60,506,624"), ("t5-base", "222,903,552"),
    ],
)
def test_describe_prints_exact_parameter_count(preset, count, capsys):
    assert main(["describe", "--preset", preset]) == 0
    out = capsys.readouterr().out
    assert f"parameters: {count}\n" in out
    assert f"preset: {preset}" in out


def test_describe_vocab_size_override(capsys):
    assert main(["describe", "--preset", "paper-base", "--vocab-size", "1000"]) == 0
    # 63,082,496 - (37,000 - 1,000) * 512
    assert "parameters: 44,650,496\n" in capsys.readouterr().out


def test_unknown_preset_is_one_line_and_exit_2(capsys):
    assert main(["describe", "--preset", "gpt5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown preset 'gpt5'" in err and "Traceback" not in err


def test_opus_mt_en_de_counts_as_transformers_does_with_its_sinusoids(capsys):
    # transformers' MarianMTModel holds the two 512 x 512 sinusoid tables as frozen weights and
    # counts them (74,410,496 published); final_logits_bias is a buffer it does not count.
    assert main(["describe", "--preset", "opus-mt-en-de"]) == 0
    out = capsys.readouterr().out
    assert "parameters: 73,886,208\n" in out
    assert "with the fixed sinusoidal position tables (+524,288), as transformers counts Marian: 74,410,496\n" in out
    assert "  vocab_size: 58101\n" in out and "  activation: silu\n" in out


def test_opus_mt_en_de_preset_exports_as_marian():
    from glassformer.config import get_preset
    from glassformer.interop.hf_export import export_family, export_problems

    config = get_preset("opus-mt-en-de")
    family = export_family(config, "seq2seq")
    assert family.MODEL_TYPE == "marian" and export_problems(family, config, "seq2seq") == []
