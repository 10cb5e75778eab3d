#pragma once
// Name → factory table behind make_router(). Each router's .cpp registers itself at library load
// (`static const bool registered = register_router("topk", ...)`), so adding a router touches only
// its own files. NOTE: this relies on dirmoe::core being a shared library, whose static
// initialisers always run when it is loaded.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dirmoe/router/router.h"

namespace dirmoe {

using RouterFactory = std::function<std::shared_ptr<RouterImpl>(const Config&)>;

/// Registers `factory` under `type`; returns true (for use in a static initialiser).
bool register_router(const std::string& type, RouterFactory factory);

/// The registered router types, sorted.
std::vector<std::string> registered_routers();

}  // namespace dirmoe
