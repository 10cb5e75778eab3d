// Fuzzes the routing.h5 reader behind `dirmoe-analyze compare` and `report` with well-formed HDF5
// files of adversarial content: the input decides, attribute by attribute and dataset by dataset
// of the schema in routing_stats_file.h, whether it is present, its type, its shape (the right one
// or a neighbour) and its values (NaN, infinities and negative counts included). An accepted file
// is turned into both report forms as compare does. (fuzz_routing_h5_raw mutates raw bytes.)
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include <cmath>
#include <limits>

#include "fuzz_util.h"
#include "routing_h5_reader_use.h"

namespace {

enum class Kind { kInt64, kDouble, kString, kInt16 };

struct Writer {
  FuzzedDataProvider& in;

  double number() {
    switch (in.ConsumeIntegralInRange<int>(0, 7)) {
      case 0: return std::numeric_limits<double>::quiet_NaN();
      case 1: return std::numeric_limits<double>::infinity();
      case 2: return -1.0;
      case 3: return 0.0;
      case 4: return static_cast<double>(in.ConsumeIntegral<int64_t>());
      default: return static_cast<double>(in.ConsumeIntegralInRange<int>(0, 40));
    }
  }
  Kind kind(Kind usual) {
    const int r = in.ConsumeIntegralInRange<int>(0, 15);
    return r == 0 ? Kind::kDouble : r == 1 ? Kind::kInt64 : r == 2 ? Kind::kString : r == 3 ? Kind::kInt16 : usual;
  }
  hid_t h5_type(Kind k) {
    switch (k) {
      case Kind::kInt64: return H5Tcopy(H5T_NATIVE_INT64);
      case Kind::kDouble: return H5Tcopy(H5T_NATIVE_DOUBLE);
      case Kind::kInt16: return H5Tcopy(H5T_NATIVE_INT16);
      case Kind::kString: {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        return t;
      }
    }
    return -1;
  }
  // Writes `n` values of kind `k` through `write(type, buffer)`.
  template <typename F>
  void values(Kind k, size_t n, F&& write) {
    hid_t type = h5_type(k);
    if (k == Kind::kString) {
      std::vector<std::string> text(n);
      std::vector<const char*> ptr(n);
      for (size_t i = 0; i < n; ++i) {
        text[i] = in.ConsumeRandomLengthString(24);
        ptr[i] = text[i].c_str();
      }
      write(type, n ? static_cast<const void*>(ptr.data()) : nullptr);
    } else if (k == Kind::kDouble) {
      std::vector<double> v(n);
      for (auto& x : v) x = number();
      write(type, static_cast<const void*>(v.data()));
    } else if (k == Kind::kInt16) {
      std::vector<int16_t> v(n);
      for (auto& x : v) x = static_cast<int16_t>(in.ConsumeIntegralInRange<int>(-2, 8));
      write(type, static_cast<const void*>(v.data()));
    } else {
      std::vector<int64_t> v(n);
      for (auto& x : v) {
        const double d = number();
        x = std::isfinite(d) && std::fabs(d) < 9e18 ? static_cast<int64_t>(d) : -7;
      }
      write(type, static_cast<const void*>(v.data()));
    }
    H5Tclose(type);
  }
  void attr(hid_t obj, const char* name, Kind usual) {
    if (in.ConsumeIntegralInRange<int>(0, 15) == 0) return;  // left out
    const Kind k = kind(usual);
    hid_t space = H5Screate(H5S_SCALAR);
    values(k, 1, [&](hid_t type, const void* buf) {
      hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
      if (a >= 0) {
        H5Awrite(a, type, buf);
        H5Aclose(a);
      }
    });
    H5Sclose(space);
  }
  // A dataset whose right shape is `dims`; the input may leave it out, change its type, drop or
  // add an axis, or change one extent by one.
  hid_t dataset(hid_t group, const char* name, std::vector<hsize_t> dims, Kind usual) {
    if (in.ConsumeIntegralInRange<int>(0, 15) == 0) return -1;
    const Kind k = kind(usual);
    switch (in.ConsumeIntegralInRange<int>(0, 11)) {
      case 0: dims.push_back(2); break;
      case 1: if (!dims.empty()) dims.pop_back(); break;
      case 2: if (!dims.empty()) dims[0] += 1; break;
      case 3: if (!dims.empty() && dims.back() > 0) dims.back() -= 1; break;
      default: break;
    }
    size_t n = 1;
    for (auto d : dims) n *= d;
    if (n > 4096) return -1;
    hid_t space = dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    hid_t ds = -1;
    values(k, n, [&](hid_t type, const void* buf) {
      ds = H5Dcreate2(group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (ds >= 0 && n > 0) H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    });
    H5Sclose(space);
    return ds;
  }
};

void write_file(const std::string& path, FuzzedDataProvider& in) {
  Writer w{in};
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) std::abort();
  const hsize_t L = in.ConsumeIntegralInRange<hsize_t>(0, 3);
  const hsize_t E = in.ConsumeIntegralInRange<hsize_t>(0, 6);
  const hsize_t D = in.ConsumeIntegralInRange<hsize_t>(0, 4);
  const hsize_t bins = in.ConsumeIntegralInRange<hsize_t>(0, 5);
  // Root attributes; the layer and expert counts written may disagree with the groups below.
  {
    hid_t space = H5Screate(H5S_SCALAR);
    for (auto [name, value] : {std::pair<const char*, int64_t>{"format_version", in.ConsumeBool() ? 1 : 2},
                               {"n_layers", static_cast<int64_t>(L) + in.ConsumeIntegralInRange<int>(-1, 1)},
                               {"n_experts", static_cast<int64_t>(E) + in.ConsumeIntegralInRange<int>(-1, 1)}}) {
      if (in.ConsumeIntegralInRange<int>(0, 20) == 0) continue;
      hid_t a = H5Acreate2(f, name, H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT);
      H5Awrite(a, H5T_NATIVE_INT64, &value);
      H5Aclose(a);
    }
    H5Sclose(space);
  }
  w.attr(f, "k_target", Kind::kInt64);
  w.attr(f, "step", Kind::kInt64);
  w.attr(f, "router", Kind::kString);
  w.attr(f, "git_rev", Kind::kString);
  if (in.ConsumeBool()) {
    // A config that parses, so the report's DirMoE calibration path runs too.
    const std::string router = in.PickValueInArray({"dirmoe", "topk", "remoe", "sparsemixer", "bogus"});
    const std::string config = nlohmann::json{{"router", {{"type", router}}},
                                              {"model", {{"n_experts", E}, {"n_layers", L},
                                                         {"n_experts_active", in.ConsumeIntegralInRange<int>(-1, 4)}}}}
                                   .dump();
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t type = w.h5_type(Kind::kString);
    const char* p = config.c_str();
    hid_t a = H5Acreate2(f, "config", type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, type, &p);
    H5Aclose(a);
    H5Tclose(type);
    H5Sclose(space);
  } else {
    w.attr(f, "config", Kind::kString);
  }
  hid_t dom = w.dataset(f, "domains", {D}, Kind::kString);
  if (dom >= 0) H5Dclose(dom);
  const hsize_t layers = L + in.ConsumeIntegralInRange<int>(0, 1);
  for (hsize_t l = 0; l < layers; ++l) {
    char name[16];
    std::snprintf(name, sizeof(name), "layer_%02d", static_cast<int>(l));
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    w.attr(g, "n_tokens", Kind::kInt64);
    for (auto [ds_name, dims, kind] : std::initializer_list<std::tuple<const char*, std::vector<hsize_t>, Kind>>{
             {"tokens_per_expert", {E}, Kind::kInt64},
             {"weight_per_expert", {E}, Kind::kDouble},
             {"active_experts_hist", {E + 1}, Kind::kInt64},
             {"domain_expert_tokens", {D, E}, Kind::kDouble},
             {"expert_coactivation", {E, E}, Kind::kInt64},
             {"expert_domain_simpson", {E}, Kind::kDouble},
             {"expert_domain_simpson_normalized", {E}, Kind::kDouble},
             {"domain_expert_simpson", {D}, Kind::kDouble}}) {
      hid_t ds = w.dataset(g, ds_name, dims, kind);
      if (ds >= 0) H5Dclose(ds);
    }
    hid_t ts = w.dataset(g, "token_simpson", {bins}, Kind::kInt64);
    if (ts >= 0) {
      w.attr(ts, "mean", Kind::kDouble);
      w.attr(ts, "count", Kind::kInt64);
      H5Dclose(ts);
    }
    H5Gclose(g);
  }
  if (in.ConsumeBool()) {
    const hsize_t N = in.ConsumeIntegralInRange<hsize_t>(0, 8), K = in.ConsumeIntegralInRange<hsize_t>(0, 3);
    hid_t g = H5Gcreate2(f, "trace", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    for (auto [ds_name, dims, kind] : std::initializer_list<std::tuple<const char*, std::vector<hsize_t>, Kind>>{
             {"token_ids", {N}, Kind::kInt64},
             {"domain_ids", {N}, Kind::kInt64},
             {"expert_ids", {L, N, K}, Kind::kInt16},
             {"weights", {L, N, K}, Kind::kDouble}}) {
      hid_t ds = w.dataset(g, ds_name, dims, kind);
      if (ds >= 0) H5Dclose(ds);
    }
    H5Gclose(g);
  }
  H5Fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // the writer's own refusals are part of the game
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const auto path = dirmoe::fuzz::scratch_dir() / "routing.h5";
  write_file(path.string(), in);
  dirmoe::fuzz::read_routing_h5_as_compare_does(path);
  return 0;
}
