// Free-space allocator: bitmap on disk, free-extent index in memory. See allocator.h.
#include "fs/meta/allocator.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstring>
#include <iterator>
#include <string>

#include "fs/format/endian.h"

namespace stablefs {

namespace {

// Appends rather than `"[" + std::to_string(...)`: GCC 12 at -O2 warns falsely (-Wrestrict,
// GCC bug 105329) on a literal plus a temporary string.
std::string range_str(uint64_t start, uint64_t end) {
  std::string s(1, '[');
  s += std::to_string(start);
  s += ", ";
  s += std::to_string(end);
  s += ')';
  return s;
}

// Bit helpers over the bits area of one bitmap block (the bytes after the header). lo and hi
// are bit offsets inside that area; the area is a whole number of 64-bit words.
uint64_t count_bits(const uint8_t* bits, uint64_t lo, uint64_t hi) {
  uint64_t n = 0;
  while (lo < hi && lo % 64 != 0) {
    n += (bits[lo / 8] >> (lo % 8)) & 1;
    ++lo;
  }
  while (hi - lo >= 64) {
    n += std::popcount(get64(bits + lo / 8));
    lo += 64;
  }
  while (lo < hi) {
    n += (bits[lo / 8] >> (lo % 8)) & 1;
    ++lo;
  }
  return n;
}

void fill_bits(uint8_t* bits, uint64_t lo, uint64_t hi, bool value) {
  auto set_one = [&](uint64_t i) {
    uint8_t mask = uint8_t(1u << (i % 8));
    if (value) bits[i / 8] |= mask;
    else bits[i / 8] &= uint8_t(~mask);
  };
  while (lo < hi && lo % 8 != 0) set_one(lo++);
  if (hi - lo >= 8) {
    uint64_t bytes = (hi - lo) / 8;
    std::memset(bits + lo / 8, value ? 0xff : 0x00, bytes);
    lo += bytes * 8;
  }
  while (lo < hi) set_one(lo++);
}

// Checks the layout fields the bitmap depends on. code is EINVAL at mkfs, EUCLEAN at mount.
Status check_geometry(const MetadataSpace& meta, const Superblock& sb, int code) {
  auto bad = [code](const std::string& why) { return Status::error(code, "free-space bitmap geometry: " + why); };
  if (sb.block_size != meta.block_size())
    return bad("block size " + std::to_string(sb.block_size) + " differs from the metadata space's " +
               std::to_string(meta.block_size()));
  if (sb.block_size < kMinBlockSize || sb.block_size > kMaxBlockSize || !std::has_single_bit(sb.block_size))
    return bad("block size " + std::to_string(sb.block_size) + " is invalid");
  uint64_t bits = bits_per_bitmap_block(sb.block_size);
  uint64_t needed = sb.total_blocks / bits + (sb.total_blocks % bits != 0);
  if (sb.bitmap_blocks != needed)
    return bad(std::to_string(sb.bitmap_blocks) + " bitmap blocks for " + std::to_string(sb.total_blocks) +
               " blocks (need " + std::to_string(needed) + ")");
  if (sb.bitmap_start == 0 || sb.bitmap_blocks > sb.data_start || sb.bitmap_start > sb.data_start - sb.bitmap_blocks)
    return bad("bitmap blocks " + range_str(sb.bitmap_start, sb.bitmap_start + sb.bitmap_blocks) +
               " are not inside the reserved area before data_start " + std::to_string(sb.data_start));
  if (sb.total_blocks < 2 || sb.data_start > sb.total_blocks - 2)
    return bad("data_start " + std::to_string(sb.data_start) + " leaves no data area in " +
               std::to_string(sb.total_blocks) + " blocks");
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ExtentSet

void ExtentSet::insert_raw(uint64_t start, uint64_t length) {
  by_start_.emplace(start, length);
  if (by_length_enabled_) by_length_.emplace(length, start);
  blocks_ += length;
}

void ExtentSet::erase_raw(std::map<uint64_t, uint64_t>::iterator it) {
  if (by_length_enabled_) by_length_.erase({it->second, it->first});
  blocks_ -= it->second;
  by_start_.erase(it);
}

void ExtentSet::add(uint64_t start, uint64_t length) {
  if (length == 0) return;
  assert(!intersects(start, length));
  uint64_t end = start + length;
  auto next = by_start_.lower_bound(start);
  if (next != by_start_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      erase_raw(prev);
    }
  }
  if (next != by_start_.end() && next->first == end) {
    end += next->second;
    erase_raw(next);
  }
  insert_raw(start, end - start);
}

void ExtentSet::subtract(uint64_t start, uint64_t length) {
  if (length == 0) return;
  uint64_t end = start + length;
  auto it = by_start_.upper_bound(start);
  if (it != by_start_.begin() && std::prev(it)->first + std::prev(it)->second > start) --it;
  while (it != by_start_.end() && it->first < end) {
    uint64_t s = it->first, e = it->first + it->second;
    auto next = std::next(it);
    erase_raw(it);
    if (s < start) insert_raw(s, start - s);
    if (e > end) insert_raw(end, e - end);  // ends the loop: starts at end
    it = next;
  }
}

bool ExtentSet::intersects(uint64_t start, uint64_t length) const {
  if (length == 0) return false;
  auto it = by_start_.upper_bound(start);
  if (it != by_start_.begin() && std::prev(it)->first + std::prev(it)->second > start) return true;
  return it != by_start_.end() && it->first - start < length;
}

Extent ExtentSet::find(uint64_t block) const {
  auto it = by_start_.upper_bound(block);
  if (it == by_start_.begin()) return {};
  --it;
  if (it->first + it->second <= block) return {};
  return {it->first, it->second};
}

void ExtentSet::clear() {
  by_start_.clear();
  by_length_.clear();
  blocks_ = 0;
}

// ---------------------------------------------------------------------------------------------
// Allocator

Allocator::Allocator(MetadataSpace& meta, const Superblock& sb)
    : meta_(meta),
      total_(sb.total_blocks),
      bitmap_start_(sb.bitmap_start),
      data_start_(sb.data_start),
      bits_per_block_(bits_per_bitmap_block(sb.block_size)) {}

Status Allocator::format(MetadataSpace& meta, const Superblock& sb) {
  SFS_TRY(check_geometry(meta, sb, EINVAL));
  uint64_t bits = bits_per_bitmap_block(sb.block_size);
  for (uint64_t k = 0; k < sb.bitmap_blocks; ++k) {
    BufferRef buf = meta.create_fixed(sb.bitmap_start + k, BlockType::kBitmap);
    uint8_t* area = buf->data() + kHeaderSize;
    uint64_t base = k * bits;
    // In use: [0, data_start) and [total_blocks - 1, end of the map).
    auto mark = [&](uint64_t from, uint64_t to) {
      uint64_t lo = std::max(from, base), hi = std::min(to, base + bits);
      if (lo < hi) fill_bits(area, lo - base, hi - base, true);
    };
    mark(0, sb.data_start);
    mark(sb.total_blocks - 1, sb.bitmap_blocks * bits);
  }
  return {};
}

Result<std::unique_ptr<Allocator>> Allocator::load(MetadataSpace& meta, const Superblock& sb) {
  SFS_TRY(check_geometry(meta, sb, EUCLEAN));
  std::unique_ptr<Allocator> a(new Allocator(meta, sb));
  const uint64_t bits = a->bits_per_block_;
  const uint64_t total = sb.total_blocks;
  const uint64_t words = bits / 64;  // (block_size - 48) is a multiple of 8 bytes
  uint64_t run_start = 0;
  bool in_run = false;
  auto corrupt = [&](uint64_t bitmap_block, const std::string& why) {
    return Status::error(EUCLEAN, "bitmap block " + std::to_string(bitmap_block) + ": " + why);
  };
  auto block_of = [&](uint64_t bit) { return sb.bitmap_start + bit / bits; };
  // Records the free run [s, e); e <= total because bits past the end read as in use.
  auto end_run = [&](uint64_t s, uint64_t e) -> Status {
    if (s < sb.data_start)
      return corrupt(block_of(s), "reserved block " + std::to_string(s) + " is marked free");
    if (e > total - 1)
      return corrupt(block_of(total - 1), "backup superblock " + std::to_string(total - 1) + " is marked free");
    a->clear_.add(s, e - s);
    return {};
  };

  for (uint64_t k = 0; k < sb.bitmap_blocks; ++k) {
    uint64_t blocknr = sb.bitmap_start + k;
    SFS_ASSIGN(BufferRef buf, meta.read(blocknr, BlockType::kBitmap));
    if (buf->bytes.size() < sb.block_size)
      return corrupt(blocknr, "buffer of " + std::to_string(buf->bytes.size()) + " bytes is short");
    const uint8_t* area = buf->data() + kHeaderSize;
    uint64_t base = k * bits;
    for (uint64_t j = 0; j < words; ++j) {
      uint64_t w = get64(area + j * 8);
      uint64_t b = base + j * 64;
      if (b >= total) {
        if (w != ~0ull) return corrupt(blocknr, "bits past the last block " + std::to_string(total - 1) + " are not set");
        continue;
      }
      if (total - b < 64) {
        uint64_t past_end = ~0ull << (total - b);
        if (~w & past_end)
          return corrupt(blocknr, "bits past the last block " + std::to_string(total - 1) + " are not set");
        w |= past_end;
      }
      if (w == ~0ull) {
        if (in_run) {
          SFS_TRY(end_run(run_start, b));
          in_run = false;
        }
        continue;
      }
      if (w == 0) {
        if (!in_run) {
          run_start = b;
          in_run = true;
        }
        continue;
      }
      unsigned pos = 0;
      while (pos < 64) {
        if (in_run) {
          uint64_t x = w >> pos;  // next set bit ends the run
          if (x == 0) break;
          pos += unsigned(std::countr_zero(x));
          SFS_TRY(end_run(run_start, b + pos));
          in_run = false;
        } else {
          uint64_t x = ~w >> pos;  // next clear bit starts one
          if (x == 0) break;
          pos += unsigned(std::countr_zero(x));
          run_start = b + pos;
          in_run = true;
        }
      }
    }
  }
  if (in_run) SFS_TRY(end_run(run_start, total));
  for (const auto& [s, len] : a->clear_.by_start()) a->avail_.add(s, len);
  return a;
}

Result<std::vector<BufferRef>> Allocator::read_bitmaps(uint64_t start, uint64_t end) {
  std::vector<BufferRef> bufs;
  uint64_t first = start / bits_per_block_, last = (end - 1) / bits_per_block_;
  bufs.reserve(last - first + 1);
  for (uint64_t k = first; k <= last; ++k) {
    SFS_ASSIGN(BufferRef buf, meta_.read(bitmap_start_ + k, BlockType::kBitmap));
    if (buf->bytes.size() < meta_.block_size())
      return Status::error(EIO, "bitmap block " + std::to_string(bitmap_start_ + k) + ": short buffer");
    bufs.push_back(std::move(buf));
  }
  return bufs;
}

uint64_t Allocator::count_set(const std::vector<BufferRef>& bufs, uint64_t start, uint64_t end) const {
  uint64_t first = start / bits_per_block_, n = 0;
  for (size_t i = 0; i < bufs.size(); ++i) {
    uint64_t base = (first + i) * bits_per_block_;
    uint64_t lo = std::max(start, base) - base, hi = std::min(end, base + bits_per_block_) - base;
    n += count_bits(bufs[i]->data() + kHeaderSize, lo, hi);
  }
  return n;
}

void Allocator::write_bits(const std::vector<BufferRef>& bufs, uint64_t start, uint64_t end, bool value) {
  uint64_t first = start / bits_per_block_;
  for (size_t i = 0; i < bufs.size(); ++i) {
    uint64_t base = (first + i) * bits_per_block_;
    uint64_t lo = std::max(start, base) - base, hi = std::min(end, base + bits_per_block_) - base;
    uint8_t* area = bufs[i]->data() + kHeaderSize;
    if (count_bits(area, lo, hi) == (value ? hi - lo : 0)) continue;  // leave unchanged blocks clean
    meta_.modify(bufs[i]);
    fill_bits(area, lo, hi, value);
  }
}

Status Allocator::mark_allocated(uint64_t start, uint64_t length) {
  SFS_ASSIGN(auto bufs, read_bitmaps(start, start + length));
  if (uint64_t set = count_set(bufs, start, start + length); set != 0)
    return Status::error(EUCLEAN, "bitmap: " + std::to_string(set) + " blocks of " +
                                      range_str(start, start + length) + " are in use but indexed as free");
  write_bits(bufs, start, start + length, true);
  return {};
}

Result<Extent> Allocator::pick(uint64_t goal, uint64_t want, uint64_t min_len) const {
  if (min_len == 0 || min_len > want)
    return Status::error(EINVAL, "allocate: bad length range " + std::to_string(min_len) + ".." + std::to_string(want));
  Extent pick;
  if (goal != 0 && goal < total_) {
    const auto& m = avail_.by_start();
    auto it = m.upper_bound(goal);
    if (it != m.begin()) {
      auto prev = std::prev(it);
      uint64_t end = prev->first + prev->second;
      if (end > goal && end - goal >= want) pick = {goal, want};
    }
    for (int n = 0; pick.length == 0 && it != m.end() && n < kGoalSearchExtents; ++it, ++n)
      if (it->second >= want) pick = {it->first, want};
  }
  if (pick.length == 0) {
    const auto& by_len = avail_.by_length();
    auto it = by_len.lower_bound({want, 0});
    if (it != by_len.end()) {
      pick = {it->second, want};
    } else if (!by_len.empty() && by_len.rbegin()->first >= min_len) {
      pick = {by_len.rbegin()->second, by_len.rbegin()->first};  // < want
    } else {
      uint64_t largest = by_len.empty() ? 0 : by_len.rbegin()->first;
      return Status::error(ENOSPC, "no free extent of " + std::to_string(min_len) + " blocks (" +
                                       std::to_string(avail_.blocks()) + " allocatable, largest " +
                                       std::to_string(largest) + ")");
    }
  }
  return pick;
}

Result<Extent> Allocator::allocate(uint64_t goal, uint64_t want, uint64_t min_len) {
  SFS_ASSIGN(Extent e, pick(goal, want, min_len));
  SFS_TRY(mark_allocated(e.start, e.length));
  avail_.subtract(e.start, e.length);
  clear_.subtract(e.start, e.length);
  return e;
}

Result<uint64_t> Allocator::allocate_highest() {
  const auto& m = avail_.by_start();
  if (m.empty()) return Status::error(ENOSPC, "no allocatable block left");
  const auto last = std::prev(m.end());
  const uint64_t block = last->first + last->second - 1;
  SFS_TRY(mark_allocated(block, 1));
  avail_.subtract(block, 1);
  clear_.subtract(block, 1);
  return block;
}

Result<Extent> Allocator::reserve(uint64_t goal, uint64_t want, uint64_t min_len) {
  SFS_ASSIGN(Extent e, pick(goal, want, min_len));
  avail_.subtract(e.start, e.length);
  return e;
}

Status Allocator::claim(Extent e) {
  if (e.length == 0 || e.start < data_start_ || e.start >= total_ - 1 || e.length > total_ - 1 - e.start ||
      avail_.intersects(e.start, e.length) || !clear_.contains(e.start) || clear_.find(e.start).end() < e.end())
    return Status::error(EINVAL, "claim of blocks " + range_str(e.start, e.end()) + " that are not reserved");
  SFS_TRY(mark_allocated(e.start, e.length));
  clear_.subtract(e.start, e.length);
  return {};
}

void Allocator::unreserve(Extent e) {
  if (e.length) avail_.add(e.start, e.length);
}

Status Allocator::free(Extent e, Reuse when) {
  if (e.length == 0) return Status::error(EINVAL, "free of an empty extent at block " + std::to_string(e.start));
  if (e.start >= total_ || e.length > total_ - e.start)
    return Status::error(EUCLEAN, "free of blocks " + range_str(e.start, e.start + e.length) +
                                      " past the end of the device (" + std::to_string(total_) + " blocks)");
  if (e.start < data_start_ || e.end() > total_ - 1)
    return Status::error(EUCLEAN, "free of blocks " + range_str(e.start, e.end()) + " that include reserved blocks");
  if (clear_.intersects(e.start, e.length))
    return Status::error(EUCLEAN, "free of blocks " + range_str(e.start, e.end()) + " that are not all in use");
  SFS_ASSIGN(auto bufs, read_bitmaps(e.start, e.end()));
  if (uint64_t set = count_set(bufs, e.start, e.end()); set != e.length)
    return Status::error(EUCLEAN, "bitmap: " + std::to_string(e.length - set) + " blocks of " +
                                      range_str(e.start, e.end()) + " are free but indexed as in use");
  write_bits(bufs, e.start, e.end(), false);
  clear_.add(e.start, e.length);
  auto& pending = when == Reuse::kAfterCommit ? pending_commit_ : pending_txn_ckpt_;
  if (!pending.empty() && pending.back().end() == e.start) pending.back().length += e.length;
  else pending.push_back(e);
  return {};
}

uint64_t Allocator::awaiting_reuse_blocks() const {
  uint64_t n = 0;
  for (const auto* list : {&pending_commit_, &pending_txn_ckpt_, &pending_checkpoint_})
    for (const Extent& e : *list) n += e.length;
  return n;
}

void Allocator::release(std::vector<Extent>& pending) {
  for (const Extent& e : pending) avail_.add(e.start, e.length);
  if (pending.capacity() > 1024) std::vector<Extent>().swap(pending);
  else pending.clear();
}

void Allocator::transaction_committed() {
  release(pending_commit_);
  pending_checkpoint_.insert(pending_checkpoint_.end(), pending_txn_ckpt_.begin(), pending_txn_ckpt_.end());
  pending_txn_ckpt_.clear();
}

void Allocator::checkpointed() { release(pending_checkpoint_); }

bool Allocator::in_use(uint64_t block) const { return block >= total_ || !clear_.contains(block); }

std::vector<Extent> Allocator::free_extents() const {
  std::vector<Extent> out;
  out.reserve(clear_.extents());
  for (const auto& [s, len] : clear_.by_start()) out.push_back({s, len});
  return out;
}

Status Allocator::set_in_use(Extent e, bool in_use) {
  if (e.length == 0 || e.start >= total_ || e.length > total_ - e.start)
    return Status::error(EINVAL, "set_in_use: blocks " + range_str(e.start, e.start + e.length) +
                                     " are not inside the device (" + std::to_string(total_) + " blocks)");
  if (!in_use && (e.start < data_start_ || e.end() > total_ - 1))
    return Status::error(EINVAL, "set_in_use: blocks " + range_str(e.start, e.end()) + " include reserved blocks");
  SFS_ASSIGN(auto bufs, read_bitmaps(e.start, e.end()));
  write_bits(bufs, e.start, e.end(), in_use);
  if (in_use) {
    clear_.subtract(e.start, e.length);
    avail_.subtract(e.start, e.length);
    for (auto* pending : {&pending_commit_, &pending_txn_ckpt_, &pending_checkpoint_}) {
      std::vector<Extent> kept;
      for (const Extent& p : *pending) {
        if (p.end() <= e.start || p.start >= e.end()) {
          kept.push_back(p);
          continue;
        }
        if (p.start < e.start) kept.push_back({p.start, e.start - p.start});
        if (p.end() > e.end()) kept.push_back({e.end(), p.end() - e.end()});
      }
      pending->swap(kept);
    }
  } else {
    // Add the in-use gaps of e to both sets; blocks already clear keep their state.
    uint64_t pos = e.start;
    while (pos < e.end()) {
      Extent f = clear_.find(pos);
      if (f.length != 0) {
        pos = f.end();
        continue;
      }
      auto next = clear_.by_start().upper_bound(pos);
      uint64_t gap_end = next == clear_.by_start().end() ? e.end() : std::min(e.end(), next->first);
      clear_.add(pos, gap_end - pos);
      avail_.add(pos, gap_end - pos);
      pos = gap_end;
    }
  }
  return {};
}

}  // namespace stablefs
