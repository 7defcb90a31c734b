"""An interactive training-run calculator: pick a model and a cluster, see memory, time, cost.

Built on :mod:`llmcourse.scaling`. The live bars are drawn in HTML/CSS inside an
``ipywidgets.HTML`` (no ``FigureWidget`` or ``Output`` widget: no extra JavaScript package, it
works in JupyterLab, Colab and headless execution, and the notebook stays small). The same
numbers are kept in a plotly ``go.Figure`` (``calc.fig``, display it for a static picture) and in
``calc.result``, so code (and tests) can read them.
"""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go

from llmcourse.hardware import GPU_SPECS, gpu_key
from llmcourse.scaling import (
    GPU_PRICES_USD,
    LLAMA2_GLOBAL_BATCH_TOKENS,
    PRESETS,
    RECOMPUTE,
    batch_plan,
    chinchilla_tokens,
    count_params,
    gpu_hours,
    hardware_flops,
    training_cost,
    training_flops,
    training_memory,
    training_time,
)

__all__ = ["ScalingCalculator"]

COMPONENTS = ("weights", "grads", "optimizer", "activations", "working_set")
COLORS = {"weights": "#4C78A8", "grads": "#F58518", "optimizer": "#E45756",
          "activations": "#72B7B2", "working_set": "#B5D8D4"}
LABELS = {"working_set": "recompute working set"}


class ScalingCalculator:
    """Controls → stacked per-GPU memory bars, wall-clock time, GPU-hours and cost.

    ``calc = ScalingCalculator(); calc`` displays it; set ``calc.controls["n_gpus"].value = 64``
    (or move the sliders) and ``calc.fig`` / ``calc.summary.value`` / ``calc.result`` update.

    Memory follows :func:`llmcourse.scaling.training_memory` with each preset's architecture
    (Llama presets: no dropout, SwiGLU), the bars stacking the stored bytes and the working set
    of the layer being recomputed (``peak_gb`` is what must fit). The global batch (default 4M
    tokens, Llama 2's) gives the optimizer steps and the gradient accumulation
    (:func:`llmcourse.scaling.batch_plan`); with fewer sequences than ``micro-batch × GPUs`` the
    batch grows to one micro-batch per GPU (``result["batch_grown"]``). ``hfu`` is the hardware
    FLOPs utilisation that the chosen MFU implies once recomputation is counted
    (:func:`llmcourse.scaling.hardware_flops`).
    """

    def __init__(self, model: str = "Llama-2-7B", *, gpu: str = "A100") -> None:
        if not isinstance(model, str):
            raise TypeError(f"model must be a str, one of {', '.join(PRESETS)}; got "
                            f"{type(model).__name__}")
        if model not in PRESETS:
            raise ValueError(f"model must be one of {', '.join(PRESETS)}, got {model!r}")
        gpu = gpu_key(gpu)  # "H100" → "H100-SXM"; an unknown name raises listing the valid ones
        style = {"description_width": "120px"}
        self.controls: dict[str, widgets.Widget] = {
            "model": widgets.Dropdown(options=list(PRESETS), value=model,
                                      description="model", style=style),
            "tokens": widgets.Dropdown(
                options=[("Chinchilla (20 / param)", 0.0), ("100 B", 1e11), ("300 B", 3e11),
                         ("1 T", 1e12), ("2 T", 2e12), ("15 T", 15e12)],
                value=2e12, description="training tokens", style=style),
            "seq_len": widgets.Dropdown(options=[512, 1024, 2048, 4096, 8192], value=4096,
                                        description="sequence length", style=style),
            "micro_batch": widgets.Dropdown(options=[1, 2, 4, 8, 16], value=1,
                                            description="micro-batch / GPU", style=style),
            "global_batch": widgets.Dropdown(
                options=[("0.5 M tokens", 2**19), ("1 M tokens", 2**20), ("2 M tokens", 2**21),
                         ("4 M tokens (Llama 2)", LLAMA2_GLOBAL_BATCH_TOKENS),
                         ("8 M tokens", 2**23)],
                value=LLAMA2_GLOBAL_BATCH_TOKENS, description="global batch", style=style),
            "gpu": widgets.Dropdown(options=list(GPU_SPECS), value=gpu, description="GPU",
                                    style=style),
            "n_gpus": widgets.Dropdown(options=[1, 8, 64, 256, 1024, 2048], value=1,
                                       description="GPUs", style=style),
            "zero_stage": widgets.Dropdown(options=[0, 1, 2, 3], value=0,
                                           description="ZeRO stage", style=style),
            "recompute": widgets.Dropdown(options=list(RECOMPUTE), value="none",
                                          description="recomputation", style=style),
            "mfu": widgets.FloatSlider(value=0.4, min=0.1, max=0.7, step=0.05,
                                       description="MFU", style=style),
        }
        self.summary = widgets.HTML()
        self.bars = widgets.HTML()
        self.fig = go.Figure()
        for name in COMPONENTS:
            self.fig.add_bar(name=LABELS.get(name, name), x=["per GPU"], y=[0.0],
                             marker_color=COLORS[name])
        self.fig.update_layout(barmode="stack", height=380, width=520,
                               yaxis_title="memory per GPU (GB)",
                               margin=dict(l=60, r=20, t=50, b=40))
        self.result: dict[str, float | str | bool] = {}
        for w in self.controls.values():
            w.observe(self._on_change, names="value")
        self.widget = widgets.HBox([
            widgets.VBox(list(self.controls.values()) + [self.summary]), self.bars])
        self.update()

    def _on_change(self, _change) -> None:
        self.update()

    def update(self) -> dict:
        """Recompute everything from the controls; redraw; return :attr:`result`."""
        c = {k: w.value for k, w in self.controls.items()}
        shape = PRESETS[c["model"]]
        n = count_params(**shape)
        tokens = c["tokens"] or chinchilla_tokens(n)
        mem = training_memory(
            n, zero_stage=c["zero_stage"], n_gpus=c["n_gpus"], seq_len=c["seq_len"],
            micro_batch=c["micro_batch"], n_layer=shape["n_layer"], d_model=shape["d_model"],
            n_heads=shape["n_heads"], recompute=c["recompute"], arch=shape["arch"],
            d_ff=shape.get("d_ff"), n_kv_heads=shape.get("n_kv_heads"))
        attn = dict(seq_len=c["seq_len"], n_layer=shape["n_layer"], d_model=shape["d_model"])
        flops = training_flops(n, tokens, **attn)
        hw_flops = hardware_flops(n, tokens, recompute=c["recompute"], **attn)
        prec = "fp16" if c["gpu"] == "T4" else "bf16"
        hours = training_time(flops, gpu=c["gpu"], n_gpus=c["n_gpus"], mfu=c["mfu"],
                              precision=prec)
        per_step = dict(seq_len=c["seq_len"], micro_batch=c["micro_batch"], n_gpus=c["n_gpus"])
        batch, grown = c["global_batch"], False
        smallest = c["micro_batch"] * c["n_gpus"] * c["seq_len"]  # one micro-batch per GPU
        if batch < smallest:
            batch, grown = smallest, True
        plan = batch_plan(tokens, global_batch_tokens=batch, **per_step)
        capacity = float(GPU_SPECS[c["gpu"]]["memory_gb"])
        peak_gb = mem["peak"] / 1e9
        self.result = {
            "model": c["model"], "n_params": n, "tokens": tokens, "flops": flops,
            "hardware_flops": hw_flops, "hfu": c["mfu"] * hw_flops / flops,
            **{f"{k}_gb": mem[k] / 1e9 for k in (*COMPONENTS, "total", "peak")},
            "gpu_memory_gb": capacity, "fits": peak_gb <= capacity,
            "global_batch_tokens": plan["sequences_per_step_used"] * c["seq_len"],
            "batch_grown": grown, "steps": plan["steps"],
            "accumulation_steps": plan["accumulation_steps"],
            "hours": hours, "days": hours / 24,
            "gpu_hours": gpu_hours(flops, gpu=c["gpu"], mfu=c["mfu"], precision=prec),
            "cost_usd": training_cost(flops, gpu=c["gpu"], mfu=c["mfu"], precision=prec),
        }
        r = self.result
        with self.fig.batch_update():
            for i, name in enumerate(COMPONENTS):
                self.fig.data[i].y = [r[f"{name}_gb"]]
            self.fig.layout.shapes = [dict(
                type="line", xref="paper", x0=0, x1=1, yref="y", y0=capacity, y1=capacity,
                line=dict(dash="dash", color="black"))]
            self.fig.layout.annotations = [dict(
                xref="paper", x=1, yref="y", y=capacity, text=f"{c['gpu']}: {capacity:.0f} GB",
                showarrow=False, xanchor="right", yanchor="bottom")]
            self.fig.layout.title = (f"{c['model']} · {c['n_gpus']}× {c['gpu']} · "
                                     f"ZeRO-{c['zero_stage']} · {peak_gb:.1f} GB/GPU")
        verdict = "fits" if r["fits"] else "does NOT fit"
        grown_note = (" (grown to one micro-batch per GPU: more GPUs need tensor or pipeline "
                      "parallelism to keep the batch)" if grown else "")
        self.summary.value = (
            f"<b>{n / 1e9:.2f} B parameters</b>, {tokens / 1e9:,.0f} B tokens, "
            f"{flops:.2e} FLOPs<br>"
            f"memory per GPU: <b>{peak_gb:.1f} GB</b> at the peak — {verdict} in "
            f"{capacity:.0f} GB<br>"
            f"batch: {r['global_batch_tokens'] / 2**20:g} M tokens per step{grown_note}, "
            f"<b>{r['steps']:,} steps</b>, {r['accumulation_steps']} micro-batch(es) accumulated "
            f"per GPU and step<br>"
            f"MFU {c['mfu']:.2f} → hardware FLOPs utilisation {r['hfu']:.2f} "
            f"(recomputation: +{hw_flops / flops - 1:.0%} FLOPs that MFU does not count)<br>"
            f"time: <b>{r['days']:,.1f} days</b> on {c['n_gpus']} GPU(s) = "
            f"{r['gpu_hours']:,.0f} GPU-hours<br>"
            f"cost: ~${r['cost_usd']:,.0f} at ${GPU_PRICES_USD[c['gpu']]:.2f}/GPU-hour "
            f"(illustrative price)")
        self.bars.value = self._bars_html(c["gpu"], capacity)
        return self.result

    def _bars_html(self, gpu: str, capacity: float, height: int = 300) -> str:
        """One stacked bar (memory per GPU) and a dashed line at the GPU's capacity, in CSS."""
        r = self.result
        top = max(r["peak_gb"], capacity) * 1.1
        px = lambda gb: max(0.0, gb / top * height)
        segments = "".join(
            f'<div title="{LABELS.get(name, name)}: {r[name + "_gb"]:.1f} GB" '
            f'style="height:{px(r[name + "_gb"]):.1f}px;'
            f'background:{COLORS[name]}"></div>' for name in COMPONENTS)
        legend = " ".join(
            f'<span style="color:{COLORS[name]}">&#9632;</span> {LABELS.get(name, name)} '
            f'{r[name + "_gb"]:.1f} GB'
            f"<br>" for name in reversed(COMPONENTS))
        line = (f'<div style="position:absolute;left:0;width:120px;bottom:{px(capacity):.1f}px;'
                f'border-top:2px dashed black;font-size:11px">{gpu} {capacity:.0f} GB</div>')
        return (f'<div style="display:flex;gap:16px;align-items:flex-end;padding:8px">'
                f'<div style="position:relative;width:120px;height:{height}px;'
                f'border-bottom:1px solid #888;display:flex;flex-direction:column-reverse">'
                f"{segments}{line}</div>"
                f'<div style="font-size:12px">{legend}peak {r["peak_gb"]:.1f} GB/GPU</div></div>')

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
