// The Catch2 v2 runner for dirmoe_tests.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
