// The scrub requests of the control protocol (fs/fuse/control_protocol.h), both sides:
//   {"op": "scrub", "action": "start", "rate": BYTES_PER_SECOND}   (rate 0 or absent: no limit)
//   {"op": "scrub", "action": "resume", "rate": N}                 (absent: the rate it had)
//   {"op": "scrub", "action": "status" | "pause" | "cancel"}
// -> {"ok": true, "scrub": <scrub_status_to_json>, "damaged_files": [...]} (the status after the
// action; damaged_files as in the stats reply), or a failure reply (EBUSY, EINVAL as Scrubber
// gives them). No call throws except std::bad_alloc.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "fs/scrub.h"

namespace stablefs {

struct ScrubRequest {
  std::string action;  // start, status, pause, resume, cancel
  std::optional<uint64_t> rate;
};

nlohmann::json scrub_request(const ScrubRequest& r);
// EPROTO when the request does not have that shape (or names an unknown action).
Result<ScrubRequest> scrub_request_from_json(const nlohmann::json& j);

nlohmann::json scrub_status_to_json(const ScrubStatus& s);
// EPROTO when the document does not have the shape scrub_status_to_json gives.
Result<ScrubStatus> scrub_status_from_json(const nlohmann::json& j);

// Carries out a scrub request on scrubber; the reply's "scrub" field (or the failure).
Result<nlohmann::json> answer_scrub_request(Scrubber& scrubber, const nlohmann::json& request);

}  // namespace stablefs
