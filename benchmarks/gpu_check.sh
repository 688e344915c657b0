#!/usr/bin/env bash
# One prepared GPU check (< 5 minutes): device facts, benchmarks/throughput.py (EDP and CDP updates/s, CDP/EDP ratio,
# grids of N = 1, 4, 16, 64 members against separate runs, sampler actions/s, evaluation env-steps/s) and the
# contraction cost table. From the repository root on a machine with a GPU build of jax:
#   pip install -e . "jax[cuda12]==0.10.2" && bash benchmarks/gpu_check.sh
set -euo pipefail
python -c "import jax; print('devices:', jax.devices())"
timeout 150 python -m benchmarks.throughput --out benchmarks/results/throughput_gpu.json --grids 1,4,16,64 --steps 200
timeout 120 python -m benchmarks.contraction_cost --agent dbc --steps 500
