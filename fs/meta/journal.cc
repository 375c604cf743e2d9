#include "fs/meta/journal.h"

#include <cstring>

#include "bounce/aligned_buffer.h"
#include "bounce/checksum.h"
#include "fs/format/endian.h"

namespace stablefs {
namespace {

// Journal header body.
constexpr size_t kHdrStartSeq = 48;
// Descriptor body.
constexpr size_t kDescSeq = 48, kDescCount = 56, kDescTargets = 64;
// Commit body.
constexpr size_t kCommitSeq = 48, kCommitCount = 56, kCommitPayloadChecksum = 64;

size_t descriptor_capacity(uint32_t block_size) { return (block_size - kDescTargets) / 8; }

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
  AlignedBuffer desc(bs), commit(bs);
  while (pos + 2 <= end) {
    if (!dev.read(pos * bs, desc.data(), bs).ok()) break;
    if (!verify_block(desc.span(), BlockType::kJournalDescriptor, pos, sb.uuid).ok()) break;
    if (get64(desc.data() + kDescSeq) != log.next_seq) break;
    uint32_t count = get32(desc.data() + kDescCount);
    if (count > descriptor_capacity(bs) || pos + count + 2 > end) break;
    AlignedBuffer images(size_t(count) * bs);
    if (count && !dev.read((pos + 1) * bs, images.data(), size_t(count) * bs).ok()) break;
    uint64_t cpos = pos + 1 + count;
    if (!dev.read(cpos * bs, commit.data(), bs).ok()) break;
    if (!verify_block(commit.span(), BlockType::kJournalCommit, cpos, sb.uuid).ok()) break;
    if (get64(commit.data() + kCommitSeq) != log.next_seq || get32(commit.data() + kCommitCount) != count) break;
    Xxh3Stream h;
    h.update(desc.data(), bs);
    h.update(images.data(), size_t(count) * bs);
    if (h.digest() != get64(commit.data() + kCommitPayloadChecksum)) break;  // torn transaction
    // A transaction that passed its commit checksum yet carries a bad image was forged or
    // written by a bug: refuse the whole log rather than write anything home.
    for (uint32_t i = 0; i < count; ++i) {
      uint64_t home = get64(desc.data() + kDescTargets + 8 * i);
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
      uint64_t home = get64(desc.data() + kDescTargets + 8 * i);
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
  return std::min<size_t>(descriptor_capacity(sb_.block_size), log_blocks_total() / 2 - 1);
}

bool Journal::fits(size_t n) const { return head_ + n + 2 <= log_end(); }

Status Journal::commit(const std::vector<BufferRef>& bufs) {
  if (bufs.empty()) return {};
  if (bufs.size() > max_transaction_blocks())
    return Status::error(EFBIG, "journal: transaction of " + std::to_string(bufs.size()) + " blocks exceeds the log");
  if (!fits(bufs.size()))  // commit() keeps room for a maximal transaction, so this is a caller bug
    return Status::error(EFBIG, "journal: no room for a transaction of " + std::to_string(bufs.size()) + " blocks");
  const uint32_t bs = sb_.block_size;
  const uint64_t seq = next_seq_;
  const size_t n = bufs.size();
  AlignedBuffer run((n + 2) * size_t(bs));
  uint8_t* desc = run.data();
  put64(desc + kDescSeq, seq);
  put32(desc + kDescCount, static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) {
    Buffer& b = *bufs[i];
    put64(desc + kDescTargets + 8 * i, b.blocknr);
    stamp_block(b.span(), b.type, b.blocknr, sb_.uuid, seq);
    std::memcpy(run.data() + (i + 1) * bs, b.data(), bs);
  }
  stamp_block({desc, bs}, BlockType::kJournalDescriptor, head_, sb_.uuid, seq);
  uint8_t* commit = run.data() + (n + 1) * bs;
  put64(commit + kCommitSeq, seq);
  put32(commit + kCommitCount, static_cast<uint32_t>(n));
  Xxh3Stream h;
  h.update(run.data(), (n + 1) * size_t(bs));
  put64(commit + kCommitPayloadChecksum, h.digest());
  stamp_block({commit, bs}, BlockType::kJournalCommit, head_ + n + 1, sb_.uuid, seq);
  SFS_TRY(dev_.write(head_ * bs, run.data(), run.size()));
  SFS_TRY(dev_.flush());
  for (const BufferRef& b : bufs) {
    b->in_transaction = false;
    b->needs_checkpoint = true;
    checkpoint_[b->blocknr] = b;
  }
  head_ += n + 2;
  ++next_seq_;
  return {};
}

Status Journal::checkpoint() {
  const uint32_t bs = sb_.block_size;
  // Home writes in block order; the superblock (block 0) first is fine: the log still holds
  // every image until the header moves, so a crash here replays them all again.
  for (auto& [blocknr, buf] : checkpoint_) {
    if (!buf->needs_checkpoint) continue;  // freed since it was committed
    SFS_TRY(dev_.write(blocknr * bs, buf->data(), bs));
  }
  SFS_TRY(dev_.flush());
  SFS_TRY(write_header(dev_, sb_, next_seq_));
  for (auto& [blocknr, buf] : checkpoint_) buf->needs_checkpoint = false;
  checkpoint_.clear();
  head_ = log_start();
  return {};
}

}  // namespace stablefs
