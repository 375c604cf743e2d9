// How `stablefs verify` (offline) and `stablefs scrub` (online) report: one line per damaged
// block (the file with all its names, offset, length, device block, both checksums), one per
// metadata problem, a summary, and "files with permanent errors" once each — as text, or as one
// JSON document with the same content. Output to stdout; the progress line to stderr.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "fs/tools/verify.h"

namespace stablefs::cli {

// What an online scrub's report says beyond the offline one.
struct OnlineReport {
  bool online = false;
  std::string state;                // finished, paused, canceled, ...
  uint64_t transients = 0;          // mismatched once, matched when read again
  uint64_t bytes_estimate = 0;
  bool findings_incomplete = false;  // found before a resume (or past the bound): counted, not listed
  // The scrub's counts, which include what it found before a resume (the lists may not).
  uint64_t data_errors = 0, unreadable = 0, metadata_errors = 0;
};

std::string hex(uint64_t v);
std::string human_bytes(double bytes);

void print_report(const VerifyReport& r, const OnlineReport& online = {});
// The parts of the text report: a line per damaged block and metadata problem; the "files with
// permanent errors" list.
void print_damage(const VerifyReport& r);
void print_damaged_files(const VerifyReport& r);
nlohmann::json report_json(const VerifyReport& r, const OnlineReport& online = {});

// The progress line (percent, rate, ETA), redrawn in place on stderr; what names the tool.
void draw_progress(const char* what, uint64_t done, uint64_t total, double seconds);
// Clears the progress line.
void clear_progress();

}  // namespace stablefs::cli
