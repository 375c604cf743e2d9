// The daemon's standard error, once it has detached from the terminal: every line the layers
// write there (a filesystem shutting down, data errors, refused requests) goes to syslog at
// LOG_ERR under the ident openlog() set, so it is logged where a daemon's messages go.
#pragma once

namespace stablefs::cli {

// Points fd 2 at a pipe read by a detached thread that passes each line on to syslog(3).
// Call once, in the daemon after fork (the thread lives as long as the process). False when
// the pipe or the thread cannot be made; fd 2 is then left as it was.
bool send_stderr_to_syslog();

}  // namespace stablefs::cli
