#include "iomap/scrub.h"

#include <algorithm>
#include <future>
#include <optional>

#include "bounce/submit_plug.h"
#include "iomap/iomap_iter.h"

namespace stablefs {
namespace {

struct UnitOutcome {
  Status status;
  std::vector<BadBlock> bad;
  size_t transients = 0;
};

// Reads [dev_addr, + dst.size()) into dst as one unit, verified against expected; waits.
UnitOutcome read_unit(const ScrubIo& io, uint64_t dev_addr, std::span<uint8_t> dst,
                      std::vector<std::optional<uint64_t>> expected) {
  std::unique_ptr<IoUnit> unit = IoUnit::build_read(dev_addr, dst, false, io.pool, io.geometry, std::move(expected));
  std::promise<UnitOutcome> p;
  std::future<UnitOutcome> f = p.get_future();
  unit->submit(io.queue, io.stats, [&p](IoUnit& u, Status st) {
    p.set_value({std::move(st), u.bad_blocks(), u.transient_blocks()});
  });
  return wait_for_io(f);
}

// Scrubs one mapped piece [0, n) of dst starting at device address dev and file offset pos.
Status scrub_piece(IomapOps& ops, const ScrubIo& io, uint64_t pos, uint64_t dev, std::span<uint8_t> dst,
                   ScrubRangeResult& out) {
  const uint32_t bs = io.geometry.checksum_block;
  std::vector<std::optional<uint64_t>> expected(dst.size() / bs);
  SFS_TRY(ops.read_checksums(dev, expected));
  UnitOutcome r = read_unit(io, dev, dst, expected);
  out.transients += r.transients;
  if (r.status.ok()) {
    out.bytes_read += dst.size();
    return {};
  }
  if (!r.bad.empty()) {
    out.bytes_read += dst.size();
    for (const BadBlock& b : r.bad)
      out.findings.push_back({pos + b.index * bs, bs, dev / bs + b.index, false, b.expected, b.found, {}});
    return {};
  }
  // The device failed the unit: name each block it cannot read (the rest is checked too).
  for (size_t i = 0; i < expected.size(); ++i) {
    UnitOutcome one = read_unit(io, dev + i * bs, dst.subspan(i * bs, bs), {expected[i]});
    out.transients += one.transients;
    if (one.status.ok()) {
      out.bytes_read += bs;
    } else if (!one.bad.empty()) {
      out.bytes_read += bs;
      out.findings.push_back({pos + i * bs, bs, dev / bs + i, false, one.bad[0].expected, one.bad[0].found, {}});
    } else {
      out.findings.push_back({pos + i * bs, bs, dev / bs + i, true, 0, 0, one.status.message()});
    }
  }
  return {};
}

}  // namespace

Result<ScrubRangeResult> iomap_scrub_range(IomapOps& ops, const ScrubIo& io, uint64_t ino, uint64_t pos, uint64_t len,
                                           std::span<uint8_t> buffer) {
  ScrubRangeResult out;
  const uint32_t bs = io.geometry.checksum_block;
  const size_t unit = buffer.size() / bs * bs;
  if (unit == 0) return Status::error(EINVAL, "scrub buffer smaller than a block");
  IomapIter it(ops, ino, pos, len, kIomapReport);
  while (it.next()) {
    const uint64_t n = it.length();
    if (it.map().type == IomapType::kMapped) {
      for (uint64_t off = 0; off < n; off += unit) {
        const size_t piece = static_cast<size_t>(std::min<uint64_t>(unit, n - off));
        Status st = scrub_piece(ops, io, it.pos() + off, it.dev_addr() + off, buffer.first(piece), out);
        if (!st.ok()) {
          it.advance(off);
          it.fail(st);
          break;
        }
      }
      if (!it.status().ok()) continue;
    }
    it.advance(n);
  }
  SFS_TRY(it.status());
  return out;
}

}  // namespace stablefs
