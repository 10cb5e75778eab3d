#include "dirmoe/core/build_info.h"

#include "dirmoe/core/git_revision.inc"

namespace dirmoe {

const char* git_revision() { return DIRMOE_GIT_REVISION; }
const char* library_version() { return DIRMOE_VERSION; }

}  // namespace dirmoe
