// Fuzzes the config file reader: the input is a config.json given to --config.
#include <nlohmann/json.hpp>

#include "dirmoe/config/config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = dirmoe::fuzz::scratch_dir() / "config.json";
  dirmoe::fuzz::write_bytes(path, std::string(reinterpret_cast<const char*>(data), size));
  dirmoe::fuzz::expect_no_crash([&] {
    const dirmoe::Config config = dirmoe::resolve_config(path.string(), {});
    // What every app does next with an accepted config: report it and round-trip it.
    (void)dirmoe::config_report_json(config);
    const dirmoe::Config again = dirmoe::config_from_json(dirmoe::config_to_json(config), "round trip");
    if (dirmoe::config_to_json(again) != dirmoe::config_to_json(config)) {
      std::fprintf(stderr, "config changed in a JSON round trip\n");
      std::abort();
    }
  });
  return 0;
}
