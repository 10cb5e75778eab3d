#pragma once
// One live status line for a terminal ("step 120/1000 | loss 3.4567 | 12.3k tok/s | ETA 4m12s",
// redrawn in place), or one plain line per update when the stream is not a terminal.
#include <cstdint>
#include <ostream>
#include <string>

namespace dirmoe {

class TrainingProgress {
 public:
  TrainingProgress(std::ostream& out, bool is_tty) : out_(out), tty_(is_tty) {}
  ~TrainingProgress() { finish(); }
  void update(int64_t step, int64_t total, double loss, double tokens_per_s, double eta_s, const std::string& extra = "");
  /// A message on its own line (the live line is redrawn after it).
  void message(const std::string& text);
  /// Ends the live line with a newline.
  void finish();

  static std::string format_duration(double seconds);
  static std::string format_rate(double tokens_per_s);

 private:
  std::ostream& out_;
  bool tty_;
  bool open_ = false;
};

}  // namespace dirmoe
