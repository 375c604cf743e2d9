// CommitTimer: the mount daemon's periodic journal commit — Volume::sync() every `seconds`
// (the commit= mount option), so that what was written reaches stable media within that
// interval even when nobody calls fsync. A failure is logged to syslog; the next tick tries
// again (a store that shut down keeps failing and says so).
//
// Threads: constructed and destroyed on the daemon's main thread; its own thread calls
// Volume::sync (thread-safe). The Volume must outlive it. seconds 0: no thread, no commits.
#pragma once

#include <thread>

#include "bounce/mutex.h"
#include "fs/volume.h"

namespace stablefs {

class CommitTimer {
 public:
  CommitTimer(Volume& volume, unsigned seconds);
  // Stops the thread (waits for a commit in progress).
  ~CommitTimer();
  CommitTimer(const CommitTimer&) = delete;
  CommitTimer& operator=(const CommitTimer&) = delete;

 private:
  Mutex mu_;
  CondVar wake_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace stablefs
