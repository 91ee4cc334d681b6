#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for the end-to-end test of `collapse slurm`
# (tests/slurm/integration.sh): Debian 12's slurm-wlm 22.05 and munge, daemons started by hand
# (no systemd needed), loopback only, no cgroups, no accounting.
#
# Usage, as root:
#   single-node.sh install   apt-get install slurm-wlm and munge if missing
#   single-node.sh start     install, write /etc/slurm/slurm.conf, start munged, slurmctld and
#                            slurmd, wait until the node is idle
#   single-node.sh stop      stop the daemons that `start` started
# Exit code 3: this machine cannot host the cluster (not root, the packages cannot be installed,
# or a Slurm configuration of someone else is in place); the last line on stderr says why.
# Any other failure: exit code 1.
set -Eeuo pipefail
# The daemons live in sbin, which a non-login root shell may lack.
export PATH="$PATH:/usr/sbin:/sbin"

CONF=/etc/slurm/slurm.conf
MARKER="# written by collapse tests/slurm/single-node.sh"
NODE=localhost
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
# munged was started here (so `stop` stops it only then).
MUNGE_OURS=/run/munge/started-by-collapse-tests

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
log() { echo "[slurm] $*"; }
cannot() { echo "[slurm] cannot run here: $*" >&2; exit 3; }
die() { echo "[slurm] FAIL: $*" >&2; exit 1; }

alive() { # alive PIDFILE: the pid in it runs
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_gone() { # wait_gone PID SECONDS
  local pid=$1 n=$(($2 * 10))
  while kill -0 "$pid" 2>/dev/null && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
  ! kill -0 "$pid" 2>/dev/null
}

ours() { [ -f "$CONF" ] && grep -qxF "$MARKER" "$CONF"; }

have_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v sbatch >/dev/null && command -v munged >/dev/null
}

install_packages() {
  if have_packages; then
    log "packages already installed"
    return 0
  fi
  command -v apt-get >/dev/null || cannot "no apt-get to install slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  local t out
  t=$(now)
  # Known package lists first (no update); a failure may be stale lists, so update and retry.
  # --no-install-recommends: 9 packages instead of about 43 (hdf5, ipmi, rocm plugins).
  if ! apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1; then
    if ! out=$(apt-get update -qq 2>&1); then
      log "apt-get update failed: $(tail -n1 <<<"$out")"
    fi
    if ! out=$(apt-get install -y -qq --no-install-recommends slurm-wlm munge 2>&1); then
      cannot "apt-get cannot install slurm-wlm and munge: $(tail -n1 <<<"$out")"
    fi
  fi
  have_packages || cannot "slurm-wlm and munge installed, but their programs are missing"
  log "installed slurm-wlm and munge in $(since "$t") s"
}

stop_slurm() {
  local pids=() f p t
  for f in "$CTLD_PID" "$SLURMD_PID"; do
    if alive "$f"; then pids+=("$(cat "$f")"); fi
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  t=$(now)
  scontrol shutdown >/dev/null 2>&1 || true # stops slurmctld and every slurmd
  for p in "${pids[@]}"; do
    if ! wait_gone "$p" 15; then
      kill "$p" 2>/dev/null || true
      wait_gone "$p" 10 || kill -9 "$p" 2>/dev/null || true
    fi
  done
  log "slurm daemons stopped in $(since "$t") s"
}

stop_munge() {
  if [ -e "$MUNGE_OURS" ] && alive "$MUNGE_PID"; then
    local p
    p=$(cat "$MUNGE_PID")
    kill "$p"
    wait_gone "$p" 10 || die "munged (pid $p) did not stop"
    log "munged stopped"
  fi
  rm -f "$MUNGE_OURS"
}

dump_logs() {
  {
    echo "---- squeue"; squeue 2>&1 || true
    echo "---- sinfo -R"; sinfo -R 2>&1 || true
    echo "---- tail $LOG_DIR/slurmctld.log"; tail -n 30 "$LOG_DIR/slurmctld.log" 2>&1 || true
    echo "---- tail $LOG_DIR/slurmd.log"; tail -n 30 "$LOG_DIR/slurmd.log" 2>&1 || true
  } >&2
}

start_munge() {
  install -d -o munge -g munge -m 0700 /etc/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  install -d -o munge -g munge -m 0700 /var/log/munge
  install -d -o munge -g munge -m 0755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  if alive "$MUNGE_PID"; then
    log "munged already running; reusing it"
  else
    runuser -u munge -- /usr/sbin/munged # daemonizes and writes $MUNGE_PID
    for _ in $(seq 50); do alive "$MUNGE_PID" && break; sleep 0.1; done
    alive "$MUNGE_PID" || die "munged did not start (see /var/log/munge/munged.log)"
    touch "$MUNGE_OURS"
  fi
  munge -n | unmunge >/dev/null || die "munge round trip failed"
}

write_conf() {
  # The node's geometry from the hardware; RealMemory 90% of what slurmd detects.
  local hw cpus sockets cores threads mem comm addr
  hw=$(slurmd -C | head -n1)
  get() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  cpus=$(get CPUs) sockets=$(get SocketsPerBoard) cores=$(get CoresPerSocket)
  threads=$(get ThreadsPerCore) mem=$(get RealMemory)
  if [ -z "$cpus" ] || [ -z "$mem" ]; then
    die "cannot read the node's geometry from 'slurmd -C': $hw"
  fi
  # Listening sockets on loopback only, but only when the host name resolves to loopback: with
  # these flags Slurm binds to the address of gethostname(), not to SlurmctldHost/NodeAddr.
  addr=$(getent ahostsv4 "$(hostname)" | awk 'NR==1{print $1}')
  case "$addr" in
    127.*) comm="CommunicationParameters=NoCtldInAddrAny,NoInAddrAny" ;;
    *) comm="# CommunicationParameters: $(hostname) resolves to '$addr', not loopback" ;;
  esac
  mkdir -p /etc/slurm "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR"
  cat >"$CONF.tmp" <<EOF
$MARKER
ClusterName=collapse-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
$comm
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No cgroups: works in containers and on cgroup-v2 hosts without systemd.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
# The defaults (batch_sched_delay=3 s, sched_min_interval=2 s) add seconds between job waves.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000
# afterok on a failed job: cancel the dependent instead of leaving it pending forever.
DependencyParameters=kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Finished jobs stay visible to scontrol for 5 minutes, long enough to check their states.
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$((mem * 9 / 10)) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
  log "wrote $CONF (CPUs=$cpus)"
}

on_start_exit() { # a start that fails leaves nothing running
  local rc=$?
  if [ $rc -ne 0 ]; then
    dump_logs
    stop_slurm || true
    stop_munge || true
  fi
}

start() {
  install_packages
  if [ -f "$CONF" ] && ! ours; then
    cannot "$CONF exists and was not written by this script"
  fi
  if [ -d /run/systemd/system ]; then
    # The packaged units would compete for the ports.
    systemctl stop slurmctld slurmd 2>/dev/null || true
  fi
  local t
  t=$(now)
  start_munge
  # A cluster left over from an earlier start restarts with the fresh configuration.
  stop_slurm
  write_conf
  trap on_start_exit EXIT
  slurmctld -c # -c: a clean state, no leftover jobs or drained node
  slurmd -N "$NODE" # -N: the node is 'localhost', whatever hostname(1) says
  local state=
  for _ in $(seq 300); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.1
  done
  [ "$state" = idle ] || die "node state is '$state', expected idle"
  log "munged, slurmctld and slurmd up, node idle, in $(since "$t") s"
}

stop() {
  # Daemons of someone else's configuration are not ours to stop.
  if ours; then stop_slurm; fi
  stop_munge
}

[ "$(id -u)" = 0 ] || cannot "not root"
case "${1:-}" in
  install) install_packages ;;
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 install|start|stop" >&2
    exit 1
    ;;
esac
