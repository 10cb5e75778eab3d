// Fuzzes the routing.h5 reader behind `dirmoe-analyze compare` and `report` with raw bytes: the
// input is the file; an accepted file is turned into both report forms as compare does.
// NOTE: mutated HDF5 bytes soon reach libhdf5's own parser bugs (within seconds: an endless loop
// in H5HG_read on a damaged global heap, Debian's libhdf5 1.10.8), which no reader built on it can
// guard against. So this target runs only under `make fuzz`; the ctest smoke run uses
// fuzz_routing_h5, which writes well-formed HDF5 with adversarial content.
#include <nlohmann/json.hpp>

#include "dirmoe/stats/routing_report.h"
#include "dirmoe/stats/routing_stats_file.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = dirmoe::fuzz::scratch_dir() / "routing.h5";
  dirmoe::fuzz::write_bytes(path, std::string(reinterpret_cast<const char*>(data), size));
  dirmoe::fuzz::expect_no_crash([&] {
    const auto file = dirmoe::read_routing_stats(path);
    const auto report = dirmoe::make_routing_report(file, path.string());
    (void)dirmoe::routing_report_markdown(report);
    (void)dirmoe::routing_report_json(report).dump();
    (void)dirmoe::compare_reports_markdown({report, report});
    (void)dirmoe::compare_reports_json({report, report}).dump();
  });
  return 0;
}
