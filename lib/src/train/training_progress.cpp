#include "dirmoe/train/training_progress.h"

#include <cmath>

#include <fmt/format.h>

namespace dirmoe {

std::string TrainingProgress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s / 60) % 60);
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

std::string TrainingProgress::format_rate(double tokens_per_s) {
  if (!std::isfinite(tokens_per_s)) return "?";
  if (tokens_per_s >= 1e6) return fmt::format("{:.2f}M", tokens_per_s / 1e6);
  if (tokens_per_s >= 1e3) return fmt::format("{:.1f}k", tokens_per_s / 1e3);
  return fmt::format("{:.0f}", tokens_per_s);
}

void TrainingProgress::update(int64_t step, int64_t total, double loss, double tokens_per_s, double eta_s,
                          const std::string& extra) {
  const std::string line = fmt::format("step {}/{} | loss {:.4f} | {} tok/s | ETA {}{}", step, total, loss,
                                       format_rate(tokens_per_s), format_duration(eta_s),
                                       extra.empty() ? "" : " | " + extra);
  if (tty_) {
    out_ << "\r" << line << "\x1b[K" << std::flush;
    open_ = true;
  } else {
    out_ << line << "\n" << std::flush;
  }
}

void TrainingProgress::message(const std::string& text) {
  if (tty_ && open_) {
    out_ << "\r\x1b[K";
    open_ = false;
  }
  out_ << text << "\n" << std::flush;
}

void TrainingProgress::finish() {
  if (tty_ && open_) {
    out_ << "\n" << std::flush;
    open_ = false;
  }
}

}  // namespace dirmoe
