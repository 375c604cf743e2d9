// The control protocol between the stablefs command and a mount daemon, on the unix socket
// beside the daemon's runtime file (root only).
//
// One request per connection: the client sends a JSON object on one line, the daemon answers
// with one JSON object and closes the connection. Requests:
//   {"op": "stats"}            -> {"ok": true, "report": "<the text of stablefs stats>",
//                                  "damaged_files": [{"ino": N, "blocks": N, "first_offset": N}...]}
//   {"op": "map", "ino": N}    -> {"ok": true, "map": <file_map_to_json>}
//   {"op": "sync"}             -> {"ok": true} once everything written so far is durable
//                                 (journal commit and device flush: Volume::sync)
//   {"op": "scrub", ...}       -> the online scrub (fs/fuse/scrub_protocol.h)
//   {"op": "defrag", "ino": N, "from": OFFSET}
//                              -> {"ok": true, "chunks": N, "moved_chunks": N, "moved_bytes": N,
//                                  "fragments_before": N, "failed_chunks": N, "done": B,
//                                  "next": OFFSET} once up to 64 chunks from OFFSET (default 0)
//                                  are looked at (Defragmenter::defragment_file); the client
//                                  asks again from "next" until "done"
//   {"op": "remount", "read_only": B, "atime": "never"|"relative"|"always", "dir_atime": B}
//                              -> {"ok": true} once the daemon applies them (FuseServer::remount)
// A failure is {"ok": false, "errno": E, "error": "<one line>"}. Both sides are in this file's
// .cc so they cannot drift apart. No call throws (JSON errors become Status values), except
// std::bad_alloc.
#pragma once

#include <sys/un.h>

#include <nlohmann/json.hpp>

#include <set>
#include <string>

#include "fs/file_map.h"
#include "fs/fuse/fuse_adapter.h"

namespace stablefs {

// Reads an unsigned number field of object j into out; false when absent or not one.
bool get_u64(const nlohmann::json& j, const char* key, uint64_t& out);

// The JSON form of a FileMap (also what `stablefs map --json` prints under "map").
nlohmann::json file_map_to_json(const FileMap& m);
// The FileMap a daemon sent; EPROTO when the document does not have its shape.
Result<FileMap> file_map_from_json(const nlohmann::json& j);

// The remount request for settings, and the settings a remount request carries (EPROTO when
// it does not have the request's shape).
nlohmann::json remount_request(const RemountSettings& settings);
Result<RemountSettings> remount_settings_from_json(const nlohmann::json& request);

// The damaged files a Volume's DataErrorLog remembers, as the stats reply carries them.
nlohmann::json damaged_files_to_json(Volume& v);
// The inodes a stats or scrub reply lists as damaged (none when it lists none).
std::set<uint64_t> damaged_files_from_reply(const nlohmann::json& reply);

// A success reply with `fields` added, and a failure reply for st.
nlohmann::json control_ok(nlohmann::json fields = nlohmann::json::object());
nlohmann::json control_error(const Status& st);

// addr for a unix socket at path; false when the path is too long for one.
bool unix_socket_address(const std::string& path, sockaddr_un& addr);

// Client side: sends request to the daemon listening on socket_path and returns its reply
// when it is a success; a failure reply becomes its Status. ECONNREFUSED (with a message
// saying no daemon answers) when nothing listens there; ETIMEDOUT after timeout_seconds
// without an answer; EPROTO for a reply that is not JSON.
Result<nlohmann::json> control_call(const std::string& socket_path, const nlohmann::json& request,
                                    int timeout_seconds);

// Text for output: JSON that stays valid whatever bytes strings hold (invalid UTF-8 is
// replaced by U+FFFD). indent < 0: one line.
std::string json_text(const nlohmann::json& j, int indent);

}  // namespace stablefs
