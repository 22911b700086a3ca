"""The commands work on imported Marian and RoBERTa folders (tiny random models built by
transformers): translate gives generate's tokens, classify/tag/answer transformers' argmax."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors

transformers = pytest.importorskip("transformers")

from glassformer.cli import main  # noqa: E402

transformers.logging.set_verbosity_error()
WORDS = "the cat sat on mat a dog ran in park hello world again and".split()
TEXT = "the cat sat on the mat"


def word_level(folder, specials, unk, post_processor):
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(specials + WORDS)}, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(specials)
    tok.post_processor = post_processor
    tok.save(str(folder / "tokenizer.json"))
    return transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    folder = tmp_path_factory.mktemp("marian")
    torch.manual_seed(0)
    config = transformers.MarianConfig(
        vocab_size=3 + len(WORDS), decoder_vocab_size=3 + len(WORDS), d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37,
        max_position_embeddings=64, activation_function="swish", scale_embedding=True, init_std=0.3,
        pad_token_id=2, eos_token_id=0, decoder_start_token_id=2, forced_eos_token_id=None,
    )
    model = transformers.MarianMTModel(config).eval()
    model.save_pretrained(folder)
    tok = word_level(folder, ["</s>", "<unk>", "<pad>"], "<unk>",
                     processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 0)]))
    return folder, model, tok


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    folders = {}
    for name, labels in (("RobertaForSequenceClassification", ["L0", "L1", "L2"]),
                         ("RobertaForTokenClassification", ["O", "B-PER", "I-PER"]),
                         ("RobertaForQuestionAnswering", ["LABEL_0", "LABEL_1"])):
        folder = tmp_path_factory.mktemp(name)
        torch.manual_seed(0)
        config = transformers.RobertaConfig(
            vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=66, type_vocab_size=1, num_labels=len(labels), initializer_range=0.3, pad_token_id=1,
            id2label=dict(enumerate(labels)),
        )
        model = getattr(transformers, name)(config).eval()
        model.save_pretrained(folder)
        tok = word_level(folder, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<unk>",
                         processors.RobertaProcessing(("</s>", 2), ("<s>", 0)))
        folders[name] = (folder, model, tok)
    return folders


def test_translate_gives_generates_tokens(marian, capsys):
    folder, model, tok = marian
    ids = tok(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = model.generate(ids, do_sample=False, num_beams=1, max_new_tokens=12)
    text = tok.decode(expected[0], skip_special_tokens=True)
    assert main(["translate", "--model", str(folder), "--max-new-tokens", "12", "--plain", TEXT]) == 0
    assert capsys.readouterr().out.strip() == text


@pytest.mark.parametrize("command", [
    ["trace", TEXT, "--target", "the dog"],
    ["attention", TEXT, "--kind", "cross", "--max-steps", "3"],
])
def test_seeing_commands_run_on_marian(marian, capsys, command):
    folder, _, _ = marian
    assert main([command[0], "--model", str(folder), *command[1:]]) == 0
    assert capsys.readouterr().out.count("\n") > 5


def test_classify_tag_answer_and_embed_on_roberta(roberta, capsys):
    folder, model, tok = roberta["RobertaForSequenceClassification"]
    with torch.no_grad():
        label = model(**tok(TEXT, return_tensors="pt")).logits.argmax(-1).item()
    assert main(["classify", "--model", str(folder), TEXT]) == 0
    assert f"L{label}" in capsys.readouterr().out

    folder, model, tok = roberta["RobertaForTokenClassification"]
    assert main(["tag", "--model", str(folder), TEXT]) == 0
    assert capsys.readouterr().out.strip()

    folder, model, tok = roberta["RobertaForQuestionAnswering"]
    assert main(["answer", "--model", str(folder), "--context", "a dog ran in the park", "where ran the dog"]) == 0
    assert capsys.readouterr().out.strip() in "a dog ran in the park"

    folder, _, _ = roberta["RobertaForSequenceClassification"]
    assert main(["embed", "--model", str(folder), TEXT, "hello world"]) == 0
    assert capsys.readouterr().out.count("\n") >= 2
