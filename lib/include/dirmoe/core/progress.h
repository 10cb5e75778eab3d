#pragma once
// Progress for long work, one implementation for the toolkit: a status line that a terminal redraws in
// place (and a log gets as plain lines), with messages printed between its redraws. Two users:
//   - ProgressLine: amount done, rate, a secondary count and ETA, at most every interval (corpus
//     encoding, evaluation, analysis). Example: `encode  52.1/118.0 MB  14.2 MB/s  3.51 M tok/s  ETA 0:04`.
//   - the training loop, which shows its own text at each log step (train/step_log.h) through a
//     StatusLine directly.
#include <chrono>
#include <iostream>
#include <string>

namespace dirmoe {

/// "0:42", "4:12", "1:02:03"; "?" for a negative or non-finite number of seconds.
std::string format_duration(double seconds);
/// "950", "12.3k", "1.25M" (a rate or count with a k/M suffix); "?" when not finite.
std::string format_rate(double per_second);

/// One live line on `out`: on a terminal show() redraws it in place (`\r`, clear to the end of the line),
/// elsewhere every show() is a line of its own. message() prints a line of its own, first clearing a live
/// line. finish() ends a live line with a newline (also on destruction). A null stream prints nothing.
class StatusLine {
 public:
  StatusLine(std::ostream* out, bool is_tty) : out_(out), tty_(is_tty) {}
  ~StatusLine() { finish(); }
  StatusLine(const StatusLine&) = delete;
  StatusLine& operator=(const StatusLine&) = delete;

  void show(const std::string& line);
  void message(const std::string& text);
  void finish();
  bool is_tty() const { return tty_; }

  /// Whether standard error is a terminal.
  static bool stderr_is_tty();

 private:
  std::ostream* out_;
  bool tty_;
  bool open_ = false;  // a live line is on screen without its newline
};

/// Throughput progress: on a terminal the line is redrawn at most every `tty_interval_s`; otherwise
/// (logs, CI) a plain line is printed every `log_interval_s`. `finish()` prints the final line.
class ProgressLine {
 public:
  /// `total` in units of `unit` after dividing by `unit_scale` (0: unknown, no ETA);
  /// `items_name` names the secondary count ("tok" gives "M tok/s"; empty hides it); `out` null: silent
  /// (std::cerr is redrawn in place when standard error is a terminal).
  ProgressLine(std::string label, double total = 0, std::string unit = "MB", double unit_scale = 1e6,
               std::string items_name = "tok", std::ostream* out = &std::cerr);
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

 private:
  std::string render(bool final) const;
  void emit(bool final);

  std::string label_, unit_, items_name_;
  double total_, unit_scale_;
  StatusLine line_;
  bool finished_ = false;
  double done_ = 0, items_ = 0;
  double tty_interval_s_ = 0.2, log_interval_s_ = 10.0;
  std::chrono::steady_clock::time_point start_, last_emit_;
};

}  // namespace dirmoe
