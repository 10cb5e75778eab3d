#pragma once
// Where the tests find the checkout and the Python of the reference checks. Defined in a file the
// build generates (tests/CMakeLists.txt), compiled on its own: the paths stay out of every other
// test source, so their objects do not depend on where the clone lives and ccache shares them
// between clones.

namespace dirmoe::testing {

/// The checkout the tests were configured from (DIRMOE_SOURCE_DIR in the environment wins).
const char* source_dir();
/// tests/data of that checkout.
const char* test_data_dir();
/// The Python configured for the reference checks (DIRMOE_TEST_PYTHON; DIRMOE_PYTHON in the
/// environment wins).
const char* configured_python();

}  // namespace dirmoe::testing
