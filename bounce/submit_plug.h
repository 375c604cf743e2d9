// SubmitPlug: a thread holds its device submissions back while it has more requests at hand,
// then hands them to the kernel together — the block layer's plug, for the daemon's queue.
//
// While a thread has a plug open, IoQueue::submit (ring mode) stages the request and returns
// without the io_uring_enter; the thread's next flush submits everything it staged with one
// enter. The FUSE reader keeps a plug open while it reads requests the kernel already queued,
// and flushes when the queue runs dry, before a request other than READ or WRITE, and before
// it passes its turn (fs/fuse/fuse_receive_loop.cc). At most kMaxStaged requests wait in a
// plug; the next is submitted at once, with them.
//
// A plugged thread must never sleep on its own staged I/O, nor on a thread that waits for it.
// So a thread flushes its plug before it may sleep, as the kernel flushes a task's plug before
// the task sleeps: a CondVar wait and a contended Mutex do it (bounce/mutex.h); a wait outside
// those (a future: wait_for_io, a poll) flushes first itself. Staged requests are also
// submitted by any other thread's submission to the same queue.
//
// Thread-local: a plug belongs to the thread that opened it and holds the requests of one
// queue at a time (a request for another queue is submitted at once). Plugs do not nest.
#pragma once

#include <future>

namespace stablefs {

class SubmitPlug {
 public:
  static constexpr unsigned kMaxStaged = 16;

  SubmitPlug();   // opens this thread's plug
  ~SubmitPlug();  // flushes, and closes it
  SubmitPlug(const SubmitPlug&) = delete;
  SubmitPlug& operator=(const SubmitPlug&) = delete;

  // Submits what this thread staged, now.
  void flush();
};

// Submits what this thread's plug holds, if anything (a no-op without a plug).
void flush_submit_plug();

// Waits for f, flushing this thread's plug first: how a thread waits for device I/O outside
// a CondVar (a promise its completion fulfils).
template <typename T>
T wait_for_io(std::future<T>& f) {
  flush_submit_plug();
  return f.get();
}

// For IoQueue: offers the plug one request just staged on queue. True: the plug holds it, and
// flush(queue) will submit it when this thread flushes or waits. False: no plug is open, it is
// full, or it holds another queue's requests; the caller submits now (with what the plug held
// for queue; it then calls submit_plug_forget). Called with the queue's lock held: it touches
// only this thread's state.
bool submit_plug_take(void* queue, void (*flush)(void* queue));

// For IoQueue: the queue submitted what was staged on it; the plug forgets it holds any.
void submit_plug_forget(void* queue);

}  // namespace stablefs
