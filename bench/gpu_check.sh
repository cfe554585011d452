#!/usr/bin/env bash
# The GPU path, checked in at most about 5 minutes on one GPU (README: "The GPU path").
#   bash bench/gpu_check.sh            # from the repository root, with .venv installed (make setup)
# 1. the CUDA-marked tests (skipped on machines without a GPU), and the rest of the engine's
#    GPU-relevant tests on the GPU: AMP, the guided loss, the finite-difference penalty gradient,
#    the DDP tests;
# 2. a one-epoch `main.py train` on the demo data on the GPU, fp32 and bf16;
# 3. bench/amp_agreement.py: bf16/fp16 penalty error and gradient cosine against float32;
# 4. bench/gpu_bench.py: plain, exact and finite-difference guided steps interleaved, CUDA-event
#    timed (median, quartiles, min-max), their ratios and peak memory for resnet18 and resnet50 at
#    224 px, 5 % and 100 % annotated, fp32 / bf16 / fp16; then the bimodality check (the same
#    configuration in several passes: as is, after empty_cache, cudnn deterministic, benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
started=$(date +%s)
"$PY" -c 'import torch, sys; ok = torch.cuda.is_available(); print("GPU:", torch.cuda.get_device_name(0) if ok else "none", "| torch", torch.__version__); sys.exit(0 if ok else 3)' \
  || { echo "no CUDA GPU visible: nothing to check here"; exit 3; }

echo "== CUDA-marked tests and the AMP / guided-loss / DDP tests"
timeout 120 "$PY" -m pytest -q -p no:cacheprovider -m "cuda or not gui" tests/test_amp.py tests/test_guided_loss.py tests/test_finite_difference.py tests/test_distributed.py \
  || echo "!! tests failed or timed out (rc=$?): the figures below still come"

echo "== main.py train on the GPU, one epoch of the demo, fp32 and bf16"
demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
"$PY" main.py demo-data --out "$demo/data" > /dev/null
for amp in off bf16; do
  for gradient in exact finite_difference; do
    echo "-- --amp $amp --penalty-gradient $gradient"
    timeout 60 "$PY" main.py train --data "$demo/data/train" --val "$demo/data/val" --masks "$demo/data/truth/train" \
        --epochs 1 --device cuda --amp "$amp" --penalty-gradient "$gradient" --workers 2 --out "$demo/run_${amp}_$gradient" 2>&1 \
        | grep -E "^(device|epoch)" || true
  done
done

echo "== bf16 / fp16 against float32: penalty error and gradient direction (bench/amp_agreement.py)"
timeout 60 "$PY" bench/amp_agreement.py --device cuda --models small_cnn resnet18 --amp bf16 fp16 --seeds 0 1 || true

echo "== throughput (bench/gpu_bench.py)"
left=$(( 290 - ($(date +%s) - started) ))
timeout $(( left > 30 ? left : 30 )) "$PY" bench/gpu_bench.py --budget-s $(( left > 60 ? left - 40 : 20 ))
echo "== done in $(( $(date +%s) - started )) s"
