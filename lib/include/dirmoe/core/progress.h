#pragma once
// A one-line progress report for long steps (corpus encoding, training): amount done, rate, a
// secondary count with its rate (e.g. tokens/s) and an ETA when the total is known.
#include <chrono>
#include <cstdio>
#include <string>

namespace dirmoe {

/// On a terminal the line is redrawn in place (`\r`) at most every `tty_interval_s`; otherwise
/// (logs, CI) a plain line is printed every `log_interval_s`. `finish()` prints the final line.
/// Example: `encode  52.1/118.0 MB  14.2 MB/s  3.51 M tok/s  ETA 0:04`.
class ProgressLine {
 public:
  /// `total` in units of `unit` after dividing by `unit_scale` (0: unknown, no ETA);
  /// `items_name` names the secondary count ("tok" gives "M tok/s"; empty hides it).
  ProgressLine(std::string label, double total = 0, std::string unit = "MB", double unit_scale = 1e6,
               std::string items_name = "tok", std::FILE* out = stderr);
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  /// Report absolute progress: `done` in raw units (bytes for "MB"), `items` the secondary count.
  void update(double done, double items = 0);
  /// Print the last line (with the totals and average rates); later calls are no-ops.
  void finish();
  /// Seconds since construction.
  double elapsed_s() const;
  /// Force the plain (non-TTY) format and interval, e.g. for tests.
  void set_log_interval(double seconds) { log_interval_s_ = seconds; }
  static std::string format_duration(double seconds);

 private:
  std::string render(bool final) const;
  void emit(bool final);

  std::string label_, unit_, items_name_;
  double total_, unit_scale_;
  std::FILE* out_;
  bool tty_;
  bool finished_ = false;
  double done_ = 0, items_ = 0;
  double tty_interval_s_ = 0.2, log_interval_s_ = 10.0;
  std::chrono::steady_clock::time_point start_, last_emit_;
};

}  // namespace dirmoe
