#!/usr/bin/env bash
# One prepared GPU check (< 5 minutes): device facts, the contraction cost table and the sweep throughput
# with grids up to 64 members. Run it from the repository root on a machine with jax[cuda] installed:
#   pip install -e . "jax[cuda12]==0.10.2" && bash benchmarks/gpu_check.sh
set -euo pipefail
python -c "import jax; print('devices:', jax.devices())"
timeout 100 python -m benchmarks.contraction_cost --steps 500
timeout 100 python -m benchmarks.contraction_cost --agent edp --steps 200
timeout 150 python -m benchmarks.sweep_throughput --grids 1,4,16,64 --steps 500
