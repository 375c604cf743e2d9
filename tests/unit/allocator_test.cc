// Tests of the free-space allocator (fs/meta/allocator.h) over an in-memory metadata space.
#include "fs/meta/allocator.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <random>
#include <vector>

#include "fs/format/endian.h"
#include "support/memory_metadata.h"

namespace stablefs {
namespace {

using test::MemoryMetadata;

// Geometry as mkfs lays it out.
Superblock make_sb(uint64_t total, uint32_t block_size = 4096, uint64_t journal_blocks = 64) {
  Superblock sb;
  sb.block_size = block_size;
  sb.total_blocks = total;
  sb.journal_start = 1;
  sb.journal_blocks = journal_blocks;
  sb.bitmap_start = sb.journal_start + journal_blocks;
  uint64_t bits = bits_per_bitmap_block(block_size);
  sb.bitmap_blocks = (total + bits - 1) / bits;
  sb.data_start = sb.bitmap_start + sb.bitmap_blocks;
  return sb;
}

struct Fs {
  explicit Fs(uint64_t total, uint32_t block_size = 4096, uint64_t journal_blocks = 64)
      : meta(block_size), sb(make_sb(total, block_size, journal_blocks)) {
    REQUIRE(Allocator::format(meta, sb).ok());
    auto r = Allocator::load(meta, sb);
    REQUIRE(r.ok());
    alloc = std::move(r).value();
  }
  uint64_t data_blocks() const { return sb.total_blocks - sb.data_start - 1; }
  // The bitmap block and bit of device block b.
  uint8_t* bit_byte(uint64_t b, uint8_t* mask) {
    uint64_t bits = bits_per_bitmap_block(sb.block_size);
    auto buf = meta.read(sb.bitmap_start + b / bits, BlockType::kBitmap);
    REQUIRE(buf.ok());
    *mask = uint8_t(1u << (b % 8));
    return (*buf)->data() + kHeaderSize + (b % bits) / 8;
  }
  bool disk_bit(uint64_t b) {
    uint8_t mask;
    return *bit_byte(b, &mask) & mask;
  }
  void set_disk_bit(uint64_t b, bool v) {
    uint8_t mask;
    uint8_t* p = bit_byte(b, &mask);
    *p = v ? uint8_t(*p | mask) : uint8_t(*p & ~mask);
  }
  // The whole map, every bitmap block read once.
  std::vector<bool> disk_bits() {
    uint64_t bits = bits_per_bitmap_block(sb.block_size);
    std::vector<bool> out(sb.bitmap_blocks * bits);
    for (uint64_t k = 0; k < sb.bitmap_blocks; ++k) {
      auto buf = meta.read(sb.bitmap_start + k, BlockType::kBitmap);
      REQUIRE(buf.ok());
      const uint8_t* area = (*buf)->data() + kHeaderSize;
      for (uint64_t i = 0; i < bits; ++i) out[k * bits + i] = (area[i / 8] >> (i % 8)) & 1;
    }
    return out;
  }

  MemoryMetadata meta;
  Superblock sb;
  std::unique_ptr<Allocator> alloc;
};

TEST_CASE("allocator: format marks reserved blocks and tail, load finds one free extent") {
  Fs fs(100000);
  const Superblock& sb = fs.sb;
  CHECK(sb.bitmap_blocks == 4);  // 32384 bits per 4 KiB bitmap block
  CHECK(fs.alloc->free_blocks() == fs.data_blocks());
  CHECK(fs.alloc->allocatable_blocks() == fs.data_blocks());
  auto ext = fs.alloc->free_extents();
  REQUIRE(ext.size() == 1);
  CHECK(ext[0] == Extent{sb.data_start, fs.data_blocks()});
  for (uint64_t b = 0; b < sb.data_start; ++b) CHECK(fs.disk_bit(b));
  CHECK(!fs.disk_bit(sb.data_start));
  CHECK(!fs.disk_bit(sb.total_blocks - 2));
  CHECK(fs.disk_bit(sb.total_blocks - 1));
  uint64_t bits = bits_per_bitmap_block(sb.block_size);
  for (uint64_t b = sb.total_blocks; b < sb.bitmap_blocks * bits; ++b) REQUIRE(fs.disk_bit(b));
  CHECK(fs.alloc->in_use(0));
  CHECK(fs.alloc->in_use(sb.total_blocks - 1));
  CHECK(fs.alloc->in_use(sb.total_blocks + 5));
  CHECK(!fs.alloc->in_use(sb.data_start));
  // The header area is the journal's: format leaves it zero.
  auto buf = fs.meta.read(sb.bitmap_start, BlockType::kBitmap);
  REQUIRE(buf.ok());
  for (size_t i = 0; i < kHeaderSize; ++i) REQUIRE((*buf)->data()[i] == 0);
}

TEST_CASE("allocator: format refuses inconsistent geometry") {
  MemoryMetadata meta;
  Superblock sb = make_sb(100000);
  Superblock bad = sb;
  bad.bitmap_blocks = 3;
  CHECK(Allocator::format(meta, bad).code() == EINVAL);
  bad = sb;
  bad.data_start = sb.bitmap_start + 1;  // bitmaps overrun the data area
  CHECK(Allocator::format(meta, bad).code() == EINVAL);
  bad = sb;
  bad.block_size = 8192;  // differs from the metadata space
  CHECK(Allocator::format(meta, bad).code() == EINVAL);
  bad = sb;
  bad.data_start = sb.total_blocks - 1;
  CHECK(Allocator::format(meta, bad).code() == EINVAL);
  CHECK(meta.live_blocks() == 0);
}

TEST_CASE("allocator: large request on a fresh filesystem is one extent") {
  Fs fs(100000);
  auto r = fs.alloc->allocate(0, 10000);
  REQUIRE(r.ok());
  CHECK(r->length == 10000);
  CHECK(r->start == fs.sb.data_start);
  CHECK(fs.alloc->free_blocks() == fs.data_blocks() - 10000);
  for (uint64_t b = r->start; b < r->end(); ++b) REQUIRE(fs.disk_bit(b));
  CHECK(!fs.disk_bit(r->end()));
  // An extent that crosses a bitmap block boundary.
  uint64_t bits = bits_per_bitmap_block(4096);
  CHECK(fs.alloc->bitmap_blocks_spanned({bits - 100, 5000}) == 2);
  CHECK(fs.alloc->bitmap_blocks_spanned({bits, 5000}) == 1);
  CHECK(fs.alloc->bitmap_blocks_spanned({0, 3 * bits + 1}) == 4);
  CHECK(fs.alloc->bitmap_blocks_spanned({5, 0}) == 0);
  auto x = fs.alloc->allocate(bits - 100, 5000);
  REQUIRE(x.ok());
  CHECK(*x == Extent{bits - 100, 5000});
  CHECK(fs.disk_bit(bits - 100));
  CHECK(fs.disk_bit(bits + 4899));
  CHECK(!fs.disk_bit(bits + 4900));
  CHECK(!fs.disk_bit(bits - 101));
}

TEST_CASE("allocator: goal-near allocation") {
  Fs fs(100000);
  auto a = fs.alloc->allocate(50000, 100);
  REQUIRE(a.ok());
  CHECK(*a == Extent{50000, 100});
  auto b = fs.alloc->allocate(50000, 100);  // goal taken: the nearest after it
  REQUIRE(b.ok());
  CHECK(*b == Extent{50100, 100});
  auto c = fs.alloc->allocate(a->end(), 10);  // extending a file whose tail is taken
  REQUIRE(c.ok());
  CHECK(c->start == 50200);
  // Hole after the goal too small for want: skipped for the next that holds it.
  REQUIRE(fs.alloc->free({50050, 20}, Reuse::kAfterCommit).ok());
  fs.alloc->transaction_committed();
  auto d = fs.alloc->allocate(50001, 30);
  REQUIRE(d.ok());
  CHECK(d->start == 50210);
  auto e = fs.alloc->allocate(50001, 20);
  REQUIRE(e.ok());
  CHECK(*e == Extent{50050, 20});
  // Goal past the device end is no preference (best fit).
  auto f = fs.alloc->allocate(~0ull, 5);
  REQUIRE(f.ok());
  CHECK(f->start >= fs.sb.data_start);
}

TEST_CASE("allocator: allocate_highest takes the top free block, below reservations, down to ENOSPC") {
  Fs fs(2000);
  const uint64_t top = fs.sb.total_blocks - 2;  // the backup superblock holds the last block
  auto a = fs.alloc->allocate_highest();
  REQUIRE(a.ok());
  CHECK(*a == top);
  CHECK(fs.disk_bit(top));
  auto r = fs.alloc->reserve(top - 10, 10);  // reserved blocks are not handed out
  REQUIRE(r.ok());
  REQUIRE(*r == Extent{top - 10, 10});
  auto b = fs.alloc->allocate_highest();
  REQUIRE(b.ok());
  CHECK(*b == top - 11);
  // File data from the bottom does not meet it.
  auto d = fs.alloc->allocate(fs.sb.data_start, 100);
  REQUIRE(d.ok());
  CHECK(d->start == fs.sb.data_start);
  uint64_t n = 0;
  while (fs.alloc->allocate_highest().ok()) ++n;
  CHECK(n == fs.data_blocks() - 2 - 10 - 100);
  CHECK(fs.alloc->allocate_highest().status().code() == ENOSPC);
  CHECK(fs.alloc->free_blocks() == 10);  // only the reservation, not yet claimed
}

TEST_CASE("allocator: best fit, then largest extent, then ENOSPC") {
  Fs fs(100000);
  const uint64_t ds = fs.sb.data_start;
  auto all = fs.alloc->allocate(0, fs.data_blocks());
  REQUIRE(all.ok());
  CHECK(*all == Extent{ds, fs.data_blocks()});
  CHECK(fs.alloc->allocatable_blocks() == 0);
  CHECK(fs.alloc->allocate(0, 1).status().code() == ENOSPC);
  // Holes of 5, 3, 8 and 4 blocks.
  REQUIRE(fs.alloc->free({ds + 100, 5}, Reuse::kAfterCommit).ok());
  REQUIRE(fs.alloc->free({ds + 200, 3}, Reuse::kAfterCommit).ok());
  REQUIRE(fs.alloc->free({ds + 300, 8}, Reuse::kAfterCommit).ok());
  REQUIRE(fs.alloc->free({ds + 400, 4}, Reuse::kAfterCommit).ok());
  CHECK(fs.alloc->allocate(0, 1).status().code() == ENOSPC);  // not before commit
  fs.alloc->transaction_committed();
  CHECK(fs.alloc->allocatable_blocks() == 20);
  auto a = fs.alloc->allocate(0, 4);  // best fit: the 4-block hole
  REQUIRE(a.ok());
  CHECK(*a == Extent{ds + 400, 4});
  auto b = fs.alloc->allocate(0, 4);  // next best: the 5-block hole
  REQUIRE(b.ok());
  CHECK(*b == Extent{ds + 100, 4});
  CHECK(fs.alloc->allocate(0, 9, 9).status().code() == ENOSPC);
  auto c = fs.alloc->allocate(0, 9, 2);  // largest: 8
  REQUIRE(c.ok());
  CHECK(*c == Extent{ds + 300, 8});
  CHECK(fs.alloc->allocate(0, 4, 4).status().code() == ENOSPC);
  auto d = fs.alloc->allocate(0, 4, 3);
  REQUIRE(d.ok());
  CHECK(*d == Extent{ds + 200, 3});
  auto e = fs.alloc->allocate(0, 4);
  REQUIRE(e.ok());
  CHECK(*e == Extent{ds + 104, 1});
  CHECK(fs.alloc->allocatable_blocks() == 0);
  CHECK(fs.alloc->allocate(0, 1).status().code() == ENOSPC);
  CHECK(fs.alloc->allocate(0, 0).status().code() == EINVAL);
  CHECK(fs.alloc->allocate(0, 2, 3).status().code() == EINVAL);
  CHECK(fs.alloc->allocate(0, 2, 0).status().code() == EINVAL);
}

TEST_CASE("allocator: fragmented space still satisfies requests") {
  Fs fs(100000);
  const uint64_t ds = fs.sb.data_start;
  auto all = fs.alloc->allocate(0, fs.data_blocks());
  REQUIRE(all.ok());
  uint64_t freed = 0;
  for (uint64_t b = ds; b < ds + 20000; b += 2, ++freed) REQUIRE(fs.alloc->free({b, 1}, Reuse::kAfterCommit).ok());
  fs.alloc->transaction_committed();
  CHECK(fs.alloc->allocatable_blocks() == freed);
  CHECK(fs.alloc->free_extents().size() == freed);
  CHECK(fs.alloc->allocate(0, 2, 2).status().code() == ENOSPC);
  uint64_t got = 0;
  while (got < freed) {
    auto r = fs.alloc->allocate(ds + 5000, 64);
    REQUIRE(r.ok());
    REQUIRE(r->length == 1);
    got += r->length;
  }
  CHECK(fs.alloc->allocate(0, 1).status().code() == ENOSPC);
}

TEST_CASE("allocator: freed blocks wait for commit or checkpoint") {
  Fs fs(100000);
  const uint64_t ds = fs.sb.data_start;
  auto all = fs.alloc->allocate(0, fs.data_blocks());
  REQUIRE(all.ok());
  REQUIRE(fs.alloc->free({ds + 10, 10}, Reuse::kAfterCommit).ok());
  REQUIRE(fs.alloc->free({ds + 30, 10}, Reuse::kAfterCheckpoint).ok());
  CHECK(fs.alloc->free_blocks() == 20);
  CHECK(fs.alloc->allocatable_blocks() == 0);
  CHECK(!fs.alloc->in_use(ds + 10));
  CHECK(!fs.alloc->in_use(ds + 39));
  CHECK(!fs.disk_bit(ds + 35));
  fs.alloc->checkpointed();  // the freeing transaction has not committed: no effect
  CHECK(fs.alloc->allocatable_blocks() == 0);
  fs.alloc->transaction_committed();
  CHECK(fs.alloc->allocatable_blocks() == 10);
  auto a = fs.alloc->allocate(0, 20, 1);
  REQUIRE(a.ok());
  CHECK(*a == Extent{ds + 10, 10});
  fs.alloc->transaction_committed();
  CHECK(fs.alloc->allocatable_blocks() == 0);
  fs.alloc->checkpointed();
  CHECK(fs.alloc->allocatable_blocks() == 10);
  auto b = fs.alloc->allocate(0, 20, 1);
  REQUIRE(b.ok());
  CHECK(*b == Extent{ds + 30, 10});
  CHECK(fs.alloc->free_blocks() == 0);
}

TEST_CASE("allocator: bad frees are EUCLEAN and change nothing") {
  Fs fs(100000);
  const uint64_t ds = fs.sb.data_start;
  auto a = fs.alloc->allocate(0, 100);
  REQUIRE(a.ok());
  REQUIRE(fs.alloc->free({ds + 50, 10}, Reuse::kAfterCommit).ok());
  const uint64_t free_before = fs.alloc->free_blocks();
  auto check_refused = [&](Extent e, int code) {
    Status s = fs.alloc->free(e, Reuse::kAfterCommit);
    CHECK(s.code() == code);
    CHECK(!s.message().empty());
    CHECK(fs.alloc->free_blocks() == free_before);
  };
  check_refused({ds + 50, 1}, EUCLEAN);               // pending free: double free
  check_refused({ds + 40, 15}, EUCLEAN);              // overlaps a pending free
  check_refused({ds + 100, 1}, EUCLEAN);              // never allocated
  check_refused({ds + 90, 20}, EUCLEAN);              // partly never allocated
  check_refused({0, 1}, EUCLEAN);                     // superblock
  check_refused({fs.sb.bitmap_start, 1}, EUCLEAN);    // a bitmap block
  check_refused({ds - 1, 2}, EUCLEAN);                // straddles data_start
  check_refused({fs.sb.total_blocks - 1, 1}, EUCLEAN);  // backup superblock
  check_refused({fs.sb.total_blocks, 1}, EUCLEAN);    // past the end
  check_refused({ds, ~0ull}, EUCLEAN);                // overflowing length
  check_refused({~0ull, 2}, EUCLEAN);
  check_refused({ds, 0}, EINVAL);
  for (uint64_t b = ds; b < ds + 50; ++b) REQUIRE(fs.disk_bit(b));
  fs.alloc->transaction_committed();
  CHECK(fs.alloc->allocatable_blocks() == free_before);
}

TEST_CASE("allocator: bitmap that disagrees with the index is EUCLEAN") {
  Fs fs(100000);
  const uint64_t ds = fs.sb.data_start;
  fs.set_disk_bit(ds + 5, true);  // someone set a bit behind the allocator's back
  auto r = fs.alloc->allocate(0, 10);
  CHECK(r.status().code() == EUCLEAN);
  CHECK(fs.alloc->free_blocks() == fs.data_blocks());
  CHECK(!fs.disk_bit(ds));  // nothing changed
  fs.set_disk_bit(ds + 5, false);
  auto a = fs.alloc->allocate(0, 10);
  REQUIRE(a.ok());
  fs.set_disk_bit(ds + 7, false);
  CHECK(fs.alloc->free({ds, 10}, Reuse::kAfterCommit).code() == EUCLEAN);
  CHECK(fs.disk_bit(ds));
  CHECK(fs.alloc->free_blocks() == fs.data_blocks() - 10);
}

TEST_CASE("allocator: load refuses corrupted bitmaps") {
  const uint64_t total = 100000;
  auto load_after = [&](auto&& corrupt) {
    Fs fs(total);
    corrupt(fs);
    return Allocator::load(fs.meta, fs.sb).status();
  };
  uint64_t bits = bits_per_bitmap_block(4096);
  Superblock sb = make_sb(total);
  SUBCASE("superblock bit cleared") {
    Status s = load_after([](Fs& fs) { fs.set_disk_bit(0, false); });
    CHECK(s.code() == EUCLEAN);
    CHECK(s.message().find("bitmap block " + std::to_string(sb.bitmap_start)) != std::string::npos);
    CHECK(s.message().find("reserved block 0") != std::string::npos);
  }
  SUBCASE("last bitmap block's own bit cleared") {
    Status s = load_after([](Fs& fs) { fs.set_disk_bit(fs.sb.data_start - 1, false); });
    CHECK(s.code() == EUCLEAN);
    CHECK(s.message().find("reserved block " + std::to_string(sb.data_start - 1)) != std::string::npos);
  }
  SUBCASE("backup superblock bit cleared") {
    Status s = load_after([](Fs& fs) { fs.set_disk_bit(fs.sb.total_blocks - 1, false); });
    CHECK(s.code() == EUCLEAN);
    CHECK(s.message().find("bitmap block " + std::to_string(sb.bitmap_start + 3)) != std::string::npos);
    CHECK(s.message().find("backup superblock") != std::string::npos);
  }
  SUBCASE("first tail bit cleared") {
    Status s = load_after([](Fs& fs) { fs.set_disk_bit(fs.sb.total_blocks, false); });
    CHECK(s.code() == EUCLEAN);
    CHECK(s.message().find("bitmap block " + std::to_string(sb.bitmap_start + 3)) != std::string::npos);
    CHECK(s.message().find("past the last block") != std::string::npos);
  }
  SUBCASE("last tail bit cleared") {
    Status s = load_after([&](Fs& fs) { fs.set_disk_bit(fs.sb.bitmap_blocks * bits - 1, false); });
    CHECK(s.code() == EUCLEAN);
    CHECK(s.message().find("past the last block") != std::string::npos);
  }
  SUBCASE("a tail word cleared") {
    Status s = load_after([&](Fs& fs) {
      for (uint64_t b = fs.sb.total_blocks + 640; b < fs.sb.total_blocks + 704; ++b) fs.set_disk_bit(b, false);
    });
    CHECK(s.code() == EUCLEAN);
  }
  SUBCASE("bitmap block missing") {
    Status s = load_after([](Fs& fs) { REQUIRE(fs.meta.free(fs.sb.bitmap_start + 2).ok()); });
    CHECK(!s.ok());
  }
  SUBCASE("geometry does not match") {
    Fs fs(total);
    Superblock bad = fs.sb;
    bad.bitmap_blocks = 2;
    CHECK(Allocator::load(fs.meta, bad).status().code() == EUCLEAN);
    bad = fs.sb;
    bad.total_blocks = 10 * bits;  // would need 10 bitmap blocks
    CHECK(Allocator::load(fs.meta, bad).status().code() == EUCLEAN);
    bad = fs.sb;
    bad.bitmap_start = ~0ull - 1;
    CHECK(Allocator::load(fs.meta, bad).status().code() == EUCLEAN);
  }
}

TEST_CASE("allocator: load of random bitmaps never misbehaves") {
  std::mt19937_64 rng(7);
  Fs fs(100000);
  for (int round = 0; round < 24; ++round) {
    // Random bytes in every bitmap block (the header stays as it is).
    for (uint64_t k = 0; k < fs.sb.bitmap_blocks; ++k) {
      auto buf = fs.meta.read(fs.sb.bitmap_start + k, BlockType::kBitmap);
      REQUIRE(buf.ok());
      uint8_t* area = (*buf)->data() + kHeaderSize;
      int mode = round % 4;
      for (size_t i = 0; i < 4096 - kHeaderSize; ++i) {
        uint8_t v = uint8_t(rng());
        if (mode == 1) v = (rng() % 8) ? 0xff : v;  // mostly in use
        if (mode == 2) v = (rng() % 8) ? 0x00 : v;  // mostly free
        area[i] = v;
      }
    }
    if (round % 2 == 1) {  // make reserved and tail valid so that load succeeds
      for (uint64_t b = 0; b < fs.sb.data_start; ++b) fs.set_disk_bit(b, true);
      uint64_t bits = bits_per_bitmap_block(4096);
      auto last = fs.meta.read(fs.sb.bitmap_start + fs.sb.bitmap_blocks - 1, BlockType::kBitmap);
      REQUIRE(last.ok());
      for (uint64_t b = fs.sb.total_blocks - 1; b < fs.sb.bitmap_blocks * bits; ++b) {
        uint64_t i = b % bits;
        (*last)->data()[kHeaderSize + i / 8] |= uint8_t(1u << (i % 8));
      }
    }
    auto r = Allocator::load(fs.meta, fs.sb);
    if (round % 2 == 0) {
      CHECK(r.status().code() == EUCLEAN);
      continue;
    }
    REQUIRE(r.ok());
    uint64_t clear = 0;
    bool agree = true;
    std::vector<bool> disk = fs.disk_bits();
    for (uint64_t b = 0; b < fs.sb.total_blocks; ++b) {
      clear += !disk[b];
      if (b % 7 == 0) agree &= (*r)->in_use(b) == disk[b];
    }
    CHECK(agree);
    CHECK((*r)->free_blocks() == clear);
    // Allocate everything; every block handed out had a clear bit.
    uint64_t got = 0;
    while (true) {
      auto a = (*r)->allocate(rng() % fs.sb.total_blocks, 1 + rng() % 50);
      if (!a.ok()) {
        REQUIRE(a.status().code() == ENOSPC);
        break;
      }
      got += a->length;
    }
    CHECK(got == clear);
    std::vector<bool> after = fs.disk_bits();
    CHECK(std::find(after.begin(), after.end(), false) == after.end());
  }
}

// Model of a block's state for the random test.
enum : uint8_t { kFree, kUsed, kPendCommit, kPendTxnCkpt, kPendCkpt, kReserved };

TEST_CASE("allocator: random allocate/free sequence against a model") {
  Fs fs(100000);
  Allocator& alloc = *fs.alloc;
  const uint64_t total = fs.sb.total_blocks, ds = fs.sb.data_start;
  std::vector<uint8_t> model(total, kFree);
  for (uint64_t b = 0; b < ds; ++b) model[b] = kReserved;
  model[total - 1] = kReserved;
  uint64_t n_free = fs.data_blocks(), n_avail = n_free;  // bits clear / allocatable
  std::vector<Extent> owned;
  std::mt19937_64 rng(12345);
  auto rnd = [&](uint64_t n) { return rng() % n; };

  // Runs of allocatable blocks in the model.
  auto runs = [&] {
    std::vector<Extent> out;
    for (uint64_t b = 0; b < total;) {
      if (model[b] != kFree) {
        ++b;
        continue;
      }
      uint64_t s = b;
      while (b < total && model[b] == kFree) ++b;
      out.push_back({s, b - s});
    }
    return out;
  };
  auto largest = [&] {
    uint64_t m = 0;
    for (auto& r : runs()) m = std::max(m, r.length);
    return m;
  };
  auto check_full = [&] {
    std::vector<bool> disk = fs.disk_bits();
    uint64_t index_wrong = 0, disk_wrong = 0;
    for (uint64_t b = 0; b < total; ++b) {
      bool used = model[b] == kUsed || model[b] == kReserved;
      index_wrong += alloc.in_use(b) != used;
      disk_wrong += disk[b] != used;
    }
    REQUIRE(index_wrong == 0);
    REQUIRE(disk_wrong == 0);
  };
  // Frees waiting for commit, and kAfterCheckpoint frees of the running / committed transactions.
  std::vector<Extent> pend_commit, pend_txn_ckpt, pend_ckpt;
  auto set_model = [&](const std::vector<Extent>& v, uint8_t state) {
    for (const Extent& e : v) std::fill(model.begin() + long(e.start), model.begin() + long(e.end()), state);
  };

  int allocs = 0, enospc = 0, partial = 0, frees = 0, bad_frees = 0, commits = 0;
  const int kOps = 30000;
  for (int op = 0; op < kOps; ++op) {
    uint64_t dice = rnd(100);
    // Drift between filling up and emptying so that both ENOSPC and big extents occur.
    bool filling = (op / 3000) % 2 == 0;
    if (dice < (filling ? 55u : 38u)) {
      uint64_t want = rnd(10) == 0 ? 1 + rnd(3000) : 1 + rnd(16);
      uint64_t min_len = 1 + rnd(want);
      if (rnd(3) == 0) min_len = want;
      uint64_t goal = 0;
      if (rnd(2) == 0) goal = owned.empty() || rnd(2) ? rnd(total + 10) : owned[rnd(owned.size())].end();
      // Policy 1: a free goal with want blocks free from it is taken exactly.
      bool goal_free = goal != 0 && goal < total && want <= total - goal;
      for (uint64_t b = goal; goal_free && b < goal + want; ++b) goal_free = model[b] == kFree;
      auto r = alloc.allocate(goal, want, min_len);
      if (!r.ok()) {
        REQUIRE(r.status().code() == ENOSPC);
        REQUIRE(largest() < min_len);
        ++enospc;
      } else {
        ++allocs;
        REQUIRE(r->length >= min_len);
        REQUIRE(r->length <= want);
        REQUIRE(r->start >= ds);
        REQUIRE(r->end() <= total - 1);
        bool all_free = true;
        for (uint64_t b = r->start; b < r->end(); ++b) {
          all_free &= model[b] == kFree;
          model[b] = kUsed;
        }
        REQUIRE(all_free);
        n_free -= r->length;
        n_avail -= r->length;
        owned.push_back(*r);
        if (goal_free) REQUIRE(*r == Extent{goal, want});
        if (r->length < want) {
          ++partial;
          // The largest free extent was taken and nothing held want.
          REQUIRE(largest() <= r->length);
        } else if (goal == 0 && rnd(8) == 0) {
          // Best fit: no allocatable run of length in [want, original) existed.
          uint64_t orig = r->length;
          uint64_t b = r->end();
          while (b < total && model[b] == kFree) ++orig, ++b;
          REQUIRE((r->start == 0 || model[r->start - 1] != kFree));
          for (auto& run : runs())  // (the rest of the chosen extent aside)
            REQUIRE((run.start == r->end() || run.length < want || run.length >= orig));
        }
      }
    } else if (dice < 85) {
      if (owned.empty()) continue;
      size_t i = rnd(owned.size());
      Extent e = owned[i];
      Extent f = e;
      if (e.length > 1 && rnd(2)) {  // free a piece, keep the rest owned
        uint64_t off = rnd(e.length);
        f = {e.start + off, 1 + rnd(e.length - off)};
      }
      owned[i] = owned.back();
      owned.pop_back();
      if (f.start > e.start) owned.push_back({e.start, f.start - e.start});
      if (f.end() < e.end()) owned.push_back({f.end(), e.end() - f.end()});
      Reuse when = rnd(2) ? Reuse::kAfterCommit : Reuse::kAfterCheckpoint;
      REQUIRE(alloc.free(f, when).ok());
      set_model({f}, when == Reuse::kAfterCommit ? kPendCommit : kPendTxnCkpt);
      (when == Reuse::kAfterCommit ? pend_commit : pend_txn_ckpt).push_back(f);
      n_free += f.length;
      ++frees;
    } else if (dice < 92) {
      alloc.transaction_committed();
      for (const Extent& e : pend_commit) n_avail += e.length;
      set_model(pend_commit, kFree);
      set_model(pend_txn_ckpt, kPendCkpt);
      pend_ckpt.insert(pend_ckpt.end(), pend_txn_ckpt.begin(), pend_txn_ckpt.end());
      pend_commit.clear();
      pend_txn_ckpt.clear();
      ++commits;
    } else if (dice < 96) {
      alloc.checkpointed();
      for (const Extent& e : pend_ckpt) n_avail += e.length;
      set_model(pend_ckpt, kFree);
      pend_ckpt.clear();
    } else {
      // A bad free: a block that is free, pending, or reserved.
      uint64_t b = rnd(total);
      if (model[b] == kUsed) continue;
      Status s = alloc.free({b, 1 + rnd(4)}, Reuse::kAfterCommit);
      REQUIRE(s.code() == EUCLEAN);
      ++bad_frees;
    }
    REQUIRE(alloc.free_blocks() == n_free);
    REQUIRE(alloc.allocatable_blocks() == n_avail);
    if (op % 5000 == 0) check_full();
  }
  check_full();
  MESSAGE("allocs " << allocs << " (partial " << partial << ", ENOSPC " << enospc << "), frees " << frees
                    << ", bad frees " << bad_frees << ", commits " << commits << ", free extents "
                    << alloc.free_extents().size());
  CHECK(enospc > 0);
  CHECK(partial > 0);
  CHECK(bad_frees > 0);

  // A fresh load sees the same bitmap (pending frees are plain free blocks after a remount).
  {
    auto r = Allocator::load(fs.meta, fs.sb);
    REQUIRE(r.ok());
    CHECK((*r)->free_blocks() == alloc.free_blocks());
    CHECK((*r)->allocatable_blocks() == alloc.free_blocks());
    CHECK((*r)->free_extents() == alloc.free_extents());
  }

  // Free everything: nothing is leaked.
  for (const Extent& e : owned) REQUIRE(alloc.free(e, Reuse::kAfterCheckpoint).ok());
  alloc.transaction_committed();
  alloc.checkpointed();
  CHECK(alloc.free_blocks() == fs.data_blocks());
  CHECK(alloc.allocatable_blocks() == fs.data_blocks());
  auto ext = alloc.free_extents();
  REQUIRE(ext.size() == 1);
  CHECK(ext[0] == Extent{ds, fs.data_blocks()});
  auto r = Allocator::load(fs.meta, fs.sb);
  REQUIRE(r.ok());
  CHECK((*r)->free_extents() == ext);
  auto big = alloc.allocate(0, fs.data_blocks());
  REQUIRE(big.ok());
  CHECK(big->length == fs.data_blocks());
}

TEST_CASE("allocator: set_in_use repairs the bitmap") {
  Fs fs(100000);
  const uint64_t ds = fs.sb.data_start;
  auto a = fs.alloc->allocate(0, 1000);
  REQUIRE(a.ok());
  REQUIRE(fs.alloc->free({ds + 100, 50}, Reuse::kAfterCheckpoint).ok());
  // A leaked range (in use, owned by nothing) becomes free and allocatable at once.
  REQUIRE(fs.alloc->set_in_use({ds + 500, 100}, false).ok());
  CHECK(fs.alloc->free_blocks() == fs.data_blocks() - 1000 + 150);
  CHECK(fs.alloc->allocatable_blocks() == fs.data_blocks() - 1000 + 100);
  CHECK(!fs.disk_bit(ds + 550));
  // A range that straddles free, pending and used blocks becomes wholly free; pending stays pending.
  REQUIRE(fs.alloc->set_in_use({ds + 90, 520}, false).ok());
  CHECK(fs.alloc->free_blocks() == fs.data_blocks() - 1000 + 520);
  CHECK(fs.alloc->allocatable_blocks() == fs.data_blocks() - 1000 + 470);
  // Wrongly free blocks (owned by a file) become in use, pending ones included.
  REQUIRE(fs.alloc->set_in_use({ds + 120, 10}, true).ok());
  CHECK(fs.alloc->in_use(ds + 125));
  CHECK(fs.disk_bit(ds + 125));
  CHECK(fs.alloc->free_blocks() == fs.data_blocks() - 1000 + 510);
  fs.alloc->transaction_committed();
  fs.alloc->checkpointed();
  CHECK(fs.alloc->allocatable_blocks() == fs.alloc->free_blocks());
  REQUIRE(fs.alloc->set_in_use({ds + 1000, 10}, true).ok());
  CHECK(fs.alloc->free_blocks() == fs.data_blocks() - 1000 + 500);
  // Already in use: no change.
  REQUIRE(fs.alloc->set_in_use({0, 10}, true).ok());
  CHECK(fs.alloc->free_blocks() == fs.data_blocks() - 1000 + 500);
  CHECK(fs.alloc->set_in_use({0, 1}, false).code() == EINVAL);
  CHECK(fs.alloc->set_in_use({fs.sb.total_blocks - 1, 1}, false).code() == EINVAL);
  CHECK(fs.alloc->set_in_use({fs.sb.total_blocks, 1}, true).code() == EINVAL);
  CHECK(fs.alloc->set_in_use({ds, 0}, true).code() == EINVAL);
  // The bitmap and the index agree.
  auto r = Allocator::load(fs.meta, fs.sb);
  REQUIRE(r.ok());
  CHECK((*r)->free_extents() == fs.alloc->free_extents());
}

TEST_CASE("allocator: 2^44-byte device with 64 KiB blocks") {
  const uint64_t total = 1ull << 28;  // 2^44 bytes
  Fs fs(total, 65536, 1024);
  CHECK(fs.sb.bitmap_blocks == 513);
  CHECK(fs.alloc->free_blocks() == fs.data_blocks());
  auto big = fs.alloc->allocate(0, 1ull << 27);
  REQUIRE(big.ok());
  CHECK(*big == Extent{fs.sb.data_start, 1ull << 27});
  auto tail = fs.alloc->allocate(total - 1000, 999);
  REQUIRE(tail.ok());
  CHECK(*tail == Extent{total - 1000, 999});
  CHECK(fs.alloc->allocate(total - 1000, 1).value().start < total - 1000);  // wraps to best fit
  REQUIRE(fs.alloc->free(*big, Reuse::kAfterCommit).ok());
  fs.alloc->transaction_committed();
  auto r = Allocator::load(fs.meta, fs.sb);
  REQUIRE(r.ok());
  CHECK((*r)->free_blocks() == fs.data_blocks() - 1000);
  CHECK((*r)->free_extents() == fs.alloc->free_extents());
}

}  // namespace
}  // namespace stablefs
