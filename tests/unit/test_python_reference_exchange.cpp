// The C++ <-> Python tensor exchange the reference checks stand on: values and a gradient.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "../support/python_reference.h"

TEST_CASE("python reference exchange carries float64 tensors both ways", "[support]") {
  REQUIRE(dirmoe::testing::python_reference_available());
  auto x = torch::randn({3, 4}, torch::kFloat64);
  auto y = torch::randn({3, 4}, torch::kFloat64);
  auto out = dirmoe::testing::run_python_reference("selftest_exchange.py", {{"x", x}, {"y", y}});
  CHECK(torch::allclose(out.at("out"), 2 * x + y, 0, 1e-12));
  CHECK(torch::allclose(out.at("grad_x"), 4 * (2 * x + y), 0, 1e-12));
  CHECK(out.at("out").dtype() == torch::kFloat64);
}
