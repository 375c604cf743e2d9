#include "fs/format/fs_items.h"

#include <cstring>

#include "bounce/checksum.h"
#include "fs/format/endian.h"

namespace stablefs {
namespace {

Status bad_item(const Key& key, const std::string& why) {
  return Status::error(EUCLEAN, "item " + key.to_string() + ": " + why);
}

void put_time(uint8_t* p, const Timespec& t) {
  put64(p, static_cast<uint64_t>(t.sec));
  put32(p + 8, t.nsec);
}
Timespec get_time(const uint8_t* p) { return {static_cast<int64_t>(get64(p)), get32(p + 8)}; }

}  // namespace

uint64_t name_slot_base(std::string_view name) {
  constexpr uint64_t kHashMask = (1ull << 55) - 1;
  uint64_t h = xxh3_64(name.data(), name.size(), 0x5374626c);  // fixed seed: on-disk value
  return ((h & kHashMask) + 1) << 8;
}

// Inode record: 0 mode u32, 4 uid u32, 8 gid u32, 12 nlink u32, 16 size u64, 24 blocks u64,
// 32 rdev u64, 40 generation u64, 48 parent u64, 56 flags u32, 60 reserved u32,
// 64 atime, 76 mtime, 88 ctime, 100 btime (each i64 sec + u32 nsec), 112..128 reserved.
std::vector<uint8_t> InodeRecord::encode() const {
  std::vector<uint8_t> v(kSize, 0);
  uint8_t* p = v.data();
  put32(p + 0, mode);
  put32(p + 4, uid);
  put32(p + 8, gid);
  put32(p + 12, nlink);
  put64(p + 16, size);
  put64(p + 24, blocks);
  put64(p + 32, rdev);
  put64(p + 40, generation);
  put64(p + 48, parent);
  put32(p + 56, flags);
  put_time(p + 64, atime);
  put_time(p + 76, mtime);
  put_time(p + 88, ctime);
  put_time(p + 100, btime);
  return v;
}

Result<InodeRecord> InodeRecord::decode(std::span<const uint8_t> v, uint64_t ino) {
  if (v.size() != kSize)
    return Status::error(EUCLEAN, "inode " + std::to_string(ino) + ": record has size " + std::to_string(v.size()));
  const uint8_t* p = v.data();
  InodeRecord r;
  r.mode = get32(p + 0);
  r.uid = get32(p + 4);
  r.gid = get32(p + 8);
  r.nlink = get32(p + 12);
  r.size = get64(p + 16);
  r.blocks = get64(p + 24);
  r.rdev = get64(p + 32);
  r.generation = get64(p + 40);
  r.parent = get64(p + 48);
  r.flags = get32(p + 56);
  r.atime = get_time(p + 64);
  r.mtime = get_time(p + 76);
  r.ctime = get_time(p + 88);
  r.btime = get_time(p + 100);
  for (const Timespec* t : {&r.atime, &r.mtime, &r.ctime, &r.btime})
    if (t->nsec >= 1000000000u) return Status::error(EUCLEAN, "inode " + std::to_string(ino) + ": bad timestamp");
  return r;
}

// Dirent: 0 ino u64, 8 dtype u8, 9 namelen u16, 11 name.
std::vector<uint8_t> DirentRecord::encode() const {
  std::vector<uint8_t> v(11 + name.size());
  put64(v.data(), ino);
  v[8] = dtype;
  put16(v.data() + 9, static_cast<uint16_t>(name.size()));
  std::memcpy(v.data() + 11, name.data(), name.size());
  return v;
}

Result<DirentRecord> DirentRecord::decode(std::span<const uint8_t> v, const Key& key) {
  if (v.size() < 11) return bad_item(key, "directory entry too short");
  DirentRecord r;
  r.ino = get64(v.data());
  r.dtype = v[8];
  uint16_t len = get16(v.data() + 9);
  if (len == 0 || len > 255 || v.size() != 11u + len) return bad_item(key, "directory entry name length is wrong");
  r.name.assign(reinterpret_cast<const char*>(v.data() + 11), len);
  if (r.name.find('/') != std::string::npos || r.name.find('\0') != std::string::npos || r.name == "." || r.name == "..")
    return bad_item(key, "directory entry has an invalid name");
  return r;
}

// Extent: 0 dev_block u64, 8 nblocks u64, 16 flags u32.
std::vector<uint8_t> ExtentRecord::encode() const {
  std::vector<uint8_t> v(kSize);
  put64(v.data(), dev_block);
  put64(v.data() + 8, nblocks);
  put32(v.data() + 16, flags);
  return v;
}

Result<ExtentRecord> ExtentRecord::decode(std::span<const uint8_t> v, const Key& key) {
  if (v.size() != kSize) return bad_item(key, "extent record has the wrong size");
  ExtentRecord r{get64(v.data()), get64(v.data() + 8), get32(v.data() + 16)};
  if (r.nblocks == 0) return bad_item(key, "extent of zero blocks");
  if (r.flags & ~(kExtentUnwritten | kExtentSpeculative)) return bad_item(key, "extent has unknown flags");
  if ((r.flags & kExtentSpeculative) && !(r.flags & kExtentUnwritten))
    return bad_item(key, "speculative extent is not unwritten");
  return r;
}

// Xattr: 0 namelen u8, 1 valuelen u32, 5 name, value.
std::vector<uint8_t> XattrRecord::encode() const {
  const size_t body = value_id ? 8 : value.size();
  std::vector<uint8_t> v(5 + name.size() + body);
  v[0] = static_cast<uint8_t>(name.size());
  put32(v.data() + 1, value_id ? (kChunkedFlag | chunked_size) : static_cast<uint32_t>(value.size()));
  std::memcpy(v.data() + 5, name.data(), name.size());
  if (value_id) put64(v.data() + 5 + name.size(), value_id);
  else if (!value.empty()) std::memcpy(v.data() + 5 + name.size(), value.data(), value.size());
  return v;
}

Result<XattrRecord> XattrRecord::decode(std::span<const uint8_t> v, const Key& key) {
  if (v.size() < 5) return bad_item(key, "xattr too short");
  size_t nlen = v[0];
  const uint32_t len_field = get32(v.data() + 1);
  const bool chunked = len_field & kChunkedFlag;
  size_t vlen = chunked ? 8 : len_field;
  if (nlen == 0 || v.size() != 5 + nlen + vlen) return bad_item(key, "xattr lengths are wrong");
  XattrRecord r;
  r.name.assign(reinterpret_cast<const char*>(v.data() + 5), nlen);
  if (chunked) {
    r.value_id = get64(v.data() + 5 + nlen);
    r.chunked_size = len_field & ~kChunkedFlag;
    if (r.value_id == 0 || r.value_id > kXattrMaxValueId || r.chunked_size == 0)
      return bad_item(key, "xattr value in chunks with a bad value id or size");
  } else {
    r.value.assign(v.begin() + 5 + static_cast<long>(nlen), v.end());
  }
  return r;
}

// Orphan: 0 generation u64.
std::vector<uint8_t> OrphanRecord::encode() const {
  std::vector<uint8_t> v(kSize);
  put64(v.data(), generation);
  return v;
}

Result<OrphanRecord> OrphanRecord::decode(std::span<const uint8_t> v, const Key& key) {
  if (v.size() != kSize) return bad_item(key, "orphan record has the wrong size");
  if (key.objectid != kOrphanListObjectid || key.offset == 0) return bad_item(key, "orphan item outside the orphan list");
  return OrphanRecord{get64(v.data())};
}

// Scrub state: 0 state u32, 4 reserved u32 (0), then next_ino, next_offset, bytes_checked,
// data_errors, unreadable, transients, rate_limit, started_ns, ended_ns, elapsed_ns (u64).
std::vector<uint8_t> ScrubStateRecord::encode() const {
  std::vector<uint8_t> v(kSize);
  put32(v.data(), state);
  const uint64_t fields[] = {next_ino,  next_offset, bytes_checked, data_errors, unreadable,
                             transients, rate_limit, started_ns,    ended_ns,    elapsed_ns};
  for (size_t i = 0; i < 10; ++i) put64(v.data() + 8 + 8 * i, fields[i]);
  return v;
}

Result<ScrubStateRecord> ScrubStateRecord::decode(std::span<const uint8_t> v, const Key& key) {
  if (v.size() != kSize) return bad_item(key, "scrub state has the wrong size");
  if (key != ScrubStateRecord::key()) return bad_item(key, "scrub state item at the wrong key");
  ScrubStateRecord r;
  r.state = get32(v.data());
  if (r.state < kRunning || r.state > kCanceled || get32(v.data() + 4) != 0)
    return bad_item(key, "scrub state has an unknown state");
  uint64_t* fields[] = {&r.next_ino,   &r.next_offset, &r.bytes_checked, &r.data_errors, &r.unreadable,
                        &r.transients, &r.rate_limit,  &r.started_ns,    &r.ended_ns,    &r.elapsed_ns};
  for (size_t i = 0; i < 10; ++i) *fields[i] = get64(v.data() + 8 + 8 * i);
  return r;
}

// Checksum group: 0 present u64, 8 sums u64[64].
std::vector<uint8_t> CsumGroup::encode() const {
  std::vector<uint8_t> v(kSize);
  put64(v.data(), present);
  for (size_t i = 0; i < kCsumGroupBlocks; ++i) put64(v.data() + 8 + 8 * i, sums[i]);
  return v;
}

Result<CsumGroup> CsumGroup::decode(std::span<const uint8_t> v, const Key& key) {
  if (v.size() != kSize) return bad_item(key, "checksum group has the wrong size");
  CsumGroup g;
  g.present = get64(v.data());
  for (size_t i = 0; i < kCsumGroupBlocks; ++i) g.sums[i] = get64(v.data() + 8 + 8 * i);
  return g;
}

}  // namespace stablefs
