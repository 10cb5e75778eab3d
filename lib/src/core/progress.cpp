#include "dirmoe/core/progress.h"

#include <unistd.h>

#include <cmath>
#include <ostream>

#include <fmt/format.h>

namespace dirmoe {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02d}", s / 60, s % 60);
}

std::string format_rate(double per_second) {
  if (!std::isfinite(per_second)) return "?";
  if (per_second >= 1e6) return fmt::format("{:.2f}M", per_second / 1e6);
  if (per_second >= 1e3) return fmt::format("{:.1f}k", per_second / 1e3);
  return fmt::format("{:.0f}", per_second);
}

bool StatusLine::stderr_is_tty() { return ::isatty(STDERR_FILENO) != 0; }

void StatusLine::show(const std::string& line) {
  if (out_ == nullptr) return;
  if (tty_) {
    // Clear to the end of the line so a shorter line leaves no stale characters.
    *out_ << "\r" << line << "\x1b[K" << std::flush;
    open_ = true;
  } else {
    *out_ << line << "\n" << std::flush;
  }
}

void StatusLine::message(const std::string& text) {
  if (out_ == nullptr) return;
  if (tty_ && open_) {
    *out_ << "\r\x1b[K";
    open_ = false;
  }
  *out_ << text << "\n" << std::flush;
}

void StatusLine::finish() {
  if (out_ != nullptr && tty_ && open_) {
    *out_ << "\n" << std::flush;
    open_ = false;
  }
}

ProgressLine::ProgressLine(std::string label, double total, std::string unit, double unit_scale,
                           std::string items_name, std::ostream* out)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      items_name_(std::move(items_name)),
      total_(total),
      unit_scale_(unit_scale > 0 ? unit_scale : 1.0),
      line_(out, out == &std::cerr && StatusLine::stderr_is_tty()),
      start_(std::chrono::steady_clock::now()),
      last_emit_(start_) {}

ProgressLine::~ProgressLine() = default;  // StatusLine ends a live line on a terminal

double ProgressLine::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string ProgressLine::render(bool final) const {
  const double t = std::max(elapsed_s(), 1e-9);
  const double done_u = done_ / unit_scale_;
  std::string line = fmt::format("{}  ", label_);
  if (total_ > 0) {
    line += fmt::format("{:.1f}/{:.1f} {}", done_u, total_ / unit_scale_, unit_);
  } else {
    line += fmt::format("{:.1f} {}", done_u, unit_);
  }
  line += fmt::format("  {:.2f} {}/s", done_u / t, unit_);
  if (!items_name_.empty() && items_ > 0) {
    const double rate = items_ / t;
    if (rate >= 1e6) {
      line += fmt::format("  {:.2f} M {}/s", rate / 1e6, items_name_);
    } else if (rate >= 1e3) {
      line += fmt::format("  {:.1f} k {}/s", rate / 1e3, items_name_);
    } else {
      line += fmt::format("  {:.1f} {}/s", rate, items_name_);
    }
  }
  if (final) {
    line += fmt::format("  done in {}", format_duration(t));
  } else if (total_ > 0 && done_ > 0) {
    line += fmt::format("  ETA {}", format_duration(t * (total_ - done_) / done_));
  }
  return line;
}

void ProgressLine::emit(bool final) {
  line_.show(render(final));
  if (final) line_.finish();
  last_emit_ = std::chrono::steady_clock::now();
}

void ProgressLine::update(double done, double items) {
  if (finished_) return;
  done_ = done;
  items_ = items;
  const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_emit_).count();
  if (since >= (line_.is_tty() ? tty_interval_s_ : log_interval_s_)) emit(false);
}

void ProgressLine::finish() {
  if (finished_) return;
  emit(true);
  finished_ = true;
}

}  // namespace dirmoe
