#!/usr/bin/env bash
# End-to-end test of `collapse slurm` on a one-node Slurm cluster (tests/slurm/single-node.sh):
# a run split into array tasks and merged must give the plain run's Parquet table byte for byte;
# also after a shard file is deleted and that shard resubmitted, after a running shard is
# cancelled (SIGTERM, as at a time limit) and resubmitted to continue from its checkpoint, and
# for a second process (mvn). Run by .ci/run as root, after the release build. Without root, or
# when slurm-wlm and munge cannot be installed, it prints one line
# `slurm integration: SKIPPED (reason)` and exits 0; any other failure exits non-zero.
set -Eeuo pipefail
cd "$(dirname "$0")/../.."

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
log() { echo "[slurm] $*"; }
fail() {
  echo "[slurm] FAIL: $*" >&2
  exit 1
}
skip() {
  echo "slurm integration: SKIPPED ($*)"
  exit 0
}

t_total=$(now)
[ "$(id -u)" = 0 ] || skip "not root"
collapse=$PWD/target/release/collapse
[ -x "$collapse" ] || fail "$collapse is missing (cargo build --release)"

work=$(mktemp -d /tmp/collapse-slurm.XXXXXX)
cluster_up=0
on_exit() {
  local rc=$?
  if [ $rc -ne 0 ] && [ $cluster_up = 1 ]; then
    {
      echo "---- squeue"; squeue 2>&1 || true
      for f in "$work"/*/logs/*.out; do
        [ -f "$f" ] && { echo "---- $f"; tail -n 20 "$f"; }
      done
    } >&2
  fi
  if [ $cluster_up = 1 ]; then bash tests/slurm/single-node.sh stop || true; fi
  if [ $rc -eq 0 ]; then rm -rf "$work"; else echo "[slurm] files kept in $work" >&2; fi
  exit $rc
}
trap on_exit EXIT
trap 'echo "[slurm] FAIL: line $LINENO: $BASH_COMMAND (exit code $?)" >&2' ERR

# ---- the cluster
t=$(now)
rc=0
bash tests/slurm/single-node.sh start >"$work/setup.log" 2>&1 || rc=$?
if [ $rc = 3 ]; then
  skip "$(tail -n1 "$work/setup.log" | sed 's/^\[slurm\] cannot run here: //')"
fi
cluster_up=1
cat "$work/setup.log"
[ $rc = 0 ] || fail "single-node.sh start exited with $rc"
setup=$(since "$t")
log "setup (install if needed, start, node idle): $setup s"

# ---- helpers
job_id() { # job_id LABEL TEXT: the id on the line `LABEL job: ID`
  sed -n "s/^$1 job: \([0-9][0-9]*\).*/\1/p" <<<"$2"
}

wait_gone() { # wait_gone SECONDS ID...: until no job of the ids is queued or running
  local seconds=$1 tries=$(($1 * 5)) ids
  shift
  ids=$(IFS=,; echo "$*")
  # squeue fails on ids already purged from the controller: gone as well.
  while [ -n "$(squeue -h -j "$ids" 2>/dev/null || true)" ]; do
    tries=$((tries - 1))
    [ $tries -gt 0 ] || fail "jobs $ids still queued after $seconds s"
    sleep 0.2
  done
}

completed() { # completed ID COUNT: the job (every task of an array) ended COMPLETED
  local states
  states=$(scontrol show job -o "$1" | grep -o 'JobState=[A-Z_]*' | sort | uniq -c | xargs)
  [ "$states" = "$2 JobState=COMPLETED" ] || fail "job $1: expected $2 COMPLETED, got '$states'"
}

# run_sharded NAME SHARDS CPUS PROCESS-ARGS...: the plain run and the sharded one, then cmp.
run_sharded() {
  local name=$1 shards=$2 cpus=$3 t out ids
  shift 3
  "$collapse" simulate "$@" --out "$work/$name.parquet" >/dev/null
  t=$(now)
  out=$("$collapse" slurm "$@" --shards "$shards" --cpus-per-task "$cpus" --dir "$work/$name" \
    --submit)
  ids=("$(job_id shards "$out")" "$(job_id merge "$out")")
  if [ -z "${ids[0]}" ] || [ -z "${ids[1]}" ]; then fail "no job ids in: $out"; fi
  wait_gone 300 "${ids[@]}"
  completed "${ids[0]}" "$shards"
  completed "${ids[1]}" 1
  cmp "$work/$name/result.parquet" "$work/$name.parquet"
  log "$name: $shards array tasks and the merge in $(since "$t") s; result equals the plain run"
}

# ---- the runs
t_jobs=$(now)
gaussian=(gaussian --samples 20 --generations 50 --chains 3000 --seed 7)
run_sharded gaussian 4 1 "${gaussian[@]}"

# A lost shard file: resubmit that shard alone and merge again.
t=$(now)
rm "$work/gaussian/shards/shard-2.bin" "$work/gaussian/result.parquet"
out=$("$work/gaussian/resubmit.sh" 2)
ids=("$(job_id shards "$out")" "$(job_id merge "$out")")
if [ -z "${ids[0]}" ] || [ -z "${ids[1]}" ]; then fail "no job ids in: $out"; fi
wait_gone 300 "${ids[@]}"
completed "${ids[0]}" 1
completed "${ids[1]}" 1
cmp "$work/gaussian/result.parquet" "$work/gaussian.parquet"
log "gaussian: shard 2 resubmitted and merged again in $(since "$t") s; result equals the plain run"

# A shard cancelled while it runs gets SIGTERM, as at its time limit or a preemption: it keeps
# its checkpoint, the merge waiting on it is cancelled, and resubmit.sh (no indices: the shards
# without a file) runs it again from where it stopped.
t=$(now)
long=(gaussian --samples 100 --generations 100 --chains 150000 --seed 9)
"$collapse" simulate "${long[@]}" --threads 1 --out "$work/long.parquet" >/dev/null
log "long: plain run in $(since "$t") s"
t=$(now)
out=$("$collapse" slurm "${long[@]}" --checkpoint-every 1 --shards 2 --dir "$work/long" --submit)
ids=("$(job_id shards "$out")" "$(job_id merge "$out")")
if [ -z "${ids[0]}" ] || [ -z "${ids[1]}" ]; then fail "no job ids in: $out"; fi
# Each shard runs about 3 s; its first unit of chains is saved within a fraction of that.
tries=600
until compgen -G "$work/long/checkpoints/shard-0/*" >/dev/null; do
  tries=$((tries - 1))
  [ $tries -gt 0 ] || fail "shard 0 saved nothing in 60 s"
  sleep 0.1
done
scancel "${ids[0]}_0"
wait_gone 300 "${ids[@]}"
state=$(scontrol show job -o "${ids[0]}_0" | grep -o 'JobState=[A-Z]*')
[ "$state" = JobState=CANCELLED ] || fail "shard 0: $state, expected CANCELLED (done too soon?)"
[ ! -e "$work/long/shards/shard-0.bin" ] || fail "the cancelled shard 0 wrote its file"
completed "${ids[0]}_1" 1
state=$(scontrol show job -o "${ids[1]}" | grep -o 'JobState=[A-Z]*')
[ "$state" = JobState=CANCELLED ] || fail "merge after a cancelled shard: $state, expected CANCELLED"
out=$("$work/long/resubmit.sh")
ids=("$(job_id shards "$out")" "$(job_id merge "$out")")
if [ -z "${ids[0]}" ] || [ -z "${ids[1]}" ]; then fail "no job ids in: $out"; fi
wait_gone 300 "${ids[@]}"
completed "${ids[0]}" 1
completed "${ids[1]}" 1
cmp "$work/long/result.parquet" "$work/long.parquet"
log "long: shard 0 cancelled while running, resubmitted, continued, merged in $(since "$t") s; result equals the plain run"

# Another process, uneven shards (1000 chains in 3), two CPUs per task.
run_sharded mvn 3 2 mvn --dim 3 --samples 20 --generations 30 --chains 1000 --seed 5

log "jobs: $(since "$t_jobs") s, setup: $setup s, total: $(since "$t_total") s"
