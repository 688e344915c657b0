#!/usr/bin/env bash
# The prepared GPU check (at most 8 minutes): device facts, then benchmarks/speed/throughput.py — EDP and CDP updates/s of
# one run and their step-time ratio, EDP+CDP grids of N = 1, 4, 16, 64 members (and of 4, 16, 64 in one program,
# group_by_contraction=False) and DBC/CDP-IL grids of 1, 16, 64
# against separate runs, sampler actions/s, grid evaluation env-steps/s, and the evaluation share of a 16-member
# sweep; then benchmarks/speed/image_throughput.py — DBC/CDP (Pearce MLP) and DP-Unet/CDP-Unet updates/s on two 84 x 84
# cameras at batch 64. Every figure is written ($OUT/throughput_gpu_DATE.json, $OUT/images_gpu_DATE.json) as soon as it is
# measured. CHECK_S and IMAGES_S bound the two parts (seconds).
# On the GPU machine, from the repository root, with the wheels of ../shared/gpu/prepare.sh in .whl/:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
#   OUT=benchmarks/results bash benchmarks/gpu/check.sh
set -uo pipefail
OUT=${OUT:-benchmarks/results}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=1
nvidia-smi -L 2>/dev/null || true
$PY -c "import jax; print('jax', jax.__version__, 'devices:', jax.devices()); assert jax.default_backend() == 'gpu', 'no GPU backend: this check is for a GPU machine'" || exit 1
timeout -k 15 "${CHECK_S:-320}" $PY -m benchmarks.speed.throughput --out "$OUT/throughput_gpu_$(date +%F).json" --grids 1,4,16,64 \
    --dbc_grids 1,16,64 --one_program_grids 4,16,64 --steps 200 --sweep_members 16
echo "gpu_check throughput exit $? ($OUT/throughput_gpu_DATE.json)"
timeout -k 15 "${IMAGES_S:-150}" $PY -m benchmarks.speed.image_throughput --parts=train --steps=20 --out "$OUT/images_gpu_$(date +%F).json"
echo "gpu_check images exit $? ($OUT/images_gpu_DATE.json)"
