"""Speed applied from outside the model: `optimize_for_inference(model)` prepares a built model for
fast inference on its device. Nothing in `glassformer.nn` or `glassformer.models` imports this package.

    transform.py    optimize_for_inference, Optimized (what was applied)
    fused_qkv.py    Q, K and V of self-attention from one product, set up once
    decode_step.py  FlatDecode: a decoder-only LM's one-token step without a module call per part
    small_batch.py  SmallBatchLinear: a few rows through the kernel measured fastest
    kernels.py      the candidate kernels (F.linear, embedding_bag, split baddbmm, gemv, native)
    native.py       native.c: products of a few rows in C, compiled on this machine at first use
    choice.py       measuring them once per machine and shape, and remembering the winner
    machine_load.py how much of the CPUs other processes used during a measurement
    native_layers.py  native_layers.c: a decoding step's layers (and greedy steps) in one C call
    lookups.py      submodules found as plain attributes
    bf16_weights.py bf16 weights with fp32 activations, where the measurement shows them faster
    weights_check.py  what bf16 weights cost: greedy agreement and held-out perplexity
    bandwidth.py    bytes a decoding step reads, and the machine's measured read bandwidth
"""

from glassformer.speed.transform import Optimized, optimize_for_inference

__all__ = ["Optimized", "optimize_for_inference"]
