"""Training steps (forward + backward + Adam step) against PyTorch's and Hugging Face's stacks.

Encoder-decoder: glassformer vs `torch.nn.Transformer` wrapped in OUR embeddings and output
projection, with the same weights, so only the two stacks differ. Decoder-only: glassformer vs
`transformers.GPT2LMHeadModel(attn_implementation="sdpa")` with the same weights.

Dropout: 0.1 (train mode) on both sides of the encoder-decoder cases, which drop at the same
places (attention probabilities, each sublayer's output, the feed-forward hidden units, the
embeddings). 0 on both sides of the GPT-2 case: glassformer's feed-forward also drops its hidden
units and GPT-2 does not, so only at 0 do the two compute the same thing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from common import Context, Line, have, skipped, time_sides
from flops import step_flops
from glassformer.config import ModelConfig, get_preset
from glassformer.interop.torch_nn import load_torch_transformer
from glassformer.models import build_model
from glassformer.nn.embedding import Embeddings
from models import gpt2_pair

ENC_DEC_CASES = {
    # name: (d_model, heads, layers per stack, d_ff, batch, length)
    "small": (256, 4, 3, 1024, 32, 64),
    "paper-base": (512, 8, 6, 2048, 16, 32),
}
VOCAB = 8000
ENC_DEC_DROPOUT = 0.1
GPT2_DROPOUT = 0.0
GPT2_BATCH, GPT2_LENGTH = 16, 256
# Training steps are the longest units timed and the ones a busy shared machine disturbs most
# (single reps spread by 30-50% on 2 cores): they get at least this many reps, --quick or not.
MIN_TRAIN_REPS = 11


def enc_dec_config(d_model: int, heads: int, layers: int, d_ff: int, length: int) -> ModelConfig:
    """The paper's post-norm model at these sizes, with the final norms nn.Transformer always has."""
    return get_preset("paper-base").replace(
        vocab_size=VOCAB, d_model=d_model, n_heads=heads, d_ff=d_ff, n_layers=layers, max_len=max(length, 64),
        final_norm=True, dropout=ENC_DEC_DROPOUT,
    )


class TorchTransformerLM(nn.Module):
    """`torch.nn.Transformer` between glassformer's embeddings and output projection (tied as ours)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.src_embed = Embeddings(config, config.vocab_size)
        self.tgt_embed = Embeddings(config, config.vocab_size)
        self.tgt_embed.token.weight = self.src_embed.token.weight
        nn.init.normal_(self.src_embed.token.weight, std=config.d_model**-0.5)  # as glassformer initialises it
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.src_embed.token.weight
        self.pad_id = config.pad_id
        self.transformer = nn.Transformer(
            config.d_model, config.n_heads, config.n_layers, config.decoder_layers, config.d_ff,
            dropout=config.dropout, batch_first=True, norm_first=config.norm == "pre",
        )

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, V]; source padding hidden from both stacks, as glassformer does."""
        pad = src == self.pad_id  # [B, S], True where padding (nn.Transformer's polarity)
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.size(1), device=tgt.device, dtype=torch.bool)
        hidden = self.transformer(
            self.src_embed(src), self.tgt_embed(tgt), tgt_mask=causal, tgt_is_causal=True,
            src_key_padding_mask=pad, memory_key_padding_mask=pad,
        )
        return self.lm_head(hidden)


def enc_dec_pair(config: ModelConfig, device: str) -> tuple[nn.Module, nn.Module]:
    """glassformer's model and the nn.Transformer one, with the same weights everywhere."""
    torch.manual_seed(0)
    peer = TorchTransformerLM(config)
    ours = build_model(config)
    load_torch_transformer(ours, peer.transformer.state_dict())
    ours.src_embed.load_state_dict(peer.src_embed.state_dict())
    return ours.to(device), peer.to(device)


def step_fn(model: nn.Module, inputs: tuple[torch.Tensor, ...], targets: torch.Tensor, logits_of=None):
    """A zero-argument training step: forward, cross-entropy, backward, Adam."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    logits_of = logits_of or (lambda out: out)

    def step() -> None:
        logits = logits_of(model(*inputs))
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def enc_dec_batch(batch: int, length: int, device: str) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Random source and target ids (no padding: every id > pad 0), and next-token labels."""
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, VOCAB, (batch, length), generator=g)
    tgt = torch.randint(4, VOCAB, (batch, length + 1), generator=g)
    return (src.to(device), tgt[:, :-1].to(device)), tgt[:, 1:].to(device)


def make_enc_dec(case: str, side: str, device: str):
    """One side's step for the memory probe (see memory.py)."""
    d, h, n, ff, b, t = ENC_DEC_CASES[case]
    ours, peer = enc_dec_pair(enc_dec_config(d, h, n, ff, t), device)
    inputs, targets = enc_dec_batch(b, t, device)
    model = (ours if side == "ours" else peer).train()
    return step_fn(model, inputs, targets)


def gpt2_batch(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, VOCAB, (GPT2_BATCH, GPT2_LENGTH + 1), generator=g)
    return ids[:, :-1].to(device), ids[:, 1:].to(device)


def make_gpt2(case: str, side: str, device: str):
    ours, peer = gpt2_pair(device, dropout=GPT2_DROPOUT)
    ids, labels = gpt2_batch(device)
    if side == "ours":
        return step_fn(ours.train(), (ids,), labels)
    return step_fn(peer.train(), (ids,), labels, logits_of=lambda out: out.logits)


def check_same_logits(ours: nn.Module, peer: nn.Module, inputs, logits_of=lambda out: out) -> float:
    """Largest |difference| of the two models' logits in eval mode (dropout off)."""
    ours.eval(), peer.eval()
    with torch.no_grad():
        diff = (ours(*inputs) - logits_of(peer(*inputs))).abs().max().item()
    ours.train(), peer.train()
    return diff


def run(ctx: Context) -> None:
    for case, (d, h, n, ff, b, t) in ENC_DEC_CASES.items():
        name = f"train step enc-dec {case} (d{d} h{h} {n}+{n} ff{ff}, B{b} x {t}, dropout {ENC_DEC_DROPOUT})"
        config = enc_dec_config(d, h, n, ff, t)
        ours, peer = enc_dec_pair(config, ctx.device)
        inputs, targets = enc_dec_batch(b, t, ctx.device)
        diff = check_same_logits(ours, peer, inputs)
        flops = step_flops(ours, inputs, targets)
        timing = time_sides(
            {"ours": step_fn(ours, inputs, targets), "peer": step_fn(peer, inputs, targets)},
            reps=max(ctx.reps, MIN_TRAIN_REPS), device=ctx.device,
        )
        ctx.report(Line(name, timing.median("ours"), timing.median("peer"), "nn.Transformer", flops=flops,
                        work=b * t, unit="tok", note=f"same weights, max |logit diff| {diff:.1e}; {timing.noise()}"))
        del ours, peer

    name = f"train step GPT-2 6L 6H d384 (B{GPT2_BATCH} x {GPT2_LENGTH}, vocab {VOCAB}, dropout {GPT2_DROPOUT})"
    if not have("transformers"):
        ctx.out(skipped(name, "transformers is not installed: pip install transformers"))
        return
    ours, peer = gpt2_pair(ctx.device, dropout=GPT2_DROPOUT)
    ids, labels = gpt2_batch(ctx.device)
    diff = check_same_logits(ours, peer, (ids,), lambda out: out.logits)
    flops = step_flops(ours, (ids,), labels)
    timing = time_sides(
        {"ours": step_fn(ours.train(), (ids,), labels),
         "peer": step_fn(peer.train(), (ids,), labels, logits_of=lambda out: out.logits)},
        reps=max(ctx.reps, MIN_TRAIN_REPS), device=ctx.device,
    )
    ctx.report(Line(name, timing.median("ours"), timing.median("peer"), "HF GPT2LMHeadModel(sdpa)", flops=flops,
                    work=GPT2_BATCH * GPT2_LENGTH, unit="tok",
                    note=f"same weights, max |logit diff| {diff:.1e}; {timing.noise()}"))


MAKERS = {"enc-dec": make_enc_dec, "gpt2": make_gpt2}
