#include "dirmoe/stats/routing_stats_file.h"

#include <H5Cpp.h>

#include <fmt/format.h>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"
#include "dirmoe/stats/routing_metrics.h"
#include "hdf5_util.h"

namespace dirmoe {
namespace fs = std::filesystem;

std::string routing_layer_name(int64_t layer) { return fmt::format("layer_{:02d}", layer); }

void write_routing_stats(const fs::path& path, const RoutingStatsFile& file) {
  const auto& s = file.stats;
  const int64_t E = s.n_experts;
  const int64_t Dn = s.n_domains;
  const auto L = static_cast<int64_t>(s.layers.size());
  if (static_cast<int64_t>(file.domains.size()) != Dn) {
    throw IoError(fmt::format("{}: {} domain names given for {} domains", path.string(), file.domains.size(), Dn));
  }
  const auto uE = static_cast<hsize_t>(E);
  const auto uD = static_cast<hsize_t>(Dn);
  std::string image;
  try {
    H5::Exception::dontPrint();
    image = h5::build_file_image(path.string(), [&](H5::H5File& h5) {
      h5::write_attr(h5, "format_version", kRoutingFormatVersion);
      h5::write_attr(h5, "router", file.attrs.router);
      h5::write_attr(h5, "n_layers", L);
      h5::write_attr(h5, "n_experts", E);
      h5::write_attr(h5, "k_target", file.attrs.k_target);
      h5::write_attr(h5, "step", file.attrs.step);
      h5::write_attr(h5, "config", file.attrs.config_json);
      h5::write_attr(h5, "git_rev", file.attrs.git_rev);
      h5::write_strings(h5, "domains", file.domains);

      for (int64_t i = 0; i < L; ++i) {
        const auto& l = s.layers[static_cast<size_t>(i)];
        H5::Group g = h5.createGroup(routing_layer_name(i));
        h5::write_attr(g, "n_tokens", l.n_tokens);
        h5::write_dataset(g, "tokens_per_expert", {uE}, l.tokens_per_expert);
        h5::write_dataset(g, "weight_per_expert", {uE}, l.weight_per_expert);
        h5::write_dataset(g, "active_experts_hist", {uE + 1}, l.active_experts_hist);
        h5::write_dataset(g, "domain_expert_tokens", {uD, uE}, l.domain_expert_tokens);
        h5::write_dataset(g, "expert_coactivation", {uE, uE}, l.expert_coactivation);
        h5::write_dataset(g, "token_simpson", {static_cast<hsize_t>(s.simpson_bins)}, l.token_simpson_hist);
        H5::DataSet ts = g.openDataSet("token_simpson");
        h5::write_attr(ts, "mean", l.token_simpson_mean());
        h5::write_attr(ts, "count", l.token_simpson_count);
        h5::write_attr(ts, "range_min", 0.0);
        h5::write_attr(ts, "range_max", 1.0);
        const auto ed = stats::expert_domain_simpson(l.domain_expert_tokens, Dn, E);
        std::vector<double> ed_norm;
        for (double v : ed) ed_norm.push_back(stats::normalized_simpson(v, Dn));
        h5::write_dataset(g, "expert_domain_simpson", {uE}, ed);
        h5::write_dataset(g, "expert_domain_simpson_normalized", {uE}, ed_norm);
        h5::write_dataset(g, "domain_expert_simpson", {uD}, stats::domain_expert_simpson(l.domain_expert_tokens, Dn, E));
      }

      if (s.trace && s.trace->n_tokens() > 0) {
        const auto& t = *s.trace;
        const auto N = static_cast<hsize_t>(t.n_tokens());
        const auto K = static_cast<hsize_t>(t.max_active);
        H5::Group g = h5.createGroup("trace");
        h5::write_dataset(g, "token_ids", {N}, t.token_ids, /*gzip_level=*/4);
        h5::write_dataset(g, "domain_ids", {N}, t.domain_ids, 4);
        h5::write_dataset(g, "expert_ids", {static_cast<hsize_t>(L), N, K}, t.expert_ids, 4);
        h5::write_dataset(g, "weights", {static_cast<hsize_t>(L), N, K}, t.weights, 4);
      }
    });
  } catch (const H5::Exception& e) {
    throw IoError(fmt::format("{}: HDF5 write failed in {}: {}", path.string(), e.getFuncName(), e.getDetailMsg()));
  }
  write_file_atomic(path, image);
}

namespace {

struct Reader {
  std::string file;

  [[noreturn]] void fail(const std::string& what) const {
    throw IoError(fmt::format("{}: {}", file, what));
  }

  H5::Attribute attr(const H5::H5Object& obj, const std::string& where, const std::string& name) const {
    if (!obj.attrExists(name)) fail(fmt::format("missing attribute '{}' on {}", name, where));
    return obj.openAttribute(name);
  }
  int64_t int_attr(const H5::H5Object& obj, const std::string& where, const std::string& name) const {
    auto a = attr(obj, where, name);
    if (a.getTypeClass() != H5T_INTEGER) fail(fmt::format("attribute '{}' on {} is not an integer", name, where));
    int64_t v = 0;
    a.read(H5::PredType::NATIVE_INT64, &v);
    return v;
  }
  double float_attr(const H5::H5Object& obj, const std::string& where, const std::string& name) const {
    auto a = attr(obj, where, name);
    double v = 0;
    a.read(H5::PredType::NATIVE_DOUBLE, &v);
    return v;
  }
  std::string string_attr(const H5::H5Object& obj, const std::string& where, const std::string& name) const {
    auto a = attr(obj, where, name);
    if (a.getTypeClass() != H5T_STRING) fail(fmt::format("attribute '{}' on {} is not a string", name, where));
    std::string v;
    a.read(a.getStrType(), v);
    return v;
  }

  H5::DataSet dataset(const H5::Group& group, const std::string& where, const std::string& name,
                      const std::vector<hsize_t>& dims, H5T_class_t type_class) const {
    const std::string full = where + "/" + name;
    if (!group.nameExists(name)) fail(fmt::format("missing dataset {}", full));
    H5::DataSet ds = group.openDataSet(name);
    if (ds.getTypeClass() != type_class) fail(fmt::format("dataset {} has the wrong type class", full));
    H5::DataSpace space = ds.getSpace();
    std::vector<hsize_t> actual(static_cast<size_t>(space.getSimpleExtentNdims()));
    if (!actual.empty()) space.getSimpleExtentDims(actual.data());
    if (actual != dims) {
      fail(fmt::format("dataset {} has shape ({}), expected ({})", full, fmt::join(actual, ", "), fmt::join(dims, ", ")));
    }
    return ds;
  }
  template <typename T>
  std::vector<T> read(const H5::Group& group, const std::string& where, const std::string& name,
                      const std::vector<hsize_t>& dims) const {
    const H5T_class_t cls = std::is_floating_point<T>::value ? H5T_FLOAT : H5T_INTEGER;
    H5::DataSet ds = dataset(group, where, name, dims, cls);
    size_t n = 1;
    for (auto d : dims) n *= d;
    std::vector<T> out(n);
    if (n > 0) ds.read(out.data(), h5::native_type<T>());
    return out;
  }
};

}  // namespace

RoutingStatsFile read_routing_stats(const fs::path& path) {
  Reader r{path.string()};
  if (!fs::exists(path)) r.fail("no such file");
  RoutingStatsFile file;
  try {
    H5::Exception::dontPrint();
    if (H5Fis_hdf5(path.c_str()) <= 0) r.fail("not an HDF5 file (no HDF5 signature)");
    H5::H5File h5;
    try {
      h5.openFile(path.string(), H5F_ACC_RDONLY);
    } catch (const H5::Exception& e) {
      r.fail(fmt::format("cannot open as HDF5 (truncated or damaged file?): {}", e.getDetailMsg()));
    }
    if (!h5.attrExists("format_version")) {
      r.fail("not a dirmoe routing file: the root has no 'format_version' attribute");
    }
    const int64_t version = r.int_attr(h5, "/", "format_version");
    if (version != kRoutingFormatVersion) {
      r.fail(fmt::format("routing file format_version {} is not supported (this build reads {})", version,
                         kRoutingFormatVersion));
    }
    file.attrs.router = r.string_attr(h5, "/", "router");
    file.attrs.k_target = r.int_attr(h5, "/", "k_target");
    file.attrs.step = r.int_attr(h5, "/", "step");
    file.attrs.config_json = r.string_attr(h5, "/", "config");
    file.attrs.git_rev = r.string_attr(h5, "/", "git_rev");
    const int64_t L = r.int_attr(h5, "/", "n_layers");
    const int64_t E = r.int_attr(h5, "/", "n_experts");
    if (L <= 0 || E <= 0) r.fail(fmt::format("n_layers = {} and n_experts = {} must be positive", L, E));

    if (!h5.nameExists("domains")) r.fail("missing dataset /domains");
    {
      H5::DataSet ds = h5.openDataSet("domains");
      if (ds.getTypeClass() != H5T_STRING) r.fail("dataset /domains is not a string array");
      H5::DataSpace space = ds.getSpace();
      if (space.getSimpleExtentNdims() != 1) r.fail("dataset /domains must be 1-D");
      hsize_t n = 0;
      space.getSimpleExtentDims(&n);
      std::vector<char*> pointers(n, nullptr);
      const auto type = h5::string_type();
      if (n > 0) ds.read(pointers.data(), type);
      for (char* p : pointers) file.domains.emplace_back(p ? p : "");
      if (n > 0) H5Dvlen_reclaim(type.getId(), space.getId(), H5P_DEFAULT, pointers.data());
    }

    auto& s = file.stats;
    s.n_experts = E;
    s.n_domains = static_cast<int64_t>(file.domains.size());
    const auto uE = static_cast<hsize_t>(E);
    const auto uD = static_cast<hsize_t>(s.n_domains);
    for (int64_t i = 0; i < L; ++i) {
      const std::string name = routing_layer_name(i);
      const std::string where = "/" + name;
      if (!h5.nameExists(name)) r.fail(fmt::format("missing group {} (n_layers = {})", where, L));
      H5::Group g = h5.openGroup(name);
      LayerRoutingStats l;
      l.n_tokens = r.int_attr(g, where, "n_tokens");
      l.tokens_per_expert = r.read<int64_t>(g, where, "tokens_per_expert", {uE});
      l.weight_per_expert = r.read<double>(g, where, "weight_per_expert", {uE});
      l.active_experts_hist = r.read<int64_t>(g, where, "active_experts_hist", {uE + 1});
      l.domain_expert_tokens = r.read<double>(g, where, "domain_expert_tokens", {uD, uE});
      l.expert_coactivation = r.read<int64_t>(g, where, "expert_coactivation", {uE, uE});
      if (!g.nameExists("token_simpson")) r.fail(fmt::format("missing dataset {}/token_simpson", where));
      H5::DataSet ts = g.openDataSet("token_simpson");
      hsize_t bins = 0;
      if (ts.getSpace().getSimpleExtentNdims() != 1) r.fail(fmt::format("dataset {}/token_simpson must be 1-D", where));
      ts.getSpace().getSimpleExtentDims(&bins);
      if (bins == 0) r.fail(fmt::format("dataset {}/token_simpson is empty", where));
      if (i == 0) s.simpson_bins = static_cast<int64_t>(bins);
      l.token_simpson_hist = r.read<int64_t>(g, where, "token_simpson", {static_cast<hsize_t>(s.simpson_bins)});
      l.token_simpson_count = r.int_attr(ts, where + "/token_simpson", "count");
      l.token_simpson_sum = l.token_simpson_count > 0 ? r.float_attr(ts, where + "/token_simpson", "mean") *
                                                            static_cast<double>(l.token_simpson_count)
                                                      : 0.0;
      r.read<double>(g, where, "expert_domain_simpson", {uE});
      r.read<double>(g, where, "expert_domain_simpson_normalized", {uE});
      r.read<double>(g, where, "domain_expert_simpson", {uD});
      s.layers.push_back(std::move(l));
    }

    if (h5.nameExists("trace")) {
      H5::Group g = h5.openGroup("trace");
      if (!g.nameExists("token_ids")) r.fail("missing dataset /trace/token_ids");
      hsize_t n = 0;
      g.openDataSet("token_ids").getSpace().getSimpleExtentDims(&n);
      if (!g.nameExists("expert_ids")) r.fail("missing dataset /trace/expert_ids");
      hsize_t dims[3] = {0, 0, 0};
      H5::DataSpace es = g.openDataSet("expert_ids").getSpace();
      if (es.getSimpleExtentNdims() != 3) r.fail("dataset /trace/expert_ids must be 3-D");
      es.getSimpleExtentDims(dims);
      RoutingTrace t;
      t.max_active = static_cast<int64_t>(dims[2]);
      t.token_ids = r.read<int64_t>(g, "/trace", "token_ids", {n});
      t.domain_ids = r.read<int32_t>(g, "/trace", "domain_ids", {n});
      t.expert_ids = r.read<int16_t>(g, "/trace", "expert_ids", {static_cast<hsize_t>(L), n, dims[2]});
      t.weights = r.read<float>(g, "/trace", "weights", {static_cast<hsize_t>(L), n, dims[2]});
      s.trace = std::move(t);
    }
  } catch (const H5::Exception& e) {
    r.fail(fmt::format("HDF5 read failed in {} (truncated or damaged file?): {}", e.getFuncName(), e.getDetailMsg()));
  }
  return file;
}

}  // namespace dirmoe
