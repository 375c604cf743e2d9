// The control protocol (fs/fuse/control_protocol.h) and its server (fs/fuse/control_server.h):
// requests answered over a real unix socket, maps that survive the JSON round trip, malformed
// documents and requests refused with a status, output that stays valid JSON.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include "bounce/aligned_buffer.h"
#include "fs/fuse/control_protocol.h"
#include "fs/fuse/control_server.h"
#include "fs/fuse/scrub_protocol.h"
#include "support/formatted_image.h"
#include "support/random_bytes.h"

namespace stablefs {
namespace {

std::string socket_path() { return "/tmp/stablefs-control-test-" + std::to_string(::getpid()) + ".sock"; }

}  // namespace

TEST_CASE("control protocol: stats and map answered over the socket; bad requests get an error status") {
  test::FormattedImage img(64ull << 20, {}, "control");
  auto opened = Volume::open(img.path, {.bounce = BouncePolicy::kNever});
  REQUIRE_MESSAGE(opened.ok(), opened.status().message());
  std::unique_ptr<Volume> v = std::move(opened).value();
  auto f = v->fs().mknod(kRootIno, "f", S_IFREG | 0644, 0, {});
  REQUIRE(f.ok());
  AlignedBuffer buf(64 << 10);
  auto data = test::random_bytes(buf.size(), 5);
  std::copy(data.begin(), data.end(), buf.data());
  REQUIRE(v->write(f->ino, 1 << 20, buf.span()).ok());

  const std::string path = socket_path();
  CHECK(control_call(path, {{"op", "stats"}}, 5).status().code() == ECONNREFUSED);  // nothing listens yet
  auto server = ControlServer::start({v.get(), "/mnt/x", img.path}, path);
  REQUIRE(server);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  auto stats = control_call(path, {{"op", "stats"}}, 5);
  REQUIRE_MESSAGE(stats.ok(), stats.status().message());
  CHECK((*stats)["report"].get<std::string>().find("mountpoint       /mnt/x") != std::string::npos);

  auto mapped = control_call(path, {{"op", "map"}, {"ino", f->ino}}, 5);
  REQUIRE_MESSAGE(mapped.ok(), mapped.status().message());
  auto m = file_map_from_json((*mapped)["map"]);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  auto direct = file_map(*v, f->ino);
  REQUIRE(direct.ok());
  CHECK(m->size == (1u << 20) + (64u << 10));
  REQUIRE(m->extents.size() == direct->extents.size());
  for (size_t i = 0; i < m->extents.size(); ++i) {
    CHECK(m->extents[i].offset == direct->extents[i].offset);
    CHECK(m->extents[i].length == direct->extents[i].length);
    CHECK(m->extents[i].kind == direct->extents[i].kind);
    CHECK(m->extents[i].device_block == direct->extents[i].device_block);
  }
  REQUIRE(m->extents.size() >= 2);
  CHECK(m->extents[0].kind == MapKind::kHole);
  CHECK(m->extents[0].length == (1u << 20));

  const uint64_t commits = v->fs().store().stats().transactions_committed;
  auto synced = control_call(path, {{"op", "sync"}}, 5);
  REQUIRE_MESSAGE(synced.ok(), synced.status().message());
  CHECK(v->fs().store().stats().transactions_committed == commits + 1);  // the write above, committed
  CHECK(control_call(path, {{"op", "map"}, {"ino", 999999}}, 5).status().code() == ENOENT);
  CHECK(control_call(path, {{"op", "map"}, {"ino", kRootIno}}, 5).status().code() == EISDIR);
  CHECK(control_call(path, {{"op", "map"}}, 5).status().code() == EPROTO);
  CHECK(control_call(path, {{"op", "frobnicate"}}, 5).status().code() == EOPNOTSUPP);
  CHECK(control_call(path, nlohmann::json::array({1, 2}), 5).status().code() == EPROTO);
  server.reset();
  CHECK(::stat(path.c_str(), &st) != 0);  // the socket is removed
  REQUIRE(v->close().ok());
}

TEST_CASE("control protocol: remount requests reach the volume; malformed ones are EPROTO") {
  test::FormattedImage img(64ull << 20, {}, "control-remount");
  auto opened = Volume::open(img.path, {.bounce = BouncePolicy::kNever});
  REQUIRE_MESSAGE(opened.ok(), opened.status().message());
  std::unique_ptr<Volume> v = std::move(opened).value();
  const std::string path = socket_path();
  // No remount hook: refused.
  {
    auto plain = ControlServer::start({v.get(), "/mnt/x", img.path}, path);
    REQUIRE(plain);
    CHECK(control_call(path, remount_request({}), 5).status().code() == EOPNOTSUPP);
  }
  std::vector<RemountSettings> seen;
  auto server = ControlServer::start({v.get(), "/mnt/x", img.path, nullptr,
                                      [&](const RemountSettings& s) {
                                        seen.push_back(s);
                                        return v->set_read_only(s.read_only);
                                      }},
                                     path);
  REQUIRE(server);
  RemountSettings ro{.read_only = true, .atime = AtimePolicy::kAlways, .dir_atime = false};
  REQUIRE(control_call(path, remount_request(ro), 30).ok());
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].read_only);
  CHECK(seen[0].atime == AtimePolicy::kAlways);
  CHECK_FALSE(seen[0].dir_atime);
  CHECK(v->fs().mknod(kRootIno, "f", S_IFREG | 0644, 0, {}).status().code() == EROFS);
  REQUIRE(control_call(path, remount_request({.read_only = false, .atime = AtimePolicy::kNever}), 30).ok());
  CHECK(seen.back().atime == AtimePolicy::kNever);
  CHECK(v->fs().mknod(kRootIno, "f", S_IFREG | 0644, 0, {}).ok());
  CHECK(control_call(path, {{"op", "remount"}, {"read_only", true}}, 5).status().code() == EPROTO);
  CHECK(control_call(path, {{"op", "remount"}, {"read_only", 1}, {"atime", "never"}, {"dir_atime", true}}, 5)
            .status()
            .code() == EPROTO);
  CHECK(control_call(path, {{"op", "remount"}, {"read_only", true}, {"atime", "sometimes"}, {"dir_atime", true}}, 5)
            .status()
            .code() == EPROTO);
  CHECK(seen.size() == 2);  // the malformed ones never reached the hook
  server.reset();
  REQUIRE(v->close().ok());
}

TEST_CASE("control protocol: a map keeps its shape through JSON; malformed maps are EPROTO; output is valid JSON") {
  FileMap m;
  m.ino = 12;
  m.size = 3 << 20;
  m.block_size = 4096;
  m.extents = {{0, 8192, MapKind::kData, 100, false},
               {8192, 4096, MapKind::kHole, 0, false},
               {12288, 1 << 20, MapKind::kUnwritten, 7777, true}};
  auto back = file_map_from_json(nlohmann::json::parse(json_text(file_map_to_json(m), 2)));
  REQUIRE(back.ok());
  CHECK(back->ino == 12);
  CHECK(back->size == (3u << 20));
  REQUIRE(back->extents.size() == 3);
  CHECK(back->extents[2].kind == MapKind::kUnwritten);
  CHECK(back->extents[2].speculative);
  CHECK(back->extents[2].device_block == 7777);
  CHECK_FALSE(file_map_to_json(m)["extents"][1].contains("device_block"));

  nlohmann::json bad = file_map_to_json(m);
  bad["extents"][0]["kind"] = "shared";
  CHECK(file_map_from_json(bad).status().code() == EPROTO);
  bad = file_map_to_json(m);
  bad["extents"][0].erase("device_block");
  CHECK(file_map_from_json(bad).status().code() == EPROTO);
  CHECK(file_map_from_json(nlohmann::json::array()).status().code() == EPROTO);

  // A path of arbitrary bytes (quotes, a newline, invalid UTF-8) still gives parseable JSON.
  const std::string odd = std::string("a\"b\nc\xff\xfe") + "d";
  const std::string text = json_text({{"path", odd}}, -1);
  CHECK(text.find('\n') == std::string::npos);
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  REQUIRE_FALSE(parsed.is_discarded());
  CHECK(parsed["path"].get<std::string>().rfind("a\"b\nc", 0) == 0);
}

TEST_CASE("control protocol: scrub requests over the socket; the status keeps its shape through JSON") {
  test::FormattedImage img(64ull << 20, {}, "control-scrub");
  auto opened = Volume::open(img.path, {.bounce = BouncePolicy::kNever});
  REQUIRE_MESSAGE(opened.ok(), opened.status().message());
  std::unique_ptr<Volume> v = std::move(opened).value();
  auto f = v->fs().mknod(kRootIno, "f", S_IFREG | 0644, 0, {});
  REQUIRE(f.ok());
  AlignedBuffer buf(256 << 10);
  auto data = test::random_bytes(buf.size(), 6);
  std::copy(data.begin(), data.end(), buf.data());
  REQUIRE(v->write(f->ino, 0, buf.span()).ok());
  const std::string path = socket_path();
  {
    // Without a scrubber the request is refused.
    auto server = ControlServer::start({v.get(), "/mnt/x", img.path}, path);
    REQUIRE(server);
    CHECK(control_call(path, scrub_request({"status", std::nullopt}), 5).status().code() == EOPNOTSUPP);
  }
  Scrubber scrubber(*v);
  auto server = ControlServer::start({v.get(), "/mnt/x", img.path, nullptr, {}, &scrubber}, path);
  REQUIRE(server);
  auto status = control_call(path, scrub_request({"status", std::nullopt}), 5);
  REQUIRE_MESSAGE(status.ok(), status.status().message());
  auto s = scrub_status_from_json((*status)["scrub"]);
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  CHECK(s->state == ScrubState::kNever);
  CHECK((*status)["damaged_files"].is_array());
  REQUIRE(control_call(path, scrub_request({"start", 0}), 5).ok());
  for (int i = 0; i < 500 && scrubber.status().state == ScrubState::kRunning; ++i) usleep(10000);
  status = control_call(path, scrub_request({"status", std::nullopt}), 5);
  REQUIRE(status.ok());
  s = scrub_status_from_json((*status)["scrub"]);
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  CHECK(s->state == ScrubState::kFinished);
  CHECK(s->bytes_checked == buf.size());
  CHECK(control_call(path, scrub_request({"pause", std::nullopt}), 5).status().code() == EINVAL);
  CHECK(control_call(path, {{"op", "scrub"}, {"action", "frobnicate"}}, 5).status().code() == EPROTO);
  CHECK(control_call(path, {{"op", "scrub"}}, 5).status().code() == EPROTO);
  CHECK(control_call(path, {{"op", "scrub"}, {"action", "start"}, {"rate", "fast"}}, 5).status().code() == EPROTO);
  // A status with findings of both kinds survives the round trip.
  ScrubStatus full;
  full.state = ScrubState::kPaused;
  full.bytes_checked = 123;
  full.elapsed_seconds = 1.5;
  full.findings.push_back({7, {4096, 4096, 99, false, 0x1234, 0x5678, {}}});
  full.findings.push_back({8, {0, 4096, 100, true, 0, 0, "read failed: Input/output error"}});
  full.metadata_problems.push_back("inode 9: bad extent item");
  auto back = scrub_status_from_json(scrub_status_to_json(full));
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(back->state == ScrubState::kPaused);
  CHECK(back->bytes_checked == 123);
  CHECK(back->elapsed_seconds == 1.5);
  REQUIRE(back->findings.size() == 2);
  CHECK(back->findings[0].ino == 7);
  CHECK(back->findings[0].finding.expected == 0x1234);
  CHECK(back->findings[0].finding.found == 0x5678);
  CHECK(back->findings[1].finding.unreadable);
  CHECK(back->findings[1].finding.device_error == "read failed: Input/output error");
  CHECK(back->metadata_problems == full.metadata_problems);
  nlohmann::json broken = scrub_status_to_json(full);
  broken["state"] = "sleeping";
  CHECK(scrub_status_from_json(broken).status().code() == EPROTO);
  broken = scrub_status_to_json(full);
  broken["findings"][0].erase("expected");
  CHECK(scrub_status_from_json(broken).status().code() == EPROTO);
  server.reset();
}

}  // namespace stablefs
