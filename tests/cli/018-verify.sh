#!/usr/bin/env bash
# stablefs verify on an unmounted image: clean after writes (exit 0, every data byte of the
# maps checked); with bytes flipped in N random data blocks of several files (located with
# stablefs map) it reports exactly those blocks, with every path of each file, the file
# offset and both checksums, in text and JSON (exit 1); metadata damage names its block;
# bad input is one line and exit 8.
. "$(dirname "$0")/lib.sh"
img=$SCRATCH/v.img
mnt=$SCRATCH/mnt
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 256M
cp "$img" "$SCRATCH/fresh.img"
mount_fs "$img" "$mnt"
python3 - "$mnt" <<'PY' || fail "writing the files"
import os, sys
m = sys.argv[1]
os.mkdir(f"{m}/dir")
for name, size in (("a", 3 << 20), ("b", (1 << 20) + 123), ("dir/c", 2 << 20)):
    with open(f"{m}/{name}", "wb") as f:
        f.write(os.urandom(size))
os.link(f"{m}/a", f"{m}/dir/a-link")
fd = os.open(f"{m}/sparse", os.O_CREAT | os.O_WRONLY, 0o644)
os.pwrite(fd, os.urandom(8192), 0); os.pwrite(fd, os.urandom(4096), 5 << 20); os.close(fd)
PY
umount_fs "$mnt"
for f in a b dir/c sparse; do
  expect_exit 0 "$STABLEFS" map --image "$img" --json "/$f"
  printf '%s\n' "$OUT" >"$SCRATCH/map-${f//\//_}.json"
done
cp "$img" "$SCRATCH/pristine.img"

expect_exit 0 "$STABLEFS" verify "$img"
grep -q "0 data errors, 0 metadata errors, 0 unreadable blocks" <<<"$OUT" || fail "clean verify: $OUT"
expect_exit 0 "$STABLEFS" verify --json "$img"
printf '%s\n' "$OUT" >"$SCRATCH/clean.json"

# Flip one byte in each of 6 data blocks chosen at random from the maps.
python3 - "$SCRATCH" "$img" <<'PY' >"$SCRATCH/flips" || fail "choosing blocks"
import glob, json, random, sys
scratch, img = sys.argv[1], sys.argv[2]
clean = json.load(open(f"{scratch}/clean.json"))
blocks = []
total = 0
for path in sorted(glob.glob(f"{scratch}/map-*.json")):
    doc = json.load(open(path))
    m = doc["map"]
    bs = m["block_size"]
    for e in m["extents"]:
        if e["kind"] != "data":
            continue
        total += e["length"]
        for i in range(e["length"] // bs):
            blocks.append((doc["path"], e["offset"] + i * bs, e["device_block"] + i, bs))
if clean["data_bytes_checked"] != total or clean["exit_code"] != 0 or clean["errors"]:
    sys.exit(f"clean verify checked {clean['data_bytes_checked']} bytes, the maps hold {total}: {clean}")
rng = random.Random(1234)
chosen = rng.sample(blocks, 6)
with open(img, "r+b") as f:
    for path, off, dev, bs in chosen:
        at = dev * bs + rng.randrange(bs)
        f.seek(at); b = f.read(1); f.seek(at); f.write(bytes([b[0] ^ 0xff]))
        print(path, off, dev)
PY
expect_exit 1 "$STABLEFS" verify "$img"
text=$OUT
expect_exit 1 "$STABLEFS" verify --json "$img"
printf '%s\n' "$OUT" >"$SCRATCH/damaged.json"
python3 - "$SCRATCH/flips" "$SCRATCH/damaged.json" <<'PY' || fail "the report does not match the damage: $text"
import json, sys
flips = [l.split() for l in open(sys.argv[1])]
doc = json.load(open(sys.argv[2]))
names = {"/a": ["/a", "/dir/a-link"], "/b": ["/b"], "/dir/c": ["/dir/c"], "/sparse": ["/sparse"]}
got = sorted((e["device_block"], e["file_offset"], tuple(sorted(e["paths"]))) for e in doc["errors"])
want = sorted((int(dev), int(off), tuple(sorted(names[p]))) for p, off, dev in flips)
if got != want:
    sys.exit(f"FAIL: reported {got}, flipped {want}")
for e in doc["errors"]:
    if e["kind"] != "data" or e["length"] != 4096 or e["expected"] == e["found"] or len(e["expected"]) != 18:
        sys.exit(f"FAIL: error entry {e}")
if doc["data_errors"] != 6 or doc["metadata_errors"] != 0 or doc["unreadable_blocks"] != 0 or doc["exit_code"] != 1:
    sys.exit(f"FAIL: summary {doc}")
files = sorted(tuple(sorted(f["paths"])) for f in doc["files_with_permanent_errors"])
if files != sorted(set(tuple(sorted(names[p])) for p, _, _ in flips)):
    sys.exit(f"FAIL: files with permanent errors {files}")
PY
[ "$(grep -c 'data checksum mismatch in ' <<<"$text")" -eq 6 ] || fail "text report: $text"
grep -q "^files with permanent errors:" <<<"$text" || fail "text report lacks the file list: $text"
grep -q "6 data errors, 0 metadata errors, 0 unreadable blocks" <<<"$text" || fail "text summary: $text"

# Metadata damage: a byte of the filesystem tree's root leaf in a fresh image.
dstart=$("$STABLEFS" info "$SCRATCH/fresh.img" | sed -nE 's/^data area +[0-9]+ blocks from ([0-9]+)/\1/p')
[ -n "$dstart" ] || fail "no data area in info"
flip_byte "$SCRATCH/fresh.img" $((dstart * 4096 + 200))
expect_exit 1 "$STABLEFS" verify --json "$SCRATCH/fresh.img"
python3 -c '
import json, sys
doc = json.loads(sys.stdin.read())
hits = [e for e in doc["errors"] if e["kind"] == "metadata" and e.get("block") == int(sys.argv[1])]
sys.exit(0 if hits and hits[0]["holds"].startswith("filesystem tree") and doc["metadata_errors"] >= 1 else "FAIL: %s" % doc)' "$dstart" <<<"$OUT" ||
  fail "metadata damage in block $dstart not reported as such: $OUT"
expect_exit 1 "$STABLEFS" verify "$SCRATCH/fresh.img"
grep -q "metadata damage in block $dstart (filesystem tree" <<<"$OUT" || fail "text: $OUT"

# Without data checksums the data is still read: clean, and said so.
expect_exit 0 "$STABLEFS" mkfs -q "$SCRATCH/nocsum.img" --size 64M --no-data-csum
mount_fs "$SCRATCH/nocsum.img" "$mnt"
head -c 1M /dev/urandom >"$mnt/f" || fail "write"
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" verify "$SCRATCH/nocsum.img"
grep -q "data checksums are off" <<<"$OUT" || fail "no-csum verify: $OUT"

# Bad input: one line, exit 8.
head -c 16M /dev/urandom >"$SCRATCH/random.img"
for t in "$SCRATCH/random.img" "$SCRATCH/missing.img" "$SCRATCH"; do
  expect_exit 8 "$STABLEFS" verify "$t"
  expect_one_line_error "$STABLEFS" verify "$t"
done
cp "$SCRATCH/pristine.img" "$img"
mount_fs "$img" "$mnt"
expect_exit 8 "$STABLEFS" verify "$img"
grep -q "mounted" <<<"$OUT" || fail "a mounted image: $OUT"
expect_exit 8 "$STABLEFS" verify "$mnt"
grep -q "mounted stablefs" <<<"$OUT" || fail "a mountpoint: $OUT"
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" verify "$img"
echo ok
