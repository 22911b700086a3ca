"""Seeing through the model: record activations, print shape tables and numeric walk-throughs,
draw attention, and write a self-contained HTML report.

Entry points:
    record(model, names=None, values=False)      context manager -> Recording (recorder.py)
    step_by_step(model)                            attention one operation at a time (step_by_step.py)
    intervene(model, {pattern: fn})                change values at hook points (intervene.py)
    ablate(model, head(...) | feedforward(...) | layer(...), how)   zero/mean/resample ablation (ablate.py)
    logit_lens(model, *inputs) -> [layers + 1, B, T, V]            every layer read out (lens.py)
    activation_patching(model, clean, corrupt, metric) -> Patching  layer x position, head grids (patch.py)
    gradients(model, names); attribution_patching(...)              backward hooks, first-order patching (gradients.py)
    direct_logit_attribution(model, *inputs, token=...)             each part's share of a logit (attribution.py)
    prefix_matching_score / previous_token_score / repeat_loss      induction heads (induction.py)
    run_trace(model, ids, target) -> rows          article A's shape table (trace.py)
    explain(model, tokenizer, text)                article C's numbers (explain.py, toy.py)
    collect_attention(subject, text)               every attention map (attention_data.py)
    shade_grid(weights, rows, cols)                a terminal heatmap (attention_map.py)
    decode_steps(model, ids, start, end, n)        glassformer.generate, uncached, step by step (decoding.py)
    build_report / render_report / write_report    the HTML page (report.py, diagram.py, report_tensors.py)
    ReportPages / report_server                    the page served locally with a text box (serve.py)
    bertviz_data / save_bertviz / load_bertviz     maps for bertviz (bertviz.py)
"""

from glassformer.inspect.intervene import Hook, intervene
from glassformer.inspect.recorder import Record, Recording, hook_points, record
from glassformer.inspect.step_by_step import step_by_step

__all__ = ["Hook", "Record", "Recording", "hook_points", "intervene", "record", "step_by_step"]
