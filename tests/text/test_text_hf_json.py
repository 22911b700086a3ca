"""Word- and character-level vocabularies as a `tokenizers` WordLevel tokenizer: the same ids."""

import pytest

from glassformer.text import CharTokenizer, SPECIALS, WordTokenizer

CORPUS = ["The cat didn't sit; the dog's bowl was empty.", "Ölçü: 3 kg, 2½ cups — ok?", "Σίσυφος ΣΑΣ e\u0301t\u00e9 日本語"]
# Unicode that Python's re and the tokenizers' regex engine split differently (marks, \x1c-\x1f,
# superscripts, connector punctuation): the word split is the library's own, so it cannot differ.
ODD = ["x²3 a\u203fb e\u0301 \x1cq\x1d", "tab\tnew\nline  two", "", "   "]


@pytest.mark.parametrize("cls", [WordTokenizer, CharTokenizer])
@pytest.mark.parametrize("lowercase", [False, True])
def test_the_wordlevel_tokenizer_encodes_every_text_to_the_same_ids(cls, lowercase):
    tokenizer = cls.train(CORPUS, lowercase=lowercase)
    hf = tokenizer.to_hf_tokenizer()
    assert hf.get_vocab_size() == tokenizer.vocab_size
    assert [hf.token_to_id(t) for t in SPECIALS] == [0, 1, 2, 3, 4]
    for text in CORPUS + ODD + ["unseen words: zebra Q!"]:
        ids = tokenizer.encode(text)
        assert hf.encode(text, add_special_tokens=False).ids == ids
        assert hf.decode(ids, skip_special_tokens=False) == tokenizer.decode(ids)  # unknown words shown as <unk>
    assert tokenizer.encode("zebra")[0] == 3 == hf.encode("zebra").ids[0]  # <unk> (char: 'z' unseen)


def test_transformers_reads_an_exported_character_run_with_the_same_ids(tmp_path):
    transformers = pytest.importorskip("transformers")
    from glassformer.config import get_preset
    from glassformer.framing import Framing, sequence_ids
    from glassformer.interop import export_hf
    from glassformer.models import build_model
    from glassformer.run_folder import Run
    from glassformer.load import load_model

    tokenizer = CharTokenizer.train(CORPUS)
    config = get_preset("tiny-lm").replace(vocab_size=tokenizer.vocab_size)
    export_hf(Run(tmp_path, build_model(config), config, "lm", tokenizer, tokenizer), tmp_path / "hf")
    fast = transformers.PreTrainedTokenizerFast.from_pretrained(tmp_path / "hf")
    reread = load_model(tmp_path / "hf")
    for text in CORPUS:
        prompt = sequence_ids(tokenizer, text, Framing(), end=False)  # <start> text
        assert fast(text)["input_ids"] == prompt
        assert sequence_ids(reread.tokenizer, text, Framing(), end=False) == prompt
    assert (fast.pad_token_id, fast.bos_token_id, fast.eos_token_id) == (0, 1, 2)
