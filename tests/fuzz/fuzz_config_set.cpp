// Fuzzes `--set KEY=VALUE`: each input line is one --set argument, applied in order to the
// defaults (and to the config file part when the input holds one, separated as in fuzz_util.h).
#include <sstream>

#include "dirmoe/config/config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = dirmoe::fuzz::split_parts(data, size, 2);
  std::vector<std::string> overrides;
  std::istringstream lines(parts[0]);
  for (std::string line; std::getline(lines, line);) overrides.push_back(line);
  std::string config_path;
  if (!parts[1].empty()) {
    config_path = (dirmoe::fuzz::scratch_dir() / "config.json").string();
    dirmoe::fuzz::write_bytes(config_path, parts[1]);
  }
  dirmoe::fuzz::expect_no_crash([&] {
    const dirmoe::Config config = dirmoe::resolve_config(config_path, overrides);
    (void)dirmoe::config_report_json(config);
  });
  return 0;
}
