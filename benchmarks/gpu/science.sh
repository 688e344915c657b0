#!/usr/bin/env bash
# The first result at a budget where the claim can show, in one GPU call (under 9 minutes): generates
# PointMaze-Medium (300k transitions) and runs the EDP/CDP data-scarcity job of benchmarks/paper_tables (preset
# `gpu`: 10 seeds x fractions 1.0, 0.1, 0.05 x γ 0, 0.1 = 60 members in one compiled grid, 20k steps, 50 evaluation
# episodes stepped by one worker process per CPU core). If the time limit cuts the run, the tables are still written
# from the last evaluation reached, and say so. Outputs: $OUT/{table1.md,limited_data.png,results.csv,timing.json}.
#   OUT=benchmarks/results/gpu bash benchmarks/gpu/science.sh            # after gpu_check.sh, same setup
#   bash benchmarks/gpu/science.sh --generate-only                        # the dataset alone (CPU; can run alongside)
set -uo pipefail
OUT=${OUT:-benchmarks/results/gpu}
WORK=${WORK:-/tmp/cdp_gpu_science}
PY=${PY:-python3}
export MINARI_DATASETS_PATH=${MINARI_DATASETS_PATH:-$WORK/minari} PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=1
mkdir -p "$OUT" "$WORK"
if [ ! -e "$MINARI_DATASETS_PATH/local/pointmaze/medium-v0" ]; then
  JAX_PLATFORMS=cpu $PY -m cdp_jax.datasets generate pointmaze-medium --steps 300000 || exit 1
fi
[ "${1:-}" = "--generate-only" ] && exit 0
timeout -k 25 "${SCIENCE_S:-420}" $PY -m benchmarks.science.paper_tables --preset gpu --agents edp --workdir "$WORK/tables"
echo "paper_tables exit $?"
$PY -m benchmarks.science.paper_tables --preset gpu --agents edp --workdir "$WORK/tables" --report_only
cp "$WORK"/tables/{table1.md,limited_data.png,results.csv} "$OUT"/ 2>/dev/null
cp "$WORK"/tables/sweeps/*edp/timing.json "$OUT"/ 2>/dev/null
ls -l "$OUT"
