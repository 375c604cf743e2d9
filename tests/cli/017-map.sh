#!/usr/bin/env bash
# stablefs map: a file's extents through the mount's daemon and offline from the image. The
# report covers the file without gaps; every data extent's device blocks hold exactly the
# file's bytes at that offset (read from the image); unwritten and hole pieces are where
# fallocate and sparse writes put them; the offline map of the unmounted image is the same;
# bad input is one line and exit 1.
. "$(dirname "$0")/lib.sh"
img=$SCRATCH/map.img
mnt=$SCRATCH/mnt
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 128M
mount_fs "$img" "$mnt"
python3 - "$mnt" <<'PY' || fail "writing the sparse file"
import os, sys
m = sys.argv[1]
fd = os.open(f"{m}/f", os.O_CREAT | os.O_RDWR, 0o644)
os.pwrite(fd, os.urandom(256 << 10), 0)
os.pwrite(fd, os.urandom(64 << 10), 1 << 20)
os.posix_fallocate(fd, 2 << 20, 128 << 10)  # unwritten, grows the size to its end
os.pwrite(fd, os.urandom(5000), (3 << 20) + 100)  # unaligned, past a hole
os.close(fd)
os.link(f"{m}/f", f"{m}/f-link")
PY
# The last close trims the speculative space of the appends (the kernel sends that close
# after close(2) returns): wait for it, bounded.
for _ in $(seq 100); do
  expect_exit 0 "$STABLEFS" map --json "$mnt/f"
  grep -q '"speculative": true' <<<"$OUT" || break
  sleep 0.1
done
grep -q '"speculative": true' <<<"$OUT" && fail "speculative space still mapped 10 s after the last close"
expect_exit 0 "$STABLEFS" map "$mnt/f"
text=$OUT
grep -qE '^ +0 +0 +[0-9]+ +[0-9]+ +[0-9]+  data$' <<<"$text" || fail "map text lacks the first data extent: $text"
grep -qE ' unwritten$' <<<"$text" || fail "map text lacks the unwritten extent: $text"
grep -qE '^ +- +262144 +786432 +- +192  hole$' <<<"$text" || fail "map text lacks the hole: $text"
expect_exit 0 "$STABLEFS" map --json "$mnt/f"
printf '%s\n' "$OUT" >"$SCRATCH/mounted.json"
expect_exit 0 "$STABLEFS" map --json "$mnt/f-link"
printf '%s\n' "$OUT" >"$SCRATCH/link.json"
python3 - "$mnt/f" "$img" "$SCRATCH/mounted.json" "$SCRATCH/link.json" <<'PY' || fail "map --json checks"
import json, os, sys
path, img, mounted, link = sys.argv[1:5]
doc = json.load(open(mounted))
m = doc["map"]
def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)
check(json.load(open(link))["map"] == m, "a hard link maps the same extents")
bs, size, ext = m["block_size"], m["size"], m["extents"]
check(size == os.stat(path).st_size and m["ino"] == os.stat(path).st_ino, "size and inode")
check(ext and ext[0]["offset"] == 0, "starts at 0")
for a, b in zip(ext, ext[1:]):
    check(a["offset"] + a["length"] == b["offset"], f"gap or overlap at {b['offset']}")
check(ext[-1]["offset"] + ext[-1]["length"] >= size, "covers the file")
kinds = [e["kind"] for e in ext]
check("unwritten" in kinds and "hole" in kinds and "data" in kinds, f"kinds {kinds}")
check(not any(e["speculative"] for e in ext), "no speculative space after close")
data = open(path, "rb").read()
dev = open(img, "rb")
checked = 0
for e in ext:
    if e["kind"] == "unwritten":
        check(2 << 20 >= e["offset"] and e["offset"] + e["length"] <= (2 << 20) + (128 << 10), f"unwritten at {e['offset']}")
    if e["kind"] != "data":
        check(data[e["offset"]:e["offset"] + e["length"]] == bytes(len(data[e["offset"]:e["offset"] + e["length"]])),
              f"{e['kind']} at {e['offset']} reads zeros")
        continue
    dev.seek(e["device_block"] * bs)
    on_device = dev.read(e["length"])
    want = data[e["offset"]:e["offset"] + e["length"]]
    check(on_device[:len(want)] == want, f"device block {e['device_block']} holds the file's bytes at {e['offset']}")
    checked += len(want)
check(checked == (256 << 10) + (64 << 10) + 5100, f"{checked} data bytes checked against the device")
PY
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" map --image "$img" --json /f
printf '%s\n' "$OUT" >"$SCRATCH/offline.json"
python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))["map"]; b = json.load(open(sys.argv[2]))["map"]
sys.exit(0 if a == b else "FAIL: offline map %s != mounted %s" % (b, a))' "$SCRATCH/mounted.json" "$SCRATCH/offline.json" ||
  fail "offline map differs from the mounted one"

# Bad input: one line, exit 1.
expect_one_line_error "$STABLEFS" map --image "$img" /missing
expect_one_line_error "$STABLEFS" map --image "$img" /
expect_one_line_error "$STABLEFS" map --image "$SCRATCH/none.img" /f
echo plain >"$SCRATCH/plain"
expect_one_line_error "$STABLEFS" map "$SCRATCH/plain"
grep -q "not on a stablefs mount" <<<"$ERR" || fail "a file elsewhere: $ERR"
mount_fs "$img" "$mnt"
expect_one_line_error "$STABLEFS" map "$mnt"
expect_one_line_error "$STABLEFS" map --image "$img" /f
grep -q "mounted" <<<"$ERR" || fail "a mounted image: $ERR"
umount_fs "$mnt"
echo "ok"
