#include "iomap/data_error_log.h"

#include <algorithm>
#include <cstdio>

namespace stablefs {

bool DataErrorLog::record(uint64_t ino, uint64_t file_offset, uint64_t device_block, const std::string& message) {
  MutexLock lock(mu_);
  const std::pair<uint64_t, uint64_t> key{ino, device_block};
  if (blocks_.count(key)) return false;
  if (blocks_.size() < kMaxBlocks) blocks_.insert(key);
  ++recorded_;
  auto f = files_.find(ino);
  if (f == files_.end() && files_.size() < kMaxFiles) f = files_.emplace(ino, DamagedFile{ino, 0, file_offset}).first;
  if (f != files_.end()) {
    ++f->second.blocks;
    f->second.first_offset = std::min(f->second.first_offset, file_offset);
  }
  log(message);
  return true;
}

void DataErrorLog::log(const std::string& message) {
  const auto now = std::chrono::steady_clock::now();
  if (now - window_ >= std::chrono::seconds(1)) {
    window_ = now;
    logged_in_window_ = 0;
  }
  if (logged_in_window_ >= kLogBurst) {
    ++suppressed_;
    return;
  }
  ++logged_in_window_;
  if (suppressed_ > 0)
    std::fprintf(stderr, "stablefs: %llu similar messages suppressed\n", static_cast<unsigned long long>(suppressed_));
  suppressed_ = 0;
  std::fprintf(stderr, "stablefs: %s\n", message.c_str());
}

std::vector<DamagedFile> DataErrorLog::files() const {
  MutexLock lock(mu_);
  std::vector<DamagedFile> out;
  out.reserve(files_.size());
  for (const auto& [ino, f] : files_) out.push_back(f);
  return out;
}

uint64_t DataErrorLog::blocks_recorded() const {
  MutexLock lock(mu_);
  return recorded_;
}

}  // namespace stablefs
