#!/usr/bin/env bash
# A single flipped byte in any live metadata block (both superblocks, the journal header,
# every bitmap block, every B+tree node) is reported by fsck -n with its block number and a
# non-zero exit; repairable damage is repaired by fsck.
. "$(dirname "$0")/lib.sh"
img=$SCRATCH/b.img
"$STABLEFS" mkfs -q "$img" --size 64M || fail "mkfs failed"
bs=4096
total=$(info_field "$img" "total blocks")
info=$("$STABLEFS" info "$img")
jstart=$(sed -nE 's/^journal +[0-9]+ blocks at ([0-9]+).*/\1/p' <<<"$info")
bstart=$(sed -nE 's/^bitmaps +[0-9]+ blocks at ([0-9]+)/\1/p' <<<"$info")
nbitmaps=$(info_field "$img" "bitmaps")
dstart=$(sed -nE 's/^data area +[0-9]+ blocks from ([0-9]+)/\1/p' <<<"$info")
[ -n "$total" ] && [ -n "$jstart" ] && [ -n "$bstart" ] && [ -n "$dstart" ] || fail "could not read the geometry"
# The two empty trees' root leaves are the first data blocks allocated.
blocks=(0 "$jstart" $(seq "$bstart" $((bstart + nbitmaps - 1))) "$dstart" $((dstart + 1)) $((total - 1)))
cp "$img" "$SCRATCH/pristine.img"
for b in "${blocks[@]}"; do
  for off in 3 40 200 4000; do
    cp "$SCRATCH/pristine.img" "$img"
    flip_byte "$img" $(( b * bs + off ))
    OUT=$("$STABLEFS" fsck -n "$img" 2>&1); rc=$?
    [ "$rc" -ne 0 ] || fail "flipped byte $off of block $b not detected"
    grep -q "block $b\b" <<<"$OUT" || fail "fsck did not name block $b: $OUT"
  done
done
# Superblock copies are repaired from each other.
for b in 0 $((total - 1)); do
  cp "$SCRATCH/pristine.img" "$img"
  flip_byte "$img" $(( b * bs + 100 ))
  expect_exit 1 "$STABLEFS" fsck "$img"
  expect_exit 0 "$STABLEFS" fsck -n "$img"
done
exit 0
