// The Catch2 v2 runner for dirmoe_tests and dirmoe_gpu_tests.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>

int main(int argc, char* argv[]) {
  // NOTE: several tests run their processes as threads of this one (DistributedContext::in_process).
  // c10d's flight recorder is one per process, and LibTorch 2.11 records a process group's first
  // collective into one of its maps before taking its lock (FlightRecorderDetail.hpp), so the first
  // collectives of several groups at once can corrupt it (a rare SIGSEGV in recordWithResetEnabled).
  // The recorder reads its size once, when the first group records: off before any test runs.
  setenv("TORCH_FR_BUFFER_SIZE", "0", /*overwrite=*/0);
  return Catch::Session().run(argc, argv);
}
