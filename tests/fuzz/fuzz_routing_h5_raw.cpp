// Fuzzes the routing.h5 reader behind `dirmoe-analyze compare` and `report` with raw bytes: the
// input is the file; an accepted file is turned into both report forms as compare does.
// NOTE: mutated HDF5 bytes soon reach libhdf5's own parser bugs (within seconds: an endless loop
// in H5HG_read on a damaged global heap, Debian's libhdf5 1.10.8), which no reader built on it can
// guard against. So this target runs only under `make fuzz`; the ctest smoke run uses
// fuzz_routing_h5, which writes well-formed HDF5 with adversarial content.
#include "fuzz_util.h"
#include "routing_h5_reader_use.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = dirmoe::fuzz::scratch_dir() / "routing.h5";
  dirmoe::fuzz::write_bytes(path, std::string(reinterpret_cast<const char*>(data), size));
  dirmoe::fuzz::read_routing_h5_as_compare_does(path);
  return 0;
}
