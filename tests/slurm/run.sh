#!/usr/bin/env bash
# `make test-slurm`: a real single-node Slurm for the Slurm tests (tests/slurm_array.rs).
#
# Installs Debian's slurm-wlm and munge on first use (needs root; quick when present), writes a
# minimal slurm.conf for this host (one node with its cores and memory, no cgroups, no accounting)
# under a temporary folder, starts munged, slurmctld and slurmd there, runs the ignored tests of
# tests/slurm_array.rs against it, and stops everything on exit, also when a test fails. The last
# line says `slurm: N passed, M failed`.
#   KEEP_SLURM_DIR=1 tests/slurm/run.sh     # keep the folder (config, logs, state) afterwards
#   tests/slurm/run.sh NAME                  # only the tests whose name contains NAME
set -euo pipefail
cd "$(dirname "$0")/../.."
CARGO=${CARGO:-cargo}

# ---- install -----------------------------------------------------------------------------------
missing=()
for c in slurmctld slurmd sbatch squeue scontrol scancel munged; do
  command -v "$c" > /dev/null || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test-slurm: ${missing[*]} missing; run as root to install slurm-wlm and munge, or install them" >&2
    exit 2
  fi
  echo ">> installing slurm-wlm and munge (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  # No init scripts may start daemons while installing (a container has no init; ours are
  # started below with our own configuration).
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
  fi
  install() { apt-get install -y -q --no-install-recommends slurm-wlm munge > /tmp/crowdout-slurm-apt.log 2>&1; }
  if ! install; then
    apt-get update -q > /dev/null 2>&1 || true
    install || { tail -n 30 /tmp/crowdout-slurm-apt.log; [ -z "$made_policy" ] || rm -f "$policy"; exit 2; }
  fi
  [ -z "$made_policy" ] || rm -f "$policy"
  rm -f /tmp/crowdout-slurm-apt.log
fi

# ---- configure ---------------------------------------------------------------------------------
T=$(mktemp -d /tmp/crowdout-slurm.XXXXXX)
chmod 755 "$T"
mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/log"
chmod 700 "$T/munge"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
HOST=$(hostname -s)
NODE=$(slurmd -C | head -n 1)   # NodeName=<host> CPUs=… Boards=… RealMemory=…
CPUS=$(echo "$NODE" | sed -E 's/.*CPUs=([0-9]+).*/\1/')
cat > "$T/slurm.conf" <<CONF
ClusterName=crowdout-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.socket
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
InactiveLimit=0
SlurmdTimeout=60
MaxArraySize=1001
$NODE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$T/slurm.conf

# ---- start, and stop on exit -------------------------------------------------------------------
CTLD_PID=
SLURMD_PID=
cleanup() {
  local rc=$?
  set +e
  if [ -n "$CTLD_PID" ]; then
    local jobs
    jobs=$(squeue -h -o %A 2> /dev/null | sort -u)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      scancel $jobs 2> /dev/null
      for _ in $(seq 30); do [ -z "$(squeue -h 2> /dev/null)" ] && break; sleep 1; done
    fi
  fi
  for pid in $SLURMD_PID $CTLD_PID; do
    kill "$pid" 2> /dev/null
  done
  for pid in $SLURMD_PID $CTLD_PID; do
    for _ in $(seq 20); do kill -0 "$pid" 2> /dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2> /dev/null
  done
  if [ -f "$T/munge/munged.pid" ]; then
    kill "$(cat "$T/munge/munged.pid")" 2> /dev/null
  fi
  if [ "$rc" != 0 ]; then
    echo "test-slurm: failed (exit $rc); Slurm logs:" >&2
    tail -n 25 "$T"/log/*.log >&2 2> /dev/null
  fi
  if [ "$rc" != 0 ] || [ -n "${KEEP_SLURM_DIR:-}" ]; then
    echo "test-slurm: kept $T (config, logs, state)" >&2
  else
    rm -rf "$T"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$T/munge/munge.key"
munged --force --key-file="$T/munge/munge.key" --socket="$T/munge/munge.socket" \
  --pid-file="$T/munge/munged.pid" --log-file="$T/log/munged.log" --seed-file="$T/munge/munged.seed"
slurmctld -D -f "$SLURM_CONF" > "$T/log/slurmctld.out" 2>&1 &
CTLD_PID=$!
slurmd -D -f "$SLURM_CONF" > "$T/log/slurmd.out" 2>&1 &
SLURMD_PID=$!
state=
for _ in $(seq 60); do
  state=$(sinfo -h -N -o %T 2> /dev/null | head -n 1 || true)
  case "$state" in idle*) break ;; esac
  sleep 1
done
case "$state" in
  idle*) echo ">> slurm up: node $HOST, $CPUS CPUs, ports $CTLD_PORT/$SLURMD_PORT, config $SLURM_CONF" ;;
  *) echo "test-slurm: the node did not become idle (state: '${state:-none}')" >&2; exit 1 ;;
esac

# ---- test --------------------------------------------------------------------------------------
t0=$(date +%s)
set +e
"$CARGO" test --release --test slurm_array -- --ignored --test-threads=1 --nocapture "$@" 2>&1 | tee "$T/log/test.log"
rc=${PIPESTATUS[0]}
set -e
summary=$(grep -E '^test result:' "$T/log/test.log" | tail -n 1)
passed=$(echo "$summary" | sed -nE 's/.* ([0-9]+) passed.*/\1/p')
failed=$(echo "$summary" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
echo "test-slurm: $(($(date +%s) - t0)) s for cargo test (its build included) on a $CPUS-CPU single-node Slurm"
if [ "$rc" != 0 ] && [ "${failed:-0}" = 0 ]; then failed=1; fi
if [ "${passed:-0}" = 0 ] && [ "$rc" = 0 ]; then echo "test-slurm: no test ran" >&2; rc=1; fi
echo "slurm: ${passed:-0} passed, ${failed:-1} failed"
exit "$rc"
