// dirmoe-analyze: routing statistics → HDF5 + reports.
//   dirmoe-analyze compare A.h5 B.h5 ... [--out FILE.md]   side-by-side table (markdown; JSON beside)
//   dirmoe-analyze report routing.h5 --out DIR             report.md + report.json of one file
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"
#include "dirmoe/stats/routing_report.h"
#include "dirmoe/stats/routing_stats_file.h"

namespace fs = std::filesystem;

namespace {

void write_report(const dirmoe::RoutingReport& report, const fs::path& dir) {
  dirmoe::ensure_directory(dir);
  dirmoe::write_file_atomic(dir / "report.md", dirmoe::routing_report_markdown(report));
  dirmoe::write_file_atomic(dir / "report.json", dirmoe::routing_report_json(report).dump(2) + "\n");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dirmoe-analyze: routing statistics of MoE checkpoints (HDF5, reports, comparisons)"};
  app.require_subcommand(1);

  std::vector<std::string> compare_files;
  std::string compare_out;
  auto* compare = app.add_subcommand("compare", "side-by-side table of several routing.h5 files");
  compare->add_option("files", compare_files, "routing.h5 files (one per run)")->required()->expected(1, -1);
  compare->add_option("--out", compare_out, "write the table to FILE.md (and FILE.json beside it) instead of stdout");

  std::string report_file, report_out;
  auto* report = app.add_subcommand("report", "report.md + report.json of one routing.h5");
  report->add_option("file", report_file, "routing.h5")->required();
  report->add_option("--out", report_out, "output directory")->required();

  CLI11_PARSE(app, argc, argv);
  try {
    if (compare->parsed()) {
      std::vector<dirmoe::RoutingReport> reports;
      for (const auto& f : compare_files) reports.push_back(dirmoe::make_routing_report(dirmoe::read_routing_stats(f), f));
      const std::string md = dirmoe::compare_reports_markdown(reports);
      if (compare_out.empty()) {
        std::fputs(md.c_str(), stdout);
      } else {
        fs::path out(compare_out);
        if (out.has_parent_path()) dirmoe::ensure_directory(out.parent_path());
        dirmoe::write_file_atomic(out, md);
        fs::path json_out = out;
        json_out.replace_extension(".json");
        dirmoe::write_file_atomic(json_out, dirmoe::compare_reports_json(reports).dump(2) + "\n");
        std::fprintf(stderr, "wrote %s and %s\n", out.c_str(), json_out.c_str());
      }
    } else if (report->parsed()) {
      write_report(dirmoe::make_routing_report(dirmoe::read_routing_stats(report_file), report_file), report_out);
      std::fprintf(stderr, "wrote %s/report.md and report.json\n", report_out.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dirmoe-analyze: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
