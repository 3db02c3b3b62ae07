#!/usr/bin/env bash
# GPU run for issues 14/15: the package's CUDA tests, the trainer benchmark, GRPO on CUDA.
# Usage (on the device, after scripts/device/assemble.sh here; carry [".gpu"]):
#   STAGES="tests grpo bench" bash scripts/device/run_torch.sh   (logs under $OUT)
set -uo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."
mkdir -p ../shared && cp -rn .gpu/shared/* ../shared/ 2>/dev/null
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/.gpu/py:/tmp/site
export BITEXACT_BIN=$PWD/.gpu/bin/bitexact
STAGES=${STAGES:-"tests bench grpo"}
date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, transformers, bitexact; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available(), 'bx cuda kernels', bitexact._core.torch_kernels.has_cuda)" || exit 1
for s in $STAGES; do
  case $s in
  tests)
    echo "== pytest (CUDA) $(date -u +%T)"
    timeout ${TEST_BUDGET:-330} python3 -m pytest -q -p no:cacheprovider -rs --durations=8 \
      tests/python/test_torch_cuda.py tests/python/test_cuda.py 2>&1 | tee $OUT/pytest.log | tail -40 ;;
  bench)
    echo "== torch_train_bench qwen3-8b cuda $(date -u +%T)"
    timeout ${BENCH_BUDGET:-150} python3 bench/torch_train_bench.py --shape qwen3-8b --device cuda \
      --dtype bfloat16 --batch 4 --length 512 --steps 5 --warmup 2 --profile 25 2>&1 | tee $OUT/train_bench.log | tail -15 ;;
  grpo)
    for arm in ${ARMS:-invariant fast}; do
      echo "== GRPO $arm $(date -u +%T)"
      timeout ${GRPO_BUDGET:-150} python3 bench/rl/grpo.py --backend cuda --model random-qwen3:0 \
        --steps ${GRPO_STEPS:-100} --prompts 8 --group 8 --max-tokens 64 --lr 1e-5 --arms $arm \
        --out $OUT/rl-gpu-$arm 2>&1 | tee $OUT/grpo-$arm.log | grep -E "step|grpo|Error|error" | tail -12
    done ;;
  esac
done
rm -f $OUT/rl-gpu-*/rl.md $OUT/rl-gpu-*/rl.png
echo "== done $(date -u +%T)"
