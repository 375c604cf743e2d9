#include "iomap/direct_io.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <utility>

#include "bounce/aligned_buffer.h"
#include "bounce/io_unit.h"
#include "bounce/submit_plug.h"
#include "iomap/iomap_iter.h"

namespace stablefs {

// One I/O unit of a request and what became of it.
struct DirectIo::UnitSlot {
  std::unique_ptr<IoUnit> unit;
  size_t range = 0;  // index into Request::ranges (writes)
  uint64_t file_pos = 0;
  Status status;
  bool done = false;
};

struct DirectIo::Request {
  bool write = false;
  uint64_t ino = 0;
  uint64_t pos = 0;           // the caller's range
  size_t len = 0;
  uint64_t apos = 0;          // the block-aligned range the I/O covers
  size_t alen = 0;
  std::span<uint8_t> user_dst;
  std::span<const uint8_t> user_src;
  std::function<std::shared_ptr<const void>()> keep_source;  // WriteSource::keep
  std::function<void()> on_submitted;                         // WriteSource::submitted
  std::shared_ptr<const void> kept_source;  // what keep gave: held until the request ends
  bool borrowed_source = false;             // a unit sends user_src zero-copy
  uint32_t extra_op = 0;                    // IomapOp bits added to a write's mappings
  bool bounce_writes = false;               // a write's units are bounced (the policy's)
  // A read's expected checksums as the mapping calls give them (IomapIter::want_checksums):
  // one trip to the filesystem per mapping instead of two for mappings up to 1 MiB (4 KiB blocks).
  std::array<std::optional<uint64_t>, 256> mapped_checksums;
  AlignedBuffer temp;         // request-private memory when the caller's is unaligned
  std::span<uint8_t> io_buf;  // what the units read into or write from
  FileRangeLocks::Held lock;  // empty for the edge reads of a write, which holds the range

  std::deque<UnitSlot> units;  // deque: slots stay put while later units are added
  std::vector<WrittenRange> ranges;
  Status walk_status;  // mapping failure: the request is cut short there
  Mutex mu;
  // In-flight units plus one reference held by the submitting walk, so the request cannot
  // finish while units are still being built (kernel: iomap_dio's reference count).
  size_t pending GUARDED_BY(mu) = 1;
  Done done;
};

namespace {

uint64_t round_down(uint64_t v, uint64_t a) { return v & ~(a - 1); }
uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

std::string where(uint64_t ino, uint64_t file_pos) {
  std::string s = "inode ";
  s += std::to_string(ino);
  s += " offset ";
  s += std::to_string(file_pos);
  return s;
}

}  // namespace

bool DirectIo::allocate_temp(Request* req) {
  req->walk_status = out_of_memory_as_error([&]() -> Status {
    req->temp = AlignedBuffer(req->alen, 4096);
    req->io_buf = req->temp.span();
    return {};
  });
  return req->walk_status.ok();
}

DirectIo::DirectIo(IomapOps& ops, IomapWriteCompletion& completion, IoQueue& queue, BouncePool& pool, IoStats& stats,
                   FileRangeLocks& locks, DataErrorLog& errors, DirectIoConfig config)
    : ops_(ops),
      completion_(completion),
      queue_(queue),
      pool_(pool),
      stats_(stats),
      locks_(locks),
      errors_(errors),
      config_(config),
      block_size_(ops.block_size()) {}

Result<uint64_t> DirectIo::file_size(uint64_t ino) {
  try {
    return ops_.file_size(ino);
  } catch (const std::bad_alloc&) {
    return Status::error(ENOMEM, "out of memory");  // short: no allocation
  }
}

std::unique_ptr<DirectIo::Request> DirectIo::new_request(uint64_t ino, uint64_t start, uint64_t end, bool write,
                                                         bool take_lock, Done& done) {
  std::unique_ptr<Request> req;
  try {
    req = std::make_unique<Request>();
    if (take_lock) req->lock = locks_.lock(ino, start, end, write);
  } catch (const std::bad_alloc&) {
    req.reset();  // drops the range lock if it was granted
    done(Status::error(ENOMEM, "out of memory"));  // short: no allocation
    return nullptr;
  }
  req->write = write;
  req->ino = ino;
  req->done = std::move(done);
  return req;
}

void DirectIo::read(uint64_t ino, uint64_t pos, std::span<uint8_t> dst, ReadMemory memory, Done done) {
  read_request(ino, pos, dst, memory, std::move(done), true);
}

void DirectIo::read_request(uint64_t ino, uint64_t pos, std::span<uint8_t> dst, ReadMemory memory, Done done,
                            bool take_lock) {
  // No file reaches past kMaxFileBytes: a read there finds end of file.
  if (pos < kMaxFileBytes) dst = dst.first(static_cast<size_t>(std::min<uint64_t>(dst.size(), kMaxFileBytes - pos)));
  else dst = {};
  std::unique_ptr<Request> req =
      new_request(ino, round_down(pos, block_size_), round_up(pos + dst.size(), block_size_), false,
                  take_lock && !dst.empty(), done);
  if (!req) return;
  req->pos = pos;
  req->user_dst = dst;
  if (dst.empty()) return finish(req.release());
  const uint64_t apos = round_down(pos, block_size_);
  // The first mapping also says where the file ends: one trip to the filesystem for both.
  IomapIter it(ops_, ino, apos, round_up(pos + dst.size(), block_size_) - apos, kIomapRead | kIomapDirect);
  it.want_checksums(req->mapped_checksums);
  if (!it.next()) {
    req->walk_status = it.status();
    return finish(req.release());
  }
  const uint64_t size = it.map().file_size;
  req->len = pos >= size ? 0 : static_cast<size_t>(std::min<uint64_t>(dst.size(), size - pos));
  if (req->len == 0) return finish(req.release());
  req->apos = apos;
  req->alen = static_cast<size_t>(round_up(pos + req->len, block_size_) - req->apos);
  it.clip(req->apos + req->alen);
  bool aligned = req->apos == pos && req->alen == req->len &&
                 (reinterpret_cast<uintptr_t>(dst.data()) & config_.memory_alignment) == 0;
  if (aligned) {
    req->io_buf = dst.subspan(0, req->len);
  } else {
    if (!allocate_temp(req.get())) return finish(req.release());
  }
  // Private memory is never bounced. (A shared caller's unaligned request reads into the
  // engine's own buffer, which is private too, but bounce=always still means every unit of
  // such a caller is bounced.)
  read_walk(req.release(), config_.bounce && memory == ReadMemory::kShared, it, true);
}

void DirectIo::start_read(Request* req, bool bounce) {
  IomapIter it(ops_, req->ino, req->apos, req->alen, kIomapRead | kIomapDirect);
  it.want_checksums(req->mapped_checksums);
  read_walk(req, bounce, it, it.next());
}

void DirectIo::read_walk(Request* req, bool bounce, IomapIter& it, bool first_mapped) {
  const IoUnitGeometry geometry{block_size_, config_.memory_alignment};
  for (bool mapped = first_mapped; mapped; mapped = it.next()) {
    const uint64_t n = it.length();
    std::span<uint8_t> buf = req->io_buf.subspan(static_cast<size_t>(it.pos() - req->apos), static_cast<size_t>(n));
    if (it.map().needs_zero_on_read()) {
      std::memset(buf.data(), 0, buf.size());
    } else {
      uint64_t submitted = 0;  // of this mapping
      Status built = out_of_memory_as_error([&]() -> Status {
        for (uint64_t off = 0; off < n; off += config_.max_unit_bytes) {
          size_t piece = static_cast<size_t>(std::min<uint64_t>(config_.max_unit_bytes, n - off));
          std::vector<std::optional<uint64_t>> expected(piece / block_size_);
          // The mapping call gave the checksums of the mapping's first blocks (the walk is at
          // the mapping's start: nothing of it is processed before its units are built); the
          // rest are asked for.
          const std::span<const std::optional<uint64_t>> given = it.checksums();
          const size_t first = static_cast<size_t>(off / block_size_);
          if (first + expected.size() <= given.size())
            std::copy_n(given.begin() + static_cast<std::ptrdiff_t>(first), expected.size(), expected.begin());
          else
            SFS_TRY(ops_.read_checksums(it.dev_addr() + off, expected));
          // Each unit is submitted as soon as it is built: a bounced unit holds pool memory, and
          // holding it while building the rest could starve other requests of the pool.
          req->units.push_back({IoUnit::build_read(it.dev_addr() + off, buf.subspan(static_cast<size_t>(off), piece),
                                                   bounce, pool_, geometry, std::move(expected)),
                                0, it.pos() + off, {}, false});
          submit_unit(req, &req->units.back());
          submitted += piece;
        }
        return {};
      });
      if (!built.ok()) {
        it.advance(submitted);  // the mapping ends having used what is in flight
        it.fail(built);
        continue;
      }
    }
    it.advance(n);
  }
  // A mapping failure fails the read once the units already in flight have completed.
  req->walk_status = it.status();
  unit_done(req);  // drops the walk's reference
}

void DirectIo::submit_unit(Request* req, UnitSlot* slot) {
  {
    MutexLock lock(req->mu);
    ++req->pending;
  }
  slot->unit->submit(queue_, stats_, [this, req, slot](IoUnit& unit, Status st) {
    if (!req->write && !st.ok() && unit.bad_block()) {
      for (const BadBlock& b : unit.bad_blocks()) {
        const uint64_t off = slot->file_pos + b.index * block_size_;
        const uint64_t dev_block = unit.dev_offset() / block_size_ + b.index;
        const Status bad = Status::error(EIO, where(req->ino, off) + ": data checksum mismatch (device block " +
                                                  std::to_string(dev_block) + ")");
        if (b.index == *unit.bad_block()) st = bad;
        errors_.record(req->ino, off, dev_block, bad.message());
      }
    }
    slot->status = st;
    slot->done = true;
    unit_done(req);
  });
}

SourceUse DirectIo::write(uint64_t ino, uint64_t pos, WriteSource src, Done done) {
  return write_request(ino, pos, std::move(src), std::move(done), true);
}

SourceUse DirectIo::write_request(uint64_t ino, uint64_t pos, WriteSource source, Done done, bool take_lock,
                                  uint32_t extra_op) {
  const std::span<const uint8_t> src = source.bytes;
  const bool fits = pos < kMaxFileBytes && src.size() <= kMaxFileBytes - pos;
  const uint64_t apos = round_down(pos, block_size_);
  const uint64_t aend = fits ? round_up(pos + src.size(), block_size_) : apos;
  std::unique_ptr<Request> req = new_request(ino, apos, aend, true, take_lock && fits && !src.empty(), done);
  if (!req) return SourceUse::kCopied;
  req->pos = pos;
  req->len = src.size();
  req->user_src = src;
  req->keep_source = std::move(source.keep);
  req->on_submitted = std::move(source.submitted);
  req->extra_op = extra_op;
  // A relocation writes from memory its caller leased to it alone and leaves unchanged (the
  // defragmenter's buffer, as a private read): never bounced.
  req->bounce_writes = config_.bounce && !(extra_op & kIomapRelocate);
  // Every answer before the units are built is kCopied: nothing of src is used after finish().
  auto finish_now = [this, &req] {
    finish(req.release());
    return SourceUse::kCopied;
  };
  if (src.empty()) return finish_now();
  if (!fits) {
    req->walk_status = Status::error(EFBIG, where(ino, pos) + ": write of " + std::to_string(src.size()) +
                                                " bytes reaches past the largest file offset");
    return finish_now();
  }
  req->apos = apos;
  req->alen = static_cast<size_t>(aend - apos);
  bool aligned = req->apos == pos && req->alen == req->len &&
                 (reinterpret_cast<uintptr_t>(src.data()) & config_.memory_alignment) == 0;
  if (aligned) {
    // The units only read this memory; the span is const in spirit.
    req->io_buf = {const_cast<uint8_t*>(src.data()), src.size()};
  } else {
    // Read-modify-write: fetch the partial edge blocks (verified), then merge the new bytes.
    if (!allocate_temp(req.get())) return finish_now();
    const uint64_t last_block = req->apos + req->alen - block_size_;
    std::vector<uint64_t> edges;
    if (pos != req->apos) edges.push_back(req->apos);
    if ((pos + src.size()) % block_size_ != 0 && (edges.empty() || last_block != req->apos)) edges.push_back(last_block);
    for (uint64_t edge : edges) {
      auto size = file_size(ino);
      if (!size.ok()) {
        req->walk_status = size.status();
        return finish_now();
      }
      if (edge >= *size) continue;  // beyond end of file: zeros
      std::promise<Result<size_t>> got;
      Done edge_done = [&got](Result<size_t> r) { got.set_value(std::move(r)); };
      // No lock: this request already holds the range exclusively.
      std::unique_ptr<Request> sub = new_request(ino, edge, edge + block_size_, false, false, edge_done);
      if (sub) {
        sub->pos = edge;
        sub->len = sub->alen = block_size_;
        sub->apos = edge;
        sub->io_buf = req->io_buf.subspan(static_cast<size_t>(edge - req->apos), block_size_);
        start_read(sub.release(), config_.bounce);  // a write's edge reads follow the write's policy
      }
      std::future<Result<size_t>> edge_read = got.get_future();
      Result<size_t> r = wait_for_io(edge_read);
      if (!r.ok()) {
        req->walk_status = r.status();
        return finish_now();
      }
    }
    std::memcpy(req->io_buf.data() + (pos - req->apos), src.data(), src.size());
    stats_.unaligned_copy_bytes.fetch_add(src.size(), std::memory_order_relaxed);
  }
  return start_write(req.release());
}

SourceUse DirectIo::start_write(Request* req) {
  const IoUnitGeometry geometry{block_size_, config_.memory_alignment};
  IomapIter it(ops_, req->ino, req->apos, req->alen, kIomapWrite | kIomapDirect | req->extra_op);
  while (it.next()) {
    const uint64_t n = it.length();
    if (it.map().type == IomapType::kHole || it.map().type == IomapType::kInline) {
      // next() then ends this mapping (IomapOps::end) before the request can finish.
      it.fail(out_of_memory_as_error(
          [&] { return Status::error(EIO, where(req->ino, it.pos()) + ": filesystem gave no space to write to"); }));
      continue;
    }
    uint64_t submitted = 0;  // of this mapping
    Status built = out_of_memory_as_error([&]() -> Status {
      size_t range = req->ranges.size();
      req->ranges.push_back({it.map(), it.pos(), n, false, {}});
      for (uint64_t off = 0; off < n; off += config_.max_unit_bytes) {
        size_t piece = static_cast<size_t>(std::min<uint64_t>(config_.max_unit_bytes, n - off));
        auto buf = req->io_buf.subspan(static_cast<size_t>(it.pos() - req->apos + off), piece);
        UnitSlot slot{IoUnit::build_write(it.dev_addr() + off, buf, req->bounce_writes, pool_, geometry), range,
                      it.pos() + off, {}, false};
        // The one decision about the caller's memory: a unit that sends it as it is.
        if (!slot.unit->bounced() && req->temp.data() == nullptr && !req->borrowed_source) {
          if (req->keep_source) req->kept_source = req->keep_source();
          req->borrowed_source = true;
        }
        req->units.push_back(std::move(slot));
        submit_unit(req, &req->units.back());
        submitted += piece;
      }
      return {};
    });
    if (!built.ok()) {
      // What was submitted is still written and reported (a short write); the mapping ends
      // having used that much, so end() keeps the space those units write to.
      it.advance(submitted);
      it.fail(built);
      continue;
    }
    it.advance(n);
  }
  req->walk_status = it.status();  // e.g. ENOSPC part way: what was mapped is still written
  const SourceUse use = req->borrowed_source ? SourceUse::kBorrowed : SourceUse::kCopied;
  // The walk's reference still holds the request: done() cannot have run yet.
  if (req->walk_status.ok() && req->on_submitted) req->on_submitted();
  unit_done(req);  // drops the walk's reference: req may be gone after this
  return use;
}

void DirectIo::unit_done(Request* req) {
  bool last;
  {
    MutexLock lock(req->mu);
    last = --req->pending == 0;
  }
  if (last) finish(req);
}

void DirectIo::finish(Request* req) {
  std::unique_ptr<Request> owned(req);
  Result<size_t> result = size_t(0);
  if (!req->write) {
    Status st = req->walk_status;
    for (auto& slot : req->units)
      if (st.ok() && !slot.status.ok()) st = slot.status;
    if (!st.ok()) {
      result = st;
    } else {
      if (req->temp.data() && req->len) {
        std::memcpy(req->user_dst.data(), req->temp.data() + (req->pos - req->apos), req->len);
        stats_.unaligned_copy_bytes.fetch_add(req->len, std::memory_order_relaxed);
      }
      result = req->len;
    }
  } else if (req->len > 0) {
    // The ioend runs on the completion thread: out of memory here is an ENOMEM answer, never
    // an exception (the in-memory reservation of the pieces is then lost until remount).
    try {
      // The contiguous prefix of units that reached the device is what gets committed; every
      // piece after it is handed back unwritten so its space is released.
      Status first_error = req->walk_status;
      std::vector<WrittenRange> written;
      uint64_t prefix_end = req->apos;
      bool broken = false;
      size_t last_range = SIZE_MAX;
      for (auto& slot : req->units) {
        const WrittenRange& r = req->ranges[slot.range];
        if (!broken && !slot.status.ok()) {
          if (first_error.ok()) first_error = slot.status;
          broken = true;
        }
        const bool ok = !broken;
        // One WrittenRange per mapping and outcome (a mapping's units are contiguous).
        if (written.empty() || slot.range != last_range || written.back().reached_device != ok)
          written.push_back({r.map, slot.file_pos, 0, ok, {}});
        last_range = slot.range;
        WrittenRange& w = written.back();
        w.len += slot.unit->length();
        if (ok) {
          w.checksums.insert(w.checksums.end(), slot.unit->checksums().begin(), slot.unit->checksums().end());
          prefix_end = slot.file_pos + slot.unit->length();
        }
      }
      const uint64_t user_end = req->pos + req->len;
      const uint64_t end_pos = std::min(prefix_end, user_end);
      Status st = completion_.complete_writes(req->ino, written, end_pos, first_error);
      size_t bytes = end_pos > req->pos ? static_cast<size_t>(end_pos - req->pos) : 0;
      if (!st.ok()) result = st;
      else if (bytes == 0 && !first_error.ok()) result = first_error;
      else result = bytes;
    } catch (const std::bad_alloc&) {
      result = Status::error(ENOMEM, "out of memory");  // short: no allocation
    }
  }
  req->lock.reset();
  Done done = std::move(req->done);
  owned.reset();  // frees bounce chunks and the private buffer before answering
  done(std::move(result));
}

Result<size_t> DirectIo::read_sync(uint64_t ino, uint64_t pos, std::span<uint8_t> dst, ReadMemory memory) {
  std::promise<Result<size_t>> p;
  auto f = p.get_future();
  read(ino, pos, dst, memory, [&p](Result<size_t> r) { p.set_value(std::move(r)); });
  return wait_for_io(f);
}

Result<size_t> DirectIo::write_sync(uint64_t ino, uint64_t pos, std::span<const uint8_t> src) {
  std::promise<Result<size_t>> p;
  auto f = p.get_future();
  (void)write_request(ino, pos, {src, {}, {}}, [&p](Result<size_t> r) { p.set_value(std::move(r)); }, true);
  return wait_for_io(f);
}

Result<size_t> DirectIo::write_sync_locked(uint64_t ino, uint64_t pos, std::span<const uint8_t> src) {
  std::promise<Result<size_t>> p;
  auto f = p.get_future();
  (void)write_request(ino, pos, {src, {}, {}}, [&p](Result<size_t> r) { p.set_value(std::move(r)); }, false);
  return wait_for_io(f);
}

Result<size_t> DirectIo::read_sync_locked(uint64_t ino, uint64_t pos, std::span<uint8_t> dst, ReadMemory memory) {
  std::promise<Result<size_t>> p;
  auto f = p.get_future();
  read_request(ino, pos, dst, memory, [&p](Result<size_t> r) { p.set_value(std::move(r)); }, false);
  return wait_for_io(f);
}

Result<size_t> DirectIo::relocate_sync_locked(uint64_t ino, uint64_t pos, std::span<const uint8_t> src) {
  if (pos % block_size_ != 0 || src.size() % block_size_ != 0)
    return Status::error(EINVAL, where(ino, pos) + ": relocation of a range that is not block aligned");
  std::promise<Result<size_t>> p;
  auto f = p.get_future();
  (void)write_request(ino, pos, {src, {}, {}}, [&p](Result<size_t> r) { p.set_value(std::move(r)); }, false,
                      kIomapRelocate);
  return wait_for_io(f);
}

}  // namespace stablefs
