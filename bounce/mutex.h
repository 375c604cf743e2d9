// Mutex, MutexLock and the thread-safety annotations every lock of stablefs carries.
//
// clang's -Wthread-safety checks the annotations at compile time (the test command has a
// clang build with -Wthread-safety -Werror); other compilers see plain macros. A member
// written GUARDED_BY(mu_) may be touched only with mu_ held; a function REQUIRES(mu_) is
// called with it held, EXCLUDES(mu_) without. std::mutex carries no annotations in
// libstdc++, hence this thin wrapper.
//
// The lock order of the filesystem, outermost first (a thread holding one may take only
// those below it):
//   1. a file's range lock (iomap/range_lock.h: RangeLock, FileRangeLocks)
//   2. the metadata lock (fs/inode/inode_table.h: InodeTable::mutex())
//   3. leaf locks, each held only for a few instructions and never while taking another:
//      buffer cache, bounce pool, I/O queue, request counters, log rate limiting.
// A thread flushing its submission plug before it may sleep (bounce/submit_plug.h) takes the
// I/O queue's lock under whatever it holds, except a CondVar's mutex, which the wait releases
// first; the I/O queue's lock is a leaf, so this adds no cycle.
// The thread that runs a unit's completion (the I/O completion thread, or the submitter with an
// inline queue, which may hold its request's range lock) never takes 1 or 2 meanwhile, except
// in the ioend (IomapWriteCompletion), which takes 2 and holds no leaf lock meanwhile.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define SFS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define SFS_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) SFS_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY SFS_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) SFS_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) SFS_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) SFS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) SFS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) SFS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) SFS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RETURN_CAPABILITY(x) SFS_THREAD_ANNOTATION(lock_returned(x))
#define ASSERT_CAPABILITY(x) SFS_THREAD_ANNOTATION(assert_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS SFS_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace stablefs {

// What a thread must do before it may sleep, if anything: set by a thread whose submission
// plug holds device requests back (bounce/submit_plug.h), so that no thread sleeps waiting for
// I/O it staged itself. Run before a CondVar wait (with the wait's mutex released) and before
// waiting for a Mutex another thread holds (with the caller's other locks held: it takes only
// the I/O queue's leaf lock). Cleared before it runs; this thread's only.
inline thread_local void (*t_before_wait)() = nullptr;

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  // A thread that finds the mutex held runs its t_before_wait first.
  void lock() ACQUIRE() {
    if (mu_.try_lock()) return;
    if (void (*before)() = t_before_wait) {
      t_before_wait = nullptr;
      before();
    }
    mu_.lock();
  }
  void unlock() RELEASE() { mu_.unlock(); }
  // Tells the analysis the caller holds this mutex (checked by nothing at run time).
  void assert_held() const ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;  // waits on mu_
  std::mutex mu_;
};

// Holds a Mutex for the guard's scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// A condition variable used with a Mutex. Every wait REQUIRES that mutex held; it is released
// while waiting and held again when the wait returns. A wait first runs the thread's
// t_before_wait, if set, with the mutex released; a wait without a predicate then returns at
// once, as a spurious wakeup (every caller looks at its condition again).
class CondVar {
 public:
  // Waits for one notification (or a spurious wakeup).
  void wait(Mutex& mu) REQUIRES(mu) {
    if (run_before_wait(mu)) return;
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  template <typename Pred>
  void wait(Mutex& mu, Pred pred) REQUIRES(mu) {
    if (holds(pred)) return;
    run_before_wait(mu);
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    cv_.wait(lock, pred);
    lock.release();
  }
  // Waits for one notification or until timeout passes (or a spurious wakeup).
  template <typename Duration>
  void wait_for(Mutex& mu, Duration timeout) REQUIRES(mu) {
    if (run_before_wait(mu)) return;
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    cv_.wait_for(lock, timeout);
    lock.release();
  }
  void notify_one() { cv_.notify_one(); }
  void notify_all() { cv_.notify_all(); }

 private:
  // pred(), which REQUIRES the wait's mutex: the analysis cannot tie that to the mutex
  // passed in, as it cannot where std::condition_variable calls it.
  template <typename Pred>
  static bool holds(Pred& pred) NO_THREAD_SAFETY_ANALYSIS {
    return pred();
  }

  // Runs this thread's t_before_wait, if set, with mu released; whether it ran.
  static bool run_before_wait(Mutex& mu) REQUIRES(mu) {
    void (*before)() = t_before_wait;
    if (before == nullptr) return false;
    t_before_wait = nullptr;
    mu.unlock();
    before();
    mu.lock();
    return true;
  }

  std::condition_variable cv_;
};

}  // namespace stablefs
