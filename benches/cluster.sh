#!/usr/bin/env bash
# Whole-run costs for cluster planning (README "Running on a cluster"): the CPU time of each
# default-scale ensemble and its core-hours at the paper scale (ten times the chains), the
# overhead of sharding (1, 4 and 16 shards run one after another on this machine, plus the
# merge) and of checkpointing, each against the plain run measured in the same invocation.
# Usage: benches/cluster.sh [REPEATS]   (best of REPEATS, default 3; builds the release binary)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
cargo build --release --quiet
bin=target/release/collapse
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Best (smallest) wall and CPU seconds of a command over the repeats: "wall cpu".
measure() {
  local best_wall="" best_cpu=""
  for _ in $(seq "$repeats"); do
    rm -rf "$work/cp"
    /usr/bin/time -f "%e %U %S" -o "$work/t" "$@" >/dev/null
    read -r wall user sys <"$work/t"
    local cpu; cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')
    if [ -z "$best_wall" ] || awk -v a="$wall" -v b="$best_wall" 'BEGIN{exit !(a<b)}'; then
      best_wall=$wall; best_cpu=$cpu
    fi
  done
  echo "$best_wall $best_cpu"
}

echo "## Default-scale ensembles and their paper-scale core-hours ($(nproc) cores, best of $repeats)"
echo
echo "| run | chains x generations | wall s | CPU s | paper scale (10x chains): core-hours |"
echo "|---|---|---|---|---|"
runs=(
  "gaussian exact, M = 100|10000|2000|simulate gaussian --samples 100 --generations 2000 --chains 10000 --seed 1"
  "gaussian accumulate-subsample, M = 100|10000|1000|simulate gaussian --samples 100 --generations 1000 --chains 10000 --seed 1 --strategy accumulate-subsample"
  "markov zipf:1.1, K = 40, M = 50|20000|100|simulate markov --categories 40 --samples 50 --init zipf:1.1 --generations 100 --chains 20000 --seed 1"
  "mvn d = 3, M = 20, sufficient|20000|200|simulate mvn --dim 3 --samples 20 --generations 200 --chains 20000 --seed 1 --method sufficient"
  "mvn d = 10, M = 100, exact|4000|200|simulate mvn --dim 10 --samples 100 --generations 200 --chains 4000 --seed 1"
  "gmm paper, K = 2, d = 2, M = 1000|32|2050|simulate gmm --components 2 --dim 2 --samples 1000 --generations 2050 --chains 32 --seed 1"
)
for r in "${runs[@]}"; do
  IFS='|' read -r name chains gens cmd <<<"$r"
  # shellcheck disable=SC2086
  read -r wall cpu < <(measure $bin $cmd)
  hours=$(awk -v c="$cpu" 'BEGIN{printf "%.3f", 10*c/3600}')
  echo "| $name | $chains x $gens | $wall | $cpu | $hours |"
done

# Sharding and checkpointing against the plain run of the same command.
overhead() {
  local base=$1
  echo
  echo "## Sharding and checkpointing overhead: \`$base\`"
  echo
  echo "| how | wall s | CPU s | wall / plain |"
  echo "|---|---|---|---|"
  local pw pc w c ratio n every
  # shellcheck disable=SC2086
  read -r pw pc < <(measure $bin $base --out "$work/plain.parquet")
  echo "| plain run | $pw | $pc | 1.00 |"
  for n in 1 4 16; do
    {
      echo "set -e"
      for i in $(seq 0 $((n - 1))); do echo "$bin $base --shard $i/$n --out $work/s$i.bin"; done
      echo "$bin merge $(for i in $(seq 0 $((n - 1))); do printf '%s ' "$work/s$i.bin"; done) --out $work/merged.parquet"
    } >"$work/sharded.sh"
    read -r w c < <(measure bash "$work/sharded.sh")
    cmp -s "$work/plain.parquet" "$work/merged.parquet" || { echo "merged result differs" >&2; exit 1; }
    ratio=$(awk -v a="$w" -v b="$pw" 'BEGIN{printf "%.2f", a/b}')
    echo "| $n shards one after another, then merge | $w | $c | $ratio |"
    rm -f "$work"/s*.bin
  done
  for every in 60 1; do
    # shellcheck disable=SC2086
    read -r w c < <(measure $bin $base --out "$work/cp.parquet" --checkpoint "$work/cp" --checkpoint-every $every)
    cmp -s "$work/plain.parquet" "$work/cp.parquet" || { echo "checkpointed result differs" >&2; exit 1; }
    ratio=$(awk -v a="$w" -v b="$pw" 'BEGIN{printf "%.2f", a/b}')
    echo "| checkpoint every ${every} s | $w | $c | $ratio |"
  done
}
# A fast run that keeps 16 bytes per chain and generation for its quartiles, and a
# compute-bound one (8 bytes).
overhead "simulate gaussian --samples 100 --generations 2000 --chains 10000 --seed 1"
overhead "simulate mvn --dim 10 --samples 100 --generations 200 --chains 4000 --seed 1"
