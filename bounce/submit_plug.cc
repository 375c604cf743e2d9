#include "bounce/submit_plug.h"

#include "bounce/mutex.h"

namespace stablefs {
namespace {

struct PlugState {
  bool open = false;
  void* queue = nullptr;  // whose requests the plug holds, if any
  void (*flush)(void*) = nullptr;
  unsigned staged = 0;
};

thread_local PlugState t_plug;

// Forgets what the plug holds (it has gone to the kernel, or is about to).
void clear_plug() {
  t_plug.queue = nullptr;
  t_plug.flush = nullptr;
  t_plug.staged = 0;
  t_before_wait = nullptr;
}

}  // namespace

SubmitPlug::SubmitPlug() { t_plug.open = true; }

SubmitPlug::~SubmitPlug() {
  flush();
  t_plug.open = false;
}

void SubmitPlug::flush() { flush_submit_plug(); }

void flush_submit_plug() {
  void* queue = t_plug.queue;
  void (*flush)(void*) = t_plug.flush;
  clear_plug();
  if (queue) flush(queue);
}

bool submit_plug_take(void* queue, void (*flush)(void*)) {
  if (!t_plug.open) return false;
  if (t_plug.queue != nullptr && t_plug.queue != queue) return false;
  if (t_plug.staged >= SubmitPlug::kMaxStaged) return false;
  t_plug.queue = queue;
  t_plug.flush = flush;
  ++t_plug.staged;
  t_before_wait = &flush_submit_plug;
  return true;
}

void submit_plug_forget(void* queue) {
  if (t_plug.queue == queue) clear_plug();
}

}  // namespace stablefs
