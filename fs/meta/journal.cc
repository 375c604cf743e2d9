#include "fs/meta/journal.h"

#include <algorithm>
#include <cstring>

#include "bounce/aligned_buffer.h"
#include "bounce/checksum.h"
#include "fs/format/endian.h"

namespace stablefs {
namespace {

// Journal header body.
constexpr size_t kHdrStartSeq = 48;
// Descriptor body. Every descriptor of a transaction carries its sequence, the image count N
// and the descriptor count D; descriptor k names the home blocks of images [k*cap, (k+1)*cap).
constexpr size_t kDescSeq = 48, kDescCount = 56, kDescBlocks = 60, kDescTargets = 64;
// Commit body.
constexpr size_t kCommitSeq = 48, kCommitCount = 56, kCommitPayloadChecksum = 64;
// Largest long transaction (kIncompatLongTransactions), in images: 32 MiB of 4 KiB blocks.
// Random overwrites dirty a tree leaf or two each; the longer a transaction, the more of them
// share a leaf, and the fewer bytes each costs in the log and at checkpoint.
constexpr size_t kMaxLongTransactionBlocks = 8192;

size_t descriptor_capacity(uint32_t block_size) { return (block_size - kDescTargets) / 8; }
size_t descriptors_for(size_t images, uint32_t block_size) {
  return std::max<size_t>(1, (images + descriptor_capacity(block_size) - 1) / descriptor_capacity(block_size));
}

// Home blocks a transaction may name: the superblock, bitmaps and the data area.
bool valid_home(const Superblock& sb, uint64_t b) {
  return b == 0 || (b >= sb.bitmap_start && b < sb.total_blocks - 1);
}

}  // namespace

Status Journal::write_header(BlockDevice& dev, const Superblock& sb, uint64_t start_seq) {
  AlignedBuffer blk(sb.block_size);
  put64(blk.data() + kHdrStartSeq, start_seq);
  stamp_block(blk.span(), BlockType::kJournalHeader, sb.journal_start, sb.uuid, start_seq);
  SFS_TRY(dev.write(sb.journal_start * sb.block_size, blk.data(), sb.block_size));
  return dev.flush();
}

Status Journal::format(BlockDevice& dev, const Superblock& sb) { return write_header(dev, sb, 1); }

Result<Journal::LogContents> Journal::read_log(BlockDevice& dev, const Superblock& sb) {
  const uint32_t bs = sb.block_size;
  AlignedBuffer hdr(bs);
  SFS_TRY(dev.read(sb.journal_start * bs, hdr.data(), bs));
  SFS_TRY(verify_block(hdr.span(), BlockType::kJournalHeader, sb.journal_start, sb.uuid).with_context("journal"));
  LogContents log;
  log.start_seq = get64(hdr.data() + kHdrStartSeq);
  log.next_seq = log.start_seq;
  const uint64_t start = sb.journal_start + 1, end = sb.journal_start + sb.journal_blocks;
  uint64_t pos = start;
  const bool long_ok = sb.incompat & kIncompatLongTransactions;
  const size_t cap = descriptor_capacity(bs);
  AlignedBuffer first(bs), commit(bs);
  while (pos + 2 <= end) {
    if (!dev.read(pos * bs, first.data(), bs).ok()) break;
    if (!verify_block(first.span(), BlockType::kJournalDescriptor, pos, sb.uuid).ok()) break;
    if (get64(first.data() + kDescSeq) != log.next_seq) break;
    const uint32_t count = get32(first.data() + kDescCount);
    const uint32_t ndesc = std::max<uint32_t>(1, get32(first.data() + kDescBlocks));  // 0: written before the field
    if (ndesc > 1 && !long_ok) break;
    if (ndesc != descriptors_for(count, bs) || pos + ndesc + count + 1 > end) break;
    AlignedBuffer desc(size_t(ndesc) * bs);
    std::memcpy(desc.data(), first.data(), bs);
    if (ndesc > 1 && !dev.read((pos + 1) * bs, desc.data() + bs, size_t(ndesc - 1) * bs).ok()) break;
    bool descriptors_ok = true;
    for (uint32_t k = 1; k < ndesc && descriptors_ok; ++k) {
      std::span<const uint8_t> d(desc.data() + size_t(k) * bs, bs);
      descriptors_ok = verify_block(d, BlockType::kJournalDescriptor, pos + k, sb.uuid).ok() &&
                       get64(d.data() + kDescSeq) == log.next_seq && get32(d.data() + kDescCount) == count &&
                       get32(d.data() + kDescBlocks) == ndesc;
    }
    if (!descriptors_ok) break;
    auto home_of = [&](uint32_t i) { return get64(desc.data() + size_t(i / cap) * bs + kDescTargets + 8 * (i % cap)); };
    AlignedBuffer images(size_t(count) * bs);
    const uint64_t ipos = pos + ndesc;
    if (count && !dev.read(ipos * bs, images.data(), size_t(count) * bs).ok()) break;
    uint64_t cpos = ipos + count;
    if (!dev.read(cpos * bs, commit.data(), bs).ok()) break;
    if (!verify_block(commit.span(), BlockType::kJournalCommit, cpos, sb.uuid).ok()) break;
    if (get64(commit.data() + kCommitSeq) != log.next_seq || get32(commit.data() + kCommitCount) != count) break;
    Xxh3Stream h;
    h.update(desc.data(), size_t(ndesc) * bs);
    h.update(images.data(), size_t(count) * bs);
    if (h.digest() != get64(commit.data() + kCommitPayloadChecksum)) break;  // torn transaction
    // A transaction that passed its commit checksum yet carries a bad image was forged or
    // written by a bug: refuse the whole log rather than write anything home.
    for (uint32_t i = 0; i < count; ++i) {
      uint64_t home = home_of(i);
      std::string where = "journal transaction " + std::to_string(log.next_seq) + " at block " + std::to_string(pos);
      if (!valid_home(sb, home))
        return Status::error(EUCLEAN, where + " names block " + std::to_string(home) + " outside the metadata area");
      std::span<const uint8_t> img(images.data() + size_t(i) * bs, bs);
      BlockType type = home == 0 ? BlockType::kSuperblock
                       : home < sb.data_start ? BlockType::kBitmap
                                              : BlockType::kBtreeNode;
      Status st = verify_block(img, type, home, sb.uuid);
      if (!st.ok()) return Status::error(EUCLEAN, where + ": image of " + st.message());
      if (type == BlockType::kSuperblock) {
        auto logged = Superblock::decode(img, dev.size_bytes());
        if (!logged.ok()) return logged.status().with_context(where + ": superblock image");
        if (logged->total_blocks != sb.total_blocks || logged->journal_blocks != sb.journal_blocks ||
            logged->block_size != sb.block_size)
          return Status::error(EUCLEAN, where + ": superblock image describes a different geometry");
      }
    }
    for (uint32_t i = 0; i < count; ++i) {
      uint64_t home = home_of(i);
      const uint8_t* img = images.data() + size_t(i) * bs;
      log.images[home].assign(img, img + bs);
    }
    ++log.transactions;
    ++log.next_seq;
    pos = cpos + 1;
  }
  log.end_block = pos;
  return log;
}

Status Journal::replay(BlockDevice& dev, const Superblock& sb, const LogContents& log) {
  if (log.transactions == 0) return {};
  AlignedBuffer blk(sb.block_size);
  for (const auto& [home, image] : log.images) {
    std::memcpy(blk.data(), image.data(), sb.block_size);
    SFS_TRY(dev.write(home * sb.block_size, blk.data(), sb.block_size));
  }
  SFS_TRY(dev.flush());
  return write_header(dev, sb, log.next_seq);
}

Journal::Journal(BlockDevice& dev, const Superblock& sb, uint64_t next_seq)
    : dev_(dev), sb_(sb), next_seq_(next_seq), head_(sb.journal_start + 1) {}

size_t Journal::max_transaction_blocks() const {
  const size_t single = std::min<size_t>(descriptor_capacity(sb_.block_size), log_blocks_total() / 2 - 1);
  if (!(sb_.incompat & kIncompatLongTransactions)) return single;
  // A quarter of the log, so a checkpoint comes every three or four long transactions.
  return std::max(single, std::min(kMaxLongTransactionBlocks, log_blocks_total() / 4));
}

bool Journal::fits(size_t n) const { return head_ + descriptors_for(n, sb_.block_size) + n + 1 <= log_end(); }

Status Journal::commit(const std::vector<BufferRef>& bufs) {
  if (bufs.empty()) return {};
  if (bufs.size() > max_transaction_blocks())
    return Status::error(EFBIG, "journal: transaction of " + std::to_string(bufs.size()) + " blocks exceeds the log");
  if (!fits(bufs.size()))  // commit() keeps room for a maximal transaction, so this is a caller bug
    return Status::error(EFBIG, "journal: no room for a transaction of " + std::to_string(bufs.size()) + " blocks");
  const uint32_t bs = sb_.block_size;
  const uint64_t seq = next_seq_;
  const size_t n = bufs.size();
  const size_t cap = descriptor_capacity(bs);
  const size_t ndesc = descriptors_for(n, bs);
  AlignedBuffer run((ndesc + n + 1) * size_t(bs));
  for (size_t k = 0; k < ndesc; ++k) {
    uint8_t* desc = run.data() + k * bs;
    put64(desc + kDescSeq, seq);
    put32(desc + kDescCount, static_cast<uint32_t>(n));
    put32(desc + kDescBlocks, static_cast<uint32_t>(ndesc));
  }
  for (size_t i = 0; i < n; ++i) {
    Buffer& b = *bufs[i];
    put64(run.data() + (i / cap) * bs + kDescTargets + 8 * (i % cap), b.blocknr);
    stamp_block(b.span(), b.type, b.blocknr, sb_.uuid, seq);
    std::memcpy(run.data() + (ndesc + i) * bs, b.data(), bs);
  }
  for (size_t k = 0; k < ndesc; ++k)
    stamp_block({run.data() + k * bs, bs}, BlockType::kJournalDescriptor, head_ + k, sb_.uuid, seq);
  uint8_t* commit = run.data() + (ndesc + n) * bs;
  put64(commit + kCommitSeq, seq);
  put32(commit + kCommitCount, static_cast<uint32_t>(n));
  Xxh3Stream h;
  h.update(run.data(), (ndesc + n) * size_t(bs));
  put64(commit + kCommitPayloadChecksum, h.digest());
  stamp_block({commit, bs}, BlockType::kJournalCommit, head_ + ndesc + n, sb_.uuid, seq);
  SFS_TRY(dev_.write(head_ * bs, run.data(), run.size()));
  SFS_TRY(dev_.flush());
  for (const BufferRef& b : bufs) {
    b->in_transaction = false;
    b->needs_checkpoint = true;
    checkpoint_[b->blocknr] = b;
  }
  head_ += ndesc + n + 1;
  ++next_seq_;
  return {};
}

Status Journal::checkpoint() {
  const uint32_t bs = sb_.block_size;
  // Home writes in block order, neighbours gathered into one write of up to
  // kCheckpointRunBlocks (tree nodes are allocated from the top of the device, bitmaps lie
  // together): a long transaction's thousands of blocks go home in far fewer writes. The
  // superblock (block 0) first is fine: the log still holds every image until the header
  // moves, so a crash here replays them all again.
  constexpr size_t kCheckpointRunBlocks = 256;
  AlignedBuffer gather(kCheckpointRunBlocks * size_t(bs));
  uint64_t run_start = 0;
  size_t run_len = 0;
  auto write_run = [&]() -> Status {
    if (run_len == 0) return {};
    Status st = dev_.write(run_start * bs, gather.data(), run_len * bs);
    run_len = 0;
    return st;
  };
  for (auto& [blocknr, buf] : checkpoint_) {
    if (!buf->needs_checkpoint) continue;  // freed since it was committed
    if (run_len > 0 && (blocknr != run_start + run_len || run_len == kCheckpointRunBlocks)) SFS_TRY(write_run());
    if (run_len == 0) run_start = blocknr;
    std::memcpy(gather.data() + run_len * bs, buf->data(), bs);
    ++run_len;
  }
  SFS_TRY(write_run());
  SFS_TRY(dev_.flush());
  SFS_TRY(write_header(dev_, sb_, next_seq_));
  for (auto& [blocknr, buf] : checkpoint_) buf->needs_checkpoint = false;
  checkpoint_.clear();
  head_ = log_start();
  return {};
}

}  // namespace stablefs
