#include "dirmoe/router/router_registry.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dirmoe/core/error.h"

namespace dirmoe {
namespace {
std::map<std::string, RouterFactory>& registry() {
  static std::map<std::string, RouterFactory> table;  // function-local: safe during static init
  return table;
}
}  // namespace

bool register_router(const std::string& type, RouterFactory factory) {
  registry()[type] = std::move(factory);
  return true;
}

std::vector<std::string> registered_routers() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.push_back(entry.first);
  return names;
}

std::shared_ptr<RouterImpl> make_router(const Config& config) {
  auto it = registry().find(config.router.type);
  if (it == registry().end()) {
    throw ConfigError(fmt::format("router.type \"{}\" is not available; choose one of: {}", config.router.type,
                                  fmt::join(registered_routers(), ", ")));
  }
  return it->second(config);
}

}  // namespace dirmoe
