#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build (CXX=clang++ cmake -DSTABLEFS_FUZZ=ON; built by
# `--target fuzz_targets`) for SECONDS each, starting from its seed corpus in
# tests/fuzz/corpus/TARGET (copied: the repository's corpus is not changed; with FUZZ_KEEP=DIR
# the grown corpora are kept under DIR). Prints each target's executions and the total, and
# exits non-zero when a target finds a crash, a hang (-timeout), a leak or an out-of-bounds
# access (ASan+UBSan), whose input libFuzzer writes as crash-* in the working directory.
#   scripts/run-fuzz.sh BUILD_DIR [SECONDS]
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [SECONDS]" >&2; exit 2; }
cd "$(dirname "$0")/.."
build=$1 seconds=${2:-20}
work=$(mktemp -d /var/tmp/stablefs-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
total=0 failed=0
for src in tests/fuzz/*.cc; do
  name=$(basename "$src" .cc)
  bin=$build/$name
  [ -x "$bin" ] || { echo "$name: not built ($bin)"; failed=1; continue; }
  corpus=${FUZZ_KEEP:+$FUZZ_KEEP/$name}
  corpus=${corpus:-$work/$name}
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null
  log=$work/$name.log
  (cd "$work" && "$OLDPWD/$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "$corpus" >"$log" 2>&1)
  rc=$?
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    echo "$name: FAILED (exit $rc) after ${runs:-?} executions"
    grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -10
    cp "$work"/crash-* "$work"/timeout-* "$work"/leak-* "$work"/oom-* . 2>/dev/null
    failed=1
  else
    echo "$name: ${runs:-0} executions in $seconds s, no crash, hang, leak or out-of-bounds access"
  fi
  total=$((total + ${runs:-0}))
done
echo "fuzz total: $total executions"
exit $failed
