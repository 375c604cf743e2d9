#include "fs/fuse/scrub_protocol.h"

#include "fs/fuse/control_protocol.h"

#include <array>
#include <utility>

namespace stablefs {
namespace {

constexpr std::array<const char*, 5> kActions = {"start", "status", "pause", "resume", "cancel"};
constexpr std::array<ScrubState, 6> kStates = {ScrubState::kNever,       ScrubState::kRunning,  ScrubState::kPaused,
                                               ScrubState::kInterrupted, ScrubState::kFinished, ScrubState::kCanceled};

bool get_bool(const nlohmann::json& j, const char* key, bool& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_boolean()) return false;
  out = it->get<bool>();
  return true;
}

bool get_double(const nlohmann::json& j, const char* key, double& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return false;
  out = it->get<double>();
  return true;
}

}  // namespace

nlohmann::json scrub_request(const ScrubRequest& r) {
  nlohmann::json j = {{"op", "scrub"}, {"action", r.action}};
  if (r.rate) j["rate"] = *r.rate;
  return j;
}

Result<ScrubRequest> scrub_request_from_json(const nlohmann::json& j) {
  const Status bad = Status::error(EPROTO, "a scrub request needs an \"action\" (start, status, pause, resume, cancel)");
  auto a = j.find("action");
  if (a == j.end() || !a->is_string()) return bad;
  ScrubRequest r;
  r.action = a->get<std::string>();
  if (std::find(kActions.begin(), kActions.end(), r.action) == kActions.end()) return bad;
  if (j.contains("rate")) {
    uint64_t rate = 0;
    if (!get_u64(j, "rate", rate)) return Status::error(EPROTO, "a scrub rate is a number of bytes per second");
    r.rate = rate;
  }
  return r;
}

nlohmann::json scrub_status_to_json(const ScrubStatus& s) {
  nlohmann::json findings = nlohmann::json::array();
  for (const ScrubFileFinding& f : s.findings) {
    nlohmann::json x = {{"ino", f.ino},
                        {"file_offset", f.finding.file_offset},
                        {"length", f.finding.length},
                        {"device_block", f.finding.device_block},
                        {"unreadable", f.finding.unreadable}};
    if (f.finding.unreadable) x["device_error"] = f.finding.device_error;
    else {
      x["expected"] = f.finding.expected;
      x["found"] = f.finding.found;
    }
    findings.push_back(std::move(x));
  }
  return {{"state", scrub_state_name(s.state)},
          {"next_ino", s.next_ino},
          {"next_offset", s.next_offset},
          {"bytes_checked", s.bytes_checked},
          {"bytes_estimate", s.bytes_estimate},
          {"rate_limit", s.rate_limit},
          {"elapsed_seconds", s.elapsed_seconds},
          {"data_errors", s.data_errors},
          {"unreadable", s.unreadable},
          {"transients", s.transients},
          {"metadata_errors", s.metadata_errors},
          {"metadata_problems", s.metadata_problems},
          {"started_ns", s.started_ns},
          {"ended_ns", s.ended_ns},
          {"findings", std::move(findings)},
          {"findings_incomplete", s.findings_incomplete}};
}

Result<ScrubStatus> scrub_status_from_json(const nlohmann::json& j) {
  const Status bad = Status::error(EPROTO, "the daemon's scrub status is malformed");
  if (!j.is_object()) return bad;
  ScrubStatus s;
  auto state = j.find("state");
  if (state == j.end() || !state->is_string()) return bad;
  bool known = false;
  for (ScrubState k : kStates)
    if (state->get<std::string>() == scrub_state_name(k)) {
      s.state = k;
      known = true;
    }
  if (!known) return bad;
  if (!get_u64(j, "next_ino", s.next_ino) || !get_u64(j, "next_offset", s.next_offset) ||
      !get_u64(j, "bytes_checked", s.bytes_checked) || !get_u64(j, "bytes_estimate", s.bytes_estimate) ||
      !get_u64(j, "rate_limit", s.rate_limit) || !get_double(j, "elapsed_seconds", s.elapsed_seconds) ||
      !get_u64(j, "data_errors", s.data_errors) || !get_u64(j, "unreadable", s.unreadable) ||
      !get_u64(j, "transients", s.transients) || !get_u64(j, "metadata_errors", s.metadata_errors) ||
      !get_u64(j, "started_ns", s.started_ns) || !get_u64(j, "ended_ns", s.ended_ns) ||
      !get_bool(j, "findings_incomplete", s.findings_incomplete))
    return bad;
  auto problems = j.find("metadata_problems");
  if (problems == j.end() || !problems->is_array()) return bad;
  for (const nlohmann::json& p : *problems) {
    if (!p.is_string()) return bad;
    s.metadata_problems.push_back(p.get<std::string>());
  }
  auto findings = j.find("findings");
  if (findings == j.end() || !findings->is_array()) return bad;
  for (const nlohmann::json& x : *findings) {
    if (!x.is_object()) return bad;
    ScrubFileFinding f;
    if (!get_u64(x, "ino", f.ino) || !get_u64(x, "file_offset", f.finding.file_offset) ||
        !get_u64(x, "length", f.finding.length) || !get_u64(x, "device_block", f.finding.device_block) ||
        !get_bool(x, "unreadable", f.finding.unreadable))
      return bad;
    if (f.finding.unreadable) {
      auto e = x.find("device_error");
      if (e == x.end() || !e->is_string()) return bad;
      f.finding.device_error = e->get<std::string>();
    } else if (!get_u64(x, "expected", f.finding.expected) || !get_u64(x, "found", f.finding.found)) {
      return bad;
    }
    s.findings.push_back(std::move(f));
  }
  return s;
}

Result<nlohmann::json> answer_scrub_request(Scrubber& scrubber, const nlohmann::json& request) {
  SFS_ASSIGN(ScrubRequest r, scrub_request_from_json(request));
  Status st;
  if (r.action == "start") st = scrubber.start(r.rate.value_or(0));
  else if (r.action == "pause") st = scrubber.pause();
  else if (r.action == "resume") st = scrubber.resume(r.rate);
  else if (r.action == "cancel") st = scrubber.cancel();
  SFS_TRY(st);
  return scrub_status_to_json(scrubber.status());
}

}  // namespace stablefs
