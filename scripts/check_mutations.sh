#!/usr/bin/env bash
# Does `bench check` catch a broken method? Trains the ci preset (seed 0) of a method with one
# training-level change at a time and checks it against results/baselines/mnist-ci.csv.
# Prints one line per mutation: caught (the check failed, with the numbers it named) or missed.
# Under 10 minutes on a 2-core CPU (too slow for CI; tests/test_regression.py checks one).
#   scripts/check_mutations.sh [WORK_DIR]            (default: a temporary folder, deleted after)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
work=${1:-$(mktemp -d)}
[ -n "${1:-}" ] || trap 'rm -rf "$work"' EXIT
mutations=(
  "ccvae reverse_cycle_weight=0"
  "ccvae kl_weight=1.5"
  "mathieu discriminator_gate=0"
  "szabo discriminator_gate=0"
  "ccvae s_dim=8"
  "mathieu s_dim=8"
  "szabo s_dim=8"
)
for mutation in "${mutations[@]}"; do
  read -r method setting <<< "$mutation"
  results="$work/${method}-${setting//=/-}"
  if [[ $setting == s_dim=* ]]; then flags=(--s-dim "${setting#s_dim=}"); else flags=(--set "$setting"); fi
  "$python" -m bench run --methods "$method" --dataset mnist --preset ci --seeds 0 --device cpu \
    --results "$results" "${flags[@]}" > "$results.log" 2>&1
  # Only this method's rows are judged: the other methods' baseline rows are not asked for.
  grep -E "^(method|$method)" results/baselines/mnist-ci.csv > "$results.baseline.csv"
  if "$python" -m bench check --results "$results" --baseline "$results.baseline.csv" > "$results.check" 2>&1; then
    echo "missed  $method $setting"
  else
    named=$(awk '$NF == "WORSE" || $NF == "MISSING" {print $3 " " $4 " " $NF}' "$results.check" | paste -sd, -)
    echo "caught  $method $setting: $named"
  fi
done
