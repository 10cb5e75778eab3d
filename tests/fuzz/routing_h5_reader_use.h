#pragma once
// What `dirmoe-analyze report` and `compare` do with a routing.h5 file, for the two fuzz targets
// of that reader (fuzz_routing_h5: well-formed HDF5 of adversarial content; fuzz_routing_h5_raw:
// raw bytes): read it, then build every report form, under fuzz::expect_no_crash.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "dirmoe/stats/routing_report.h"
#include "dirmoe/stats/routing_stats_file.h"
#include "fuzz_util.h"

namespace dirmoe::fuzz {

inline void read_routing_h5_as_compare_does(const std::filesystem::path& path) {
  expect_no_crash([&] {
    const auto file = read_routing_stats(path);
    const auto report = make_routing_report(file, path.string());
    (void)routing_report_markdown(report);
    (void)routing_report_json(report).dump();
    (void)compare_reports_markdown({report, report});
    (void)compare_reports_json({report, report}).dump();
  });
}

}  // namespace dirmoe::fuzz
