#include "bounce/submission.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "bounce/block_sysfs.h"

namespace stablefs {
namespace {

// The first entry of directory dir other than . and .., or "" (also when dir is missing).
std::string first_entry(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return {};
  std::string found;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      found = e->d_name;
      break;
    }
  }
  ::closedir(d);
  return found;
}

SubmissionInfo query_block_device(dev_t dev) {
  SubmissionInfo info;
  info.reason = describe_block_device(devname_from_uevent(block_sysfs_dir(dev)), dev);
  const QueueDir owner = queue_owner_dir(dev);
  if (!sysfs_exists(owner.dir + "/queue")) {
    info.reason += ": no queue in sysfs";
    return info;
  }
  if (sysfs_exists(owner.dir + "/mq")) {
    info.reason += ": blk-mq";
    return info;
  }
  if (std::string under = first_entry(owner.dir + "/slaves"); !under.empty()) {
    info.reason += ": bio-based on ";
    info.reason += under;
    info.reason += ", which completes its requests";
    return info;
  }
  info.works_in_submitter = true;
  info.reason += ": bio-based, no device under it: does its work in the submitter's context";
  return info;
}

}  // namespace

Result<SubmissionInfo> detect_submission(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    std::string msg = path;
    msg += ": cannot stat: ";
    msg += std::strerror(err);
    return Status::error(err, msg);
  }
  if (S_ISBLK(st.st_mode)) return query_block_device(st.st_rdev);
  SubmissionInfo info;
  info.reason = path;
  info.reason += ": an image file";
  return info;
}

Result<SubmitPolicy> parse_submit_policy(std::string_view text) {
  if (text == "auto") return SubmitPolicy::kAuto;
  if (text == "ring") return SubmitPolicy::kRing;
  if (text == "inline") return SubmitPolicy::kInline;
  std::string msg = "invalid submission policy '";
  msg += text;
  msg += "': expected auto, ring or inline";
  return Status::error(EINVAL, msg);
}

const char* submit_policy_name(SubmitPolicy p) {
  switch (p) {
    case SubmitPolicy::kAuto:
      return "auto";
    case SubmitPolicy::kRing:
      return "ring";
    case SubmitPolicy::kInline:
      return "inline";
  }
  return "auto";
}

SubmitDecision decide_submission(SubmitPolicy policy, const SubmissionInfo& device) {
  SubmitDecision d;
  switch (policy) {
    case SubmitPolicy::kAuto:
      d.mode = device.works_in_submitter ? IoQueue::Mode::kInline : IoQueue::Mode::kRing;
      d.reason = "auto: ";
      d.reason += device.reason;
      break;
    case SubmitPolicy::kRing:
      d.mode = IoQueue::Mode::kRing;
      d.reason = "ring: set by submit=ring";
      break;
    case SubmitPolicy::kInline:
      d.mode = IoQueue::Mode::kInline;
      d.reason = "inline: set by submit=inline";
      break;
  }
  return d;
}

}  // namespace stablefs
