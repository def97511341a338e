#!/usr/bin/env bash
# The `default` profile's campaign, in units that each end in records (README, "Records"): one training seed of
# one Table 1 pair under one schedule rule, trained and scored (`-p seeds=k` trains and scores only the k-th seed;
# the others are read back), then the ablation notebooks and the whole suite. Commit results/records/ as units
# complete: a machine lost mid-campaign then costs only the unit in progress.
#
#   scripts/default_campaign.sh            # run (or resume) from the clone's root; a finished step is skipped
#   CAMPAIGN_CODE=/path/to/worktree ...    # run the library of another checkout (e.g. a worktree at a fixed commit)
#   scripts/default_campaign.sh pause [why] # stop the running campaign's every process (e.g. to run tests or time code)
#   scripts/default_campaign.sh resume      # ... and let it go on
#
# Each step's wall time goes to $LDLIB_CACHE/campaign/ledger.tsv; a step marker there skips it on the next run.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CODE=${CAMPAIGN_CODE:-$ROOT}
export LDLIB_CACHE=${LDLIB_CACHE:-$ROOT/.cache/ldlib} LDLIB_RECORDS=${LDLIB_RECORDS:-$ROOT/results/records}
export PYTHONPATH=$CODE MPLBACKEND=agg
# One campaign, one arithmetic: it runs across sessions on machines of different CPUs, and `precision="auto"` would
# train (and sample) in bf16 on those with native bf16 and in fp32 on the others; a run's cache key holds "auto",
# not what it resolved to. Pinned to fp32 (what every CPU computes natively; the records so far were made in it).
export LDLIB_CPU_BF16=${LDLIB_CPU_BF16:-0}
PY=$ROOT/.venv/bin/python
STATE=$LDLIB_CACHE/campaign
mkdir -p "$STATE/done"

# Pausing must reach the notebook's kernel: papermill starts it in a session (and process group) of its own, so
# `kill -STOP -- -<pgid>` of this script stops the script and the runner while the kernel goes on training. The
# process tree is walked from this script's pid instead, parents first, so that none starts a child unstopped.
signal_tree() {  # signal, pid: signal pid and, after it, every descendant; prints the pids signalled
  kill -"$1" "$2" 2>/dev/null || return 0
  echo "$2"
  local child; for child in $(pgrep -P "$2"); do signal_tree "$1" "$child"; done
}
if [ "${1:-}" = pause ] || [ "${1:-}" = resume ]; then
  pid=$(cat "$STATE/pid" 2>/dev/null)
  # A stale pid file may name a pid reused by another program: signal it only if it is this script.
  if [ -z "$pid" ] || ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q default_campaign.sh; then
    echo "no campaign is running (no live default_campaign.sh at the pid in $STATE/pid)"; exit 1
  fi
  sig=STOP; [ "$1" = resume ] && sig=CONT
  n=$(signal_tree "$sig" "$pid" | wc -l)
  # The pause log lets timings subtract paused spans (benchmarks/suite.py --after-paused-s).
  printf "%s\t%s\t%s\n" "$1" "$(date -u +%FT%TZ)" "${2:-}" >> "$STATE/pauses.tsv"
  echo "campaign $pid: ${1}d ($n processes, kernels included; logged in $STATE/pauses.tsv)"
  exit 0
fi
echo $$ > "$STATE/pid"
cd "$CODE"

step() {  # name, command...: run it unless its marker exists; log its wall time and exit status
  local name=$1; shift
  [ -e "$STATE/done/$name" ] && return 0
  local t0; t0=$(date +%s); echo "=== $name start $(date -u) ==="
  "$@"
  local rc=$? t1; t1=$(date +%s)
  printf "%s\t%s\t%s\t%s\trc=%s\n" "$name" "$t0" "$t1" $((t1 - t0)) "$rc" >> "$STATE/ledger.tsv"
  [ $rc = 0 ] || { echo "step $name failed (exit $rc)"; exit $rc; }
  touch "$STATE/done/$name"
}

P="$PY -m ldlib.cli pretrain --profile default"
for pair in "single32 layered32" "single64 layered64" "single16 single32 layered32"; do
  for rule in paper none; do
    for seeds in 1 2 3; do
      step "table1-${pair// /-}-$rule-seeds$seeds" $P --rows $pair --rules $rule -p seeds=$seeds --evaluate
    done
  done
done
for nb in 01 02 03 04; do step "notebook-$nb" "$PY" -m ldlib.cli reproduce --profile default --only $nb; done
step suite "$PY" -m ldlib.cli reproduce --profile default
echo "=== campaign complete $(date -u) ==="
