#include "fs/fuse/commit_timer.h"

#include <syslog.h>

#include <chrono>

namespace stablefs {

CommitTimer::CommitTimer(Volume& volume, unsigned seconds) {
  if (seconds == 0) return;
  thread_ = std::thread([this, &volume, seconds] {
    const auto interval = std::chrono::seconds(seconds);
    MutexLock lock(mu_);
    for (;;) {
      const auto deadline = std::chrono::steady_clock::now() + interval;
      while (!stop_ && std::chrono::steady_clock::now() < deadline)
        wake_.wait_for(mu_, deadline - std::chrono::steady_clock::now());
      if (stop_) return;
      mu_.unlock();
      Status st = volume.sync();
      if (!st.ok()) syslog(LOG_ERR, "periodic commit failed: %s", st.message().c_str());
      mu_.lock();
    }
  });
}

CommitTimer::~CommitTimer() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace stablefs
