// Fuzz target: a whole filesystem image that lies — fsck, then a read-only mount and a walk of
// everything it holds, over a small image changed by the input. The image is made once: mkfs,
// then directories, files, a symlink, small and chunked xattrs, hard links and an orphan (a file
// unlinked while held), committed to the journal but not written home, so opening it replays
// journal transactions and meets the orphan list. The input is a list of patches
// (flags u8, offset u24, length u8, bytes); with flag bit 0 every patched metadata block is
// sealed again (header and checksum made right for where it lies), so the damage reaches the
// B+tree, journal, bitmap and item parsers behind the checksums; bit 1 runs fsck's repair too.
// Whatever the image says: no crash, no hang, no read or write outside the device.
#include <sys/stat.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <vector>

#include "bounce/memory_device.h"
#include "fs/format/format.h"
#include "fs/namespace/filesystem.h"
#include "fs/tools/fsck.h"
#include "fs/tools/mkfs.h"

using namespace stablefs;

namespace {

constexpr uint64_t kImageBytes = 4u << 20;

struct Pristine {
  std::vector<uint8_t> image;
  Superblock sb;
};

// The image every input starts from (see the file comment). Aborts if it cannot be made: the
// target would test nothing.
const Pristine& pristine() {
  static const Pristine p = [] {
    MemoryDevice dev(kImageBytes, "fuzz");
    Result<Superblock> sb = make_filesystem(dev, {});
    if (!sb.ok()) __builtin_trap();
    Result<std::unique_ptr<Filesystem>> fs = Filesystem::open(dev, {});
    if (!fs.ok()) __builtin_trap();
    Filesystem& f = **fs;
    auto d = f.mkdir(kRootIno, "dir", 0755, {});
    auto a = f.mknod(kRootIno, "a", S_IFREG | 0644, 0, {});
    auto b = d.ok() ? f.mknod(d->ino, "b", S_IFREG | 0600, 0, {}) : d;
    if (!a.ok() || !b.ok()) __builtin_trap();
    (void)f.symlink(d->ino, "link", "../a", {});
    (void)f.link(a->ino, d->ino, "a-again");
    (void)f.mknod(kRootIno, "fifo", S_IFIFO | 0644, 0, {});
    const std::vector<uint8_t> small(40, 'x'), large(3000, 'y');
    (void)f.setxattr(a->ino, "user.small", small, 0);
    (void)f.setxattr(b->ino, "user.large", large, 0);
    auto o = f.mknod(kRootIno, "orphan", S_IFREG | 0644, 0, {});
    if (o.ok()) {
      f.acquire_inode(o->ino);
      (void)f.unlink(kRootIno, "orphan");
    }
    for (int i = 0; i < 40; ++i) (void)f.mknod(d->ino, "f" + std::to_string(i), S_IFREG | 0644, 0, {});
    if (!f.sync().ok()) __builtin_trap();
    Pristine out{dev.snapshot(), *sb};  // committed, not written home: mount replays it
    return out;
  }();
  return p;
}

// Seals the metadata block at blocknr again when its header names a metadata block type.
void reseal(std::vector<uint8_t>& image, uint64_t blocknr, const Superblock& sb) {
  const size_t bs = sb.block_size;
  if ((blocknr + 1) * bs > image.size()) return;
  std::span<uint8_t> block(image.data() + blocknr * bs, bs);
  const BlockType t = header_type(block);
  if (t < BlockType::kSuperblock || t > BlockType::kBtreeNode) return;
  stamp_block(block, t, blocknr, sb.uuid, header_seq(block));
}

// Everything a read-only mount shows, depth- and count-bounded (a lying image may loop).
void walk(Filesystem& fs, uint64_t dir, int depth, size_t& budget) {
  if (depth > 8) return;
  std::vector<DirEntry> entries;
  (void)fs.readdir(dir, 0, [&](const DirEntry& e) {
    entries.push_back(e);
    return entries.size() < 200 && budget > 0;
  });
  for (const DirEntry& e : entries) {
    if (budget == 0) return;
    --budget;
    (void)fs.lookup(dir, e.name);
    Result<Inode> in = fs.getattr(e.ino);
    if (!in.ok()) continue;
    (void)fs.listxattr(e.ino);
    (void)fs.getxattr(e.ino, "user.small");
    (void)fs.getxattr(e.ino, "user.large");
    if (S_ISLNK(in->rec.mode)) (void)fs.readlink(e.ino);
    if (S_ISDIR(in->rec.mode) && e.ino != dir) walk(fs, e.ino, depth + 1, budget);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Pristine& p = pristine();
  std::vector<uint8_t> image = p.image;
  std::set<uint64_t> touched;
  bool seal = false, repair = false;
  for (size_t i = 0; i + 5 <= size;) {
    const uint8_t flags = data[i];
    const uint64_t offset = (uint64_t{data[i + 1]} | uint64_t{data[i + 2]} << 8 | uint64_t{data[i + 3]} << 16) % image.size();
    const size_t len = std::min<size_t>({data[i + 4], size - (i + 5), image.size() - offset});
    std::memcpy(image.data() + offset, data + i + 5, len);
    for (uint64_t b = offset / p.sb.block_size; b <= (offset + len) / p.sb.block_size; ++b) touched.insert(b);
    seal |= flags & 1;
    repair |= flags & 2;
    i += 5 + len;
  }
  if (seal)
    for (uint64_t b : touched) reseal(image, b, p.sb);
  // One device throughout: fsck -n never writes; repair (when asked) changes what the mount
  // then sees, as it would for a user.
  MemoryDevice dev(std::move(image), "fuzz");
  (void)run_fsck(dev, {});
  if (repair) (void)run_fsck(dev, {.repair = true});
  Result<std::unique_ptr<Filesystem>> fs = Filesystem::open(dev, {.read_only = true});
  if (fs.ok()) {
    size_t budget = 2000;
    walk(**fs, kRootIno, 0, budget);
    (void)(*fs)->statfs();
  }
  return 0;
}
