"""Measure the README's table of supported architectures: for each Hugging Face family, a tiny
random model built by `transformers` (nothing is downloaded) is imported, compared with
`transformers` on a padded batch, exported and read back by `transformers`, and every command is
run on its folder. Prints the table as Markdown.

    python scripts/architecture_table.py            # all families (t5-encoder: T5EncoderModel), about a minute
    python scripts/architecture_table.py gpt2 bart  # some

A cell is "✓" when the command exited 0, else its exit status and message (a random model may
print nothing: a translation that ends at once). Parity is the largest absolute difference of
the logits, fp32, over the real tokens of a right-padded batch of three texts; "export" is the same against the class `transformers` loads
from the exported folder, and "round trip" whether import -> export -> import gives every tensor
bit for bit.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from glassformer.cli import main  # noqa: E402
from glassformer.interop import export_hf, load_hf_folder  # noqa: E402

WORDS = "the cat sat on mat a dog ran in park hello world again and sees bird".split()
TEXTS = ["the cat sat on the mat", "a dog ran in the park again", "hello world"]
LLAMA = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=64, bos_token_id=1, eos_token_id=2, initializer_range=0.2)
SEQ2SEQ = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
               encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64, forced_eos_token_id=None,
               init_std=0.2)
ENCODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
               max_position_embeddings=66, initializer_range=0.2)
# T5 v1.0 (tied head, scaled): transformers 5 builds no untied T5 from a config alone.
T5 = dict(d_model=32, d_kv=8, d_ff=40, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
          relative_attention_max_distance=20, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
T5_SPECIALS = (["<pad>", "</s>", "<unk>"], "$A </s>")
BERT_SPECIALS = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[CLS] $A [SEP]")
ROBERTA_SPECIALS = (["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<s> $A </s>")
# family -> (config class, model class, settings, (specials, template), run kind)
FAMILIES = {
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(n_layer=2, n_embd=32, n_head=4, n_positions=64, bos_token_id=0,
                                                   eos_token_id=0, initializer_range=0.2),
             (["<|endoftext|>"], None), "lm"),
    "llama": ("LlamaConfig", "LlamaForCausalLM", LLAMA, (["<unk>", "<s>", "</s>"], "<s> $A"), "lm"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {**LLAMA, "tie_word_embeddings": True},
              (["<unk>", "<s>", "</s>"], "<s> $A"), "lm"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {**LLAMA, "head_dim": 16}, (["<unk>", "<s>", "</s>"], "<s> $A"), "lm"),
    "mistral": ("MistralConfig", "MistralForCausalLM", {**LLAMA, "sliding_window": 4},
                (["<unk>", "<s>", "</s>"], "<s> $A"), "lm"),
    "bert": ("BertConfig", "BertForMaskedLM", {**ENCODER, "pad_token_id": 0}, BERT_SPECIALS, "mlm"),
    "roberta": ("RobertaConfig", "RobertaForMaskedLM", {**ENCODER, "pad_token_id": 1, "type_vocab_size": 1},
                ROBERTA_SPECIALS, "mlm"),
    "distilbert": ("DistilBertConfig", "DistilBertForMaskedLM",
                   dict(dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64, pad_token_id=0,
                        initializer_range=0.2), BERT_SPECIALS, "mlm"),
    "bart": ("BartConfig", "BartForConditionalGeneration",
             {**SEQ2SEQ, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 2},
             ROBERTA_SPECIALS, "seq2seq"),
    "marian": ("MarianConfig", "MarianMTModel",
               {**SEQ2SEQ, "pad_token_id": 2, "eos_token_id": 0, "decoder_start_token_id": 2, "scale_embedding": True,
                "activation_function": "swish"}, (["</s>", "<unk>", "<pad>"], "$A </s>"), "seq2seq"),
    "blenderbot": ("BlenderbotConfig", "BlenderbotForConditionalGeneration",
                   {**SEQ2SEQ, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1,
                    "scale_embedding": True}, (["<pad>", "<s>", "</s>", "<unk>", "<mask>"], "$A </s>"), "seq2seq"),
    "t5": ("T5Config", "T5ForConditionalGeneration", T5, T5_SPECIALS, "seq2seq"),
    "t5-encoder": ("T5Config", "T5EncoderModel", {**T5, "feed_forward_proj": "gated-gelu"}, T5_SPECIALS, "encode"),
}
COMMANDS = ("trace", "explain --model", "attention", "report", "use", "embed", "train --init")
USE = {"lm": "generate", "seq2seq": "translate", "mlm": "fill-mask", "encode": "embed"}


def make_folder(root: Path, family: str):
    import transformers

    config_name, model_name, settings, (specials, template), _ = FAMILIES[family]
    folder = root / family
    folder.mkdir()
    unk = next((t for t in specials if "unk" in t.lower()), specials[-1])
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(specials + WORDS)}, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(specials)
    if template:
        used = [t for t in specials if t in template.split()]
        tok.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(t, specials.index(t)) for t in used])
    tok.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    extra = {"decoder_vocab_size": len(specials) + len(WORDS)} if family == "marian" else {}
    config = getattr(transformers, config_name)(**settings, vocab_size=len(specials) + len(WORDS), **extra)
    model = getattr(transformers, model_name)(config).eval()
    with contextlib.redirect_stderr(io.StringIO()):
        model.save_pretrained(folder)
    return folder, model, transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))


def batch(tok, pad: int):
    rows = [tok(t)["input_ids"] for t in TEXTS]
    width = max(map(len, rows))
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


@torch.no_grad()
def logits_of(model, kind: str, ids, mask, hf: bool, start: int = 0):
    """The logits of a right-padded batch, from a transformers model (hf) or ours."""
    target = torch.tensor([[start, 5, 6, 7]] * ids.size(0))
    if hf:
        extra = {"decoder_input_ids": target} if kind == "seq2seq" else {}
        out = model(input_ids=ids, attention_mask=mask, **extra)
        return out.last_hidden_state if kind == "encode" else out.logits  # a bare encoder: its hidden states
    if kind == "seq2seq":
        return model(ids, target, mask.bool()[:, None, None, :])
    return model(ids, mask.bool()[:, None, None, :])


def gap(a, b, kind: str, mask) -> float:
    difference = (a - b).abs()
    return float(difference.max() if kind == "seq2seq" else difference[mask.bool()].max())


def command(args: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(args)
        except SystemExit as exit:
            status = exit.code
        except Exception as error:  # a traceback is a finding, not a crash of this script
            return f"✗ {type(error).__name__}: {error}"[:80]
    if status == 0:
        return "✓" if out.getvalue().strip() else "✓ (printed nothing)"
    return f"exit {status}: {err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ''}"[:80]


def measure(root: Path, family: str) -> dict:
    import transformers

    kind = FAMILIES[family][4]
    folder, hf, tok = make_folder(root, family)
    run = load_hf_folder(folder)
    pad = run.config.pad_id
    ids, mask = batch(tok, pad)
    start = run.meta.get("framing", {}).get("decoder_start", 0) if kind == "seq2seq" else 0
    ours = logits_of(run.model, kind, ids, mask, hf=False, start=start)
    row = {"family": family, "loads as": ", ".join(run.meta["hf"]["architectures"]), "kind": run.kind,
           "import": gap(ours, logits_of(hf, kind, ids, mask, hf=True, start=start), kind, mask)}
    out = root / f"{family}-export"
    export_hf(run, out)
    again = getattr(transformers, FAMILIES[family][1]).from_pretrained(out).eval()
    row["export"] = gap(ours, logits_of(again, kind, ids, mask, hf=True, start=start), kind, mask)
    back = load_hf_folder(out).model.state_dict()
    first = run.model.state_dict()
    row["round trip"] = first.keys() == back.keys() and all(torch.equal(first[k], back[k]) for k in first)
    text, f = "the cat sat on the mat", str(folder)
    data = root / f"{family}.txt"
    line = f"{text}\t{text}" if kind == "seq2seq" else text
    data.write_text("\n".join([line] * 40) + "\n")
    use = {"lm": ["generate", "--model", f, "--prompt", "the cat", "--max-new-tokens", "4"],
           "seq2seq": ["translate", "--model", f, "--max-new-tokens", "4", text],
           "mlm": ["fill-mask", "--model", f, "the cat <mask> on the mat"],
           "encode": ["embed", "--model", f, "--pooling", "mean", text]}[kind]
    runs = {
        "trace": ["trace", "--model", f, text],
        "explain --model": ["explain", "--model", f, text],
        "attention": ["attention", "--model", f, "--max-steps", "3", text],
        "report": ["report", "--model", f, "--out", str(root / f"{family}.html"), "--max-steps", "3", text],
        "use": use,
        "embed": ["embed", "--model", f, text, "hello world"],
        "train --init": ["train", "--data", str(data), "--kind", kind, "--init", f, "--out", str(root / f"{family}-ft"),
                         "--steps", "2", "--eval-every", "2", "--warmup", "1", "--no-progress", "--examples", "0"],
    }
    if kind == "encode":  # no training kind reads a bare encoder without a head
        runs.pop("train --init")
    row.update({name: command(args) for name, args in runs.items()})
    row.setdefault("train --init", "not run (no head to train)")
    row["use"] = f"{USE[kind]} {row['use']}"
    return row


def markdown(rows: list[dict]) -> str:
    header = ["family", "loads as (tested)", "import: max abs logit diff", "export: max abs logit diff",
              "import→export→import", *COMMANDS[:4], "generate / translate / fill-mask", "embed", "train --init"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["family"], f"{r['loads as']} ({r['kind']})", f"{r['import']:.1e}", f"{r['export']:.1e}",
                 "exact" if r["round trip"] else "differs", *(r[c] for c in COMMANDS)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="*", metavar="FAMILY", help=f"some of: {', '.join(FAMILIES)} (default: all)")
    args = parser.parse_args()
    unknown = [f for f in args.families if f not in FAMILIES]
    if unknown:
        parser.error(f"unknown famil{'ies' if len(unknown) > 1 else 'y'}: {', '.join(unknown)}")
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(Path(tmp), family) for family in args.families or list(FAMILIES)]
    print(markdown(rows))


if __name__ == "__main__":
    cli()
