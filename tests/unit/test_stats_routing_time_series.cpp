// routing_train.h5: appended rows read back by h5py, rows reach the disk only through a whole-file
// rewrite (throttled on append, forced by flush), and the file stays readable after the writing
// process is SIGKILLed.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "../support/python_reference.h"
#include "dirmoe/core/error.h"
#include "dirmoe/stats/routing_time_series.h"
#include "../support/test_files.h"

using namespace dirmoe;
namespace fs = std::filesystem;

namespace {

/// Layer l at row i: 100 tokens, expert e gets (e + i + l) % 7 + 1 tokens... fixed, simple numbers.
RoutingStatsSnapshot snapshot_for(int64_t row, int64_t L, int64_t E) {
  RoutingStatsSnapshot s;
  s.n_experts = E;
  s.simpson_bins = 10;
  for (int64_t l = 0; l < L; ++l) {
    LayerRoutingStats layer;
    layer.n_tokens = 100;
    for (int64_t e = 0; e < E; ++e) layer.tokens_per_expert.push_back((e + row + l) % 7 + 1);
    layer.active_experts_hist.assign(E + 1, 0);
    layer.active_experts_hist[1] = 100 - row % 50;
    layer.active_experts_hist[2] = row % 50;
    layer.token_simpson_count = 100;
    layer.token_simpson_sum = 100 * (0.5 + 0.001 * row + 0.1 * l);
    s.layers.push_back(layer);
  }
  return s;
}

/// Rows read from the file with prefix `file` ("0/") against what was appended.
void check_rows(const testing::TensorMap& out, const std::string& file, int64_t rows, int64_t L, int64_t E) {
  REQUIRE(out.at(file + "step").size(0) == rows);
  for (int64_t i = 0; i < rows; ++i) {
    CHECK(out.at(file + "step")[i].item<int64_t>() == 10 * i);
    CHECK(out.at(file + "n_tokens")[i].item<int64_t>() == 100);
    const auto s = snapshot_for(i, L, E);
    for (int64_t l = 0; l < L; ++l) {
      const std::string p = file + std::to_string(l) + "/";
      CHECK(out.at(p + "active_experts")[i].item<double>() == Approx(1.0 + (i % 50) / 100.0));
      CHECK(out.at(p + "token_simpson")[i].item<double>() == Approx(0.5 + 0.001 * i + 0.1 * l));
      for (int64_t e = 0; e < E; ++e) {
        CHECK(out.at(p + "load")[i][e].item<double>() == Approx(s.layers[l].tokens_per_expert[e] / 100.0));
      }
    }
  }
}

}  // namespace

TEST_CASE("routing time series rows read back by h5py", "[stats][hdf5]") {
  const auto dir = dirmoe::testing::fresh_test_dir("ts");
  const auto path = dir / "routing_train.h5";
  const int64_t L = 2, E = 4;
  {
    RoutingTimeSeriesWriter w(path, L, E, {{"router", "dirmoe"}}, std::chrono::milliseconds(0));
    for (int64_t i = 0; i < 7; ++i) w.append(10 * i, snapshot_for(i, L, E));
    CHECK(w.rows() == 7);
    CHECK(w.rows_on_disk() == 7);
    CHECK_THROWS(w.append(70, snapshot_for(0, L + 1, E)));
  }
  const auto out = testing::run_python_reference("read_routing_train_h5.py", {{"paths", dirmoe::testing::bytes_tensor(path.string())}});
  check_rows(out, "0/", 7, L, E);
  fs::remove_all(dir);
}

TEST_CASE("routing time series reaches the disk on the rewrite interval and on flush", "[stats][hdf5]") {
  const auto dir = dirmoe::testing::fresh_test_dir("ts_flush");
  const int64_t L = 2, E = 3;
  RoutingTimeSeriesWriter w(dir / "a.h5", L, E, {}, std::chrono::hours(1));
  for (int64_t i = 0; i < 3; ++i) w.append(10 * i, snapshot_for(i, L, E));
  CHECK(w.rows() == 3);
  CHECK(w.rows_on_disk() == 0);  // the empty series written at construction, nothing since
  fs::copy_file(dir / "a.h5", dir / "before_flush.h5");
  w.flush();
  CHECK(w.rows_on_disk() == 3);
  fs::copy_file(dir / "a.h5", dir / "after_flush.h5");
  w.append(30, snapshot_for(3, L, E));
  w.close();
  CHECK_THROWS_AS(w.append(40, snapshot_for(4, L, E)), IoError);
  const auto out = testing::run_python_reference(
      "read_routing_train_h5.py",
      {{"paths", dirmoe::testing::bytes_tensor((dir / "before_flush.h5").string() + "\n" + (dir / "after_flush.h5").string() + "\n" +
                          (dir / "a.h5").string())}});
  check_rows(out, "0/", 0, L, E);
  check_rows(out, "1/", 3, L, E);
  check_rows(out, "2/", 4, L, E);
  fs::remove_all(dir);
}

TEST_CASE("routing time series is readable after the writer is SIGKILLed mid-run", "[stats][hdf5]") {
  const auto dir = dirmoe::testing::fresh_test_dir("ts_kill");
  const int64_t L = 3, E = 8;
  std::vector<RoutingStatsSnapshot> snaps;  // built before fork: the child touches no torch
  for (int64_t i = 0; i < 400; ++i) snaps.push_back(snapshot_for(i, L, E));
  const int trials = 3;
  std::string paths;
  for (int trial = 0; trial < trials; ++trial) {
    const auto path = dir / ("routing_train_" + std::to_string(trial) + ".h5");
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      try {
        RoutingTimeSeriesWriter w(path, L, E, {{"router", "dirmoe"}}, std::chrono::milliseconds(0));
        for (int64_t i = 0;; ++i) {
          w.append(10 * i, snaps[i]);
          if (i == 5) {
            const char c = 'x';
            if (::write(fds[1], &c, 1) != 1) ::_exit(3);
          }
          if (i >= 399) break;
        }
        ::pause();  // wait for the kill with everything written
      } catch (...) {
        ::_exit(2);
      }
      ::_exit(0);
    }
    ::close(fds[1]);
    char c = 0;
    REQUIRE(::read(fds[0], &c, 1) == 1);
    ::close(fds[0]);
    // kill at a different point of the appending loop each trial
    std::this_thread::sleep_for(std::chrono::microseconds(300 * trial * trial));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    paths += (trial > 0 ? "\n" : "") + path.string();
  }
  // one python start for all files (it is the slow part)
  const auto out = testing::run_python_reference("read_routing_train_h5.py", {{"paths", dirmoe::testing::bytes_tensor(paths)}});
  for (int trial = 0; trial < trials; ++trial) {
    const std::string file = std::to_string(trial) + "/";
    const int64_t rows = out.at(file + "step").size(0);
    INFO("trial " << trial << ": " << rows << " rows survived the kill");
    CHECK(rows >= 6);
    check_rows(out, file, rows, L, E);
  }
  fs::remove_all(dir);
}
