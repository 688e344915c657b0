#!/usr/bin/env bash
# The settling experiment's GPU half in one call (under 8 minutes on one H100): generates PointMaze-Medium (300k
# transitions), then runs benchmarks/science/settling.py --preset gpu: arm A (float embedding, penalty on t < 0.1·T,
# γ 0, 0.01, 0.1) and arm C (cleandiffuser embedding, the official network, γ 0, 0.1), 10 seeds x fractions 1.0 and
# 0.1, 20k steps, 50 evaluation episodes stepped by one worker process per CPU core (100 members in two compiled
# programs). Each table is written as soon as its arm exists; if the time limit cuts the run, the tables are written
# again from what was reached. Outputs: $OUT/settling_gpu.{md,csv,json,png}, $OUT/timing_{A,C}.json.
#   OUT=benchmarks/results/gpu bash benchmarks/gpu/science.sh            # after gpu/check.sh, same setup
#   bash benchmarks/gpu/science.sh --generate-only                        # the dataset alone (CPU; can run alongside)
# Estimate: the earlier 60-member run of this dataset and budget took 4.4 min on an H200, 48 % of it two evaluations;
# 100 members with one evaluation: about 3.8 min training + 1.8 min evaluation + two compilations.
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
SETTLING=($PY -m benchmarks.science.settling --preset "${PRESET:-gpu}" --workdir "$WORK/settling" --out "$OUT/settling_gpu")
timeout -k 25 "${SCIENCE_S:-450}" "${SETTLING[@]}"
echo "settling exit $?"
"${SETTLING[@]}" --report_only > /dev/null
for arm in A C; do cp "$WORK/settling/$arm/timing.json" "$OUT/timing_$arm.json" 2>/dev/null; done
ls -l "$OUT"
