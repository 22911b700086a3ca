"""Blenderbot folders written by transformers import with the same logits and round-trip exactly."""

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors

transformers = pytest.importorskip("transformers")

from glassformer.framing import Framing, source_ids  # noqa: E402
from glassformer.interop import export_hf, load_hf_folder  # noqa: E402

transformers.logging.set_verbosity_error()
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
WORDS = "the cat sat on mat a dog ran in park hello world again and".split()


def test_logits_match_and_round_trip_exactly(tmp_path):
    torch.manual_seed(0)
    config = transformers.BlenderbotConfig(
        vocab_size=len(SPECIALS) + len(WORDS), d_model=32, encoder_layers=2, decoder_layers=3,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37,
        max_position_embeddings=40, scale_embedding=True, init_std=0.2, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=1, forced_eos_token_id=None,
    )
    hf = transformers.BlenderbotForConditionalGeneration(config).eval()
    with torch.no_grad():
        hf.final_logits_bias.normal_(std=0.1)
        for name, p in hf.named_parameters():
            if "layer_norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    hf.save_pretrained(tmp_path / "bb")
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(SPECIALS + WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(SPECIALS)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    tok.save(str(tmp_path / "bb" / "tokenizer.json"))

    run = load_hf_folder(tmp_path / "bb")
    c = run.config
    assert (c.norm, c.use_final_norm, c.embedding_norm, c.positions, c.scale_embeddings) == ("pre", True, False, "learned", True)
    assert source_ids(run.tokenizer, "the cat sat", Framing.from_meta(run.meta)) == tok.encode("the cat sat").ids
    src = torch.randint(5, 19, (3, 8))
    src_mask = torch.ones(3, 8, dtype=torch.long)
    src_mask[1, 5:] = 0
    src = src.masked_fill(src_mask == 0, 0)
    tgt = torch.randint(5, 19, (3, 6))
    tgt[:, 0] = 1
    with torch.no_grad():
        expected = hf(src, attention_mask=src_mask, decoder_input_ids=tgt).logits
        ours = run.model(src, tgt, src_mask.bool()[:, None, None, :])
    assert (ours - expected).abs().max() < 1e-4

    out = export_hf(run, tmp_path / "exported")
    original, written = load_file(str(tmp_path / "bb" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert written.keys() == original.keys() and all(torch.equal(written[k], original[k]) for k in original)
    reread = load_hf_folder(out)
    theirs, back = run.model.state_dict(), reread.model.state_dict()
    assert theirs.keys() == back.keys() and all(torch.equal(theirs[k], back[k]) for k in theirs)
