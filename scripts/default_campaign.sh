#!/usr/bin/env bash
# The `default` profile's campaign, in units that each end in records (README, "Records"): one training seed of
# one Table 1 pair under one schedule rule, trained and scored (`-p seeds=k` trains and scores only the k-th seed;
# the others are read back), then the ablation notebooks and the whole suite. Commit results/records/ as units
# complete: a machine lost mid-campaign then costs only the unit in progress.
#
#   scripts/default_campaign.sh            # run (or resume) from the clone's root; a finished step is skipped
#   CAMPAIGN_CODE=/path/to/worktree ...    # run the library of another checkout (e.g. a worktree at a fixed commit)
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
