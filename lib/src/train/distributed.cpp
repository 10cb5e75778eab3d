#include "dirmoe/train/distributed.h"

// NOTE: the torch wheel ships ProcessGroupGloo.hpp but not the Gloo headers it includes; Debian's
// libgloo-dev provides them (declarations only: we never link Debian's libgloo, every symbol we
// call is exported by libtorch_cpu). USE_C10D_GLOO unlocks the header's contents.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
// NCCL: TorchConfig defines USE_C10D_NCCL for a CUDA wheel; the header also needs <nccl.h>.
#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>) && __has_include(<cuda_runtime_api.h>)
#define DIRMOE_HAVE_NCCL 1
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <map>
#include <mutex>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef DIRMOE_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/torch.h>

#include "dirmoe/core/error.h"

namespace dirmoe {

struct DistributedContext::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Store> root_store;  // the world's store: where every rank reports its progress
  c10::intrusive_ptr<c10d::Backend> backend;
  std::string name = "none";
  // What new_group needs to build a further group on the same backend.
  c10::intrusive_ptr<c10d::ProcessGroupGloo::Options> gloo_options;
#ifdef DIRMOE_HAVE_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL::Options> nccl_options;
#endif
};

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::string(v) : fallback;
}

int64_t env_int(const char* name, int64_t fallback) {
  const std::string v = env_or(name, "");
  if (v.empty()) return fallback;
  try {
    size_t used = 0;
    const int64_t x = std::stoll(v, &used);
    if (used != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    throw Error(fmt::format("environment variable {}='{}' is not an integer", name, v));
  }
}

/// The network device Gloo binds to: GLOO_SOCKET_IFNAME's interface when set; loopback when the
/// master is on this host by that name (torchrun --standalone); else the address this host's name
/// resolves to. NOTE: binding to MASTER_ADDR itself only works on the master's host, so a run
/// across hosts needs one of the last two.
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& master_addr) {
  const std::string ifname = env_or("GLOO_SOCKET_IFNAME", "");
  if (!ifname.empty()) return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (master_addr == "localhost" || master_addr == "127.0.0.1") {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

DistributedContext::DistributedContext() : impl_(std::make_unique<Impl>()) {}
DistributedContext::~DistributedContext() {
  // NOTE: a normal shutdown of the backend (ProcessGroupNCCL otherwise aborts its communicators
  // in its destructor and warns about it); a destructor must not throw.
  if (impl_ && impl_->backend) {
    try {
      impl_->backend->shutdown();
    } catch (const std::exception&) {
    }
  }
}

std::string DistributedContext::backend_name() const { return impl_->name; }

std::unique_ptr<DistributedContext> DistributedContext::from_environment(const torch::Device& device, double timeout_s) {
  const int64_t world = env_int("WORLD_SIZE", 1);
  if (world <= 1) return std::make_unique<DistributedContext>();
  const int64_t rank = env_int("RANK", -1);
  if (rank < 0 || rank >= world) {
    throw Error(fmt::format("WORLD_SIZE={} but RANK is missing or out of range; start several processes with "
                            "`torchrun --no-python --nproc-per-node N dirmoe-train ...`",
                            world));
  }
  const std::string addr = env_or("MASTER_ADDR", "");
  const int64_t port = env_int("MASTER_PORT", -1);
  if (addr.empty() || port <= 0 || port > 65535) {
    throw Error("WORLD_SIZE > 1 needs MASTER_ADDR and MASTER_PORT (torchrun sets them)");
  }
  ProcessGroupSpec spec;
  spec.rank = rank;
  spec.world_size = world;
  spec.local_rank = env_int("LOCAL_RANK", rank);
  spec.master_addr = addr;
  spec.master_port = port;
  // torchrun's agent hosts the store itself when TORCHELASTIC_USE_AGENT_STORE is true; every
  // worker is then a client. Otherwise rank 0 hosts it.
  spec.agent_store = env_or("TORCHELASTIC_USE_AGENT_STORE", "") == "True";
  spec.attempt = env_or("TORCHELASTIC_RESTART_COUNT", "0");
  spec.timeout_s = timeout_s;
  return connect(spec, device);
}

std::unique_ptr<DistributedContext> DistributedContext::connect(const ProcessGroupSpec& spec,
                                                                const torch::Device& device) {
  if (spec.world_size < 1 || spec.rank < 0 || spec.rank >= spec.world_size) {
    throw Error(fmt::format("process group: rank {} of world size {} is out of range", spec.rank, spec.world_size));
  }
  // Port 0 lets the OS pick a free port, which only a one-process group can use: nobody else has
  // to find the store.
  const bool own_store = spec.world_size == 1 && !spec.agent_store;
  if (spec.master_port < (own_store ? 0 : 1) || spec.master_port > 65535) {
    throw Error(fmt::format("process group: store port {} is out of range (1..65535)", spec.master_port));
  }
  auto ctx = std::make_unique<DistributedContext>();
  ctx->rank_ = spec.rank;
  ctx->world_size_ = spec.world_size;
  ctx->local_rank_ = spec.local_rank;
  TORCH_CHECK(spec.timeout_s > 0, "process group: timeout ", spec.timeout_s, " s must be positive");
  ctx->timeout_s_ = spec.timeout_s;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(spec.timeout_s * 1000.0));
  const int64_t rank = spec.rank;
  const int64_t world = spec.world_size;
  const std::string& addr = spec.master_addr;

  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(spec.master_port);
  options.isServer = !spec.agent_store && rank == 0;
  options.numWorkers = spec.agent_store ? std::nullopt : std::optional<size_t>(static_cast<size_t>(world));
  options.waitWorkers = !spec.agent_store;
  options.timeout = std::chrono::minutes(10);
  auto tcp = c10::make_intrusive<c10d::TCPStore>(addr, options);
  ctx->impl_->store = c10::make_intrusive<c10d::PrefixStore>("dirmoe/attempt_" + spec.attempt, tcp);

  if (device.is_cuda()) {
#ifdef DIRMOE_HAVE_NCCL
    auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
    nccl_options->timeout = timeout;
    ctx->impl_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(ctx->impl_->store, static_cast<int>(rank),
                                                                       static_cast<int>(world), nccl_options);
    ctx->impl_->name = "nccl";
    ctx->impl_->nccl_options = nccl_options;
#else
    throw Error(
        "multi-process training on CUDA needs ProcessGroupNCCL, but this build did not find <nccl.h> and "
        "<cuda_runtime_api.h> (add the nvidia-nccl and CUDA include directories to the compiler's search path "
        "and rebuild), or set train.device=cpu to use Gloo");
#endif
  } else {
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
    gloo_options->devices.push_back(gloo_device(addr));
    ctx->impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(ctx->impl_->store, static_cast<int>(rank),
                                                                       static_cast<int>(world), gloo_options);
    ctx->impl_->name = "gloo";
    ctx->impl_->gloo_options = gloo_options;
  }
  // NOTE: the rendezvous above waits up to 10 minutes for slow starters; from here on a store wait
  // (gather_to_main) is bounded like a collective.
  tcp->setTimeout(timeout);
  ctx->impl_->root_store = ctx->impl_->store;
  return ctx;
}

bool DistributedContext::has_group() const { return impl_->backend != nullptr; }

std::unique_ptr<DistributedContext> DistributedContext::in_process(const std::string& name, int64_t rank, int64_t world) {
  TORCH_CHECK(world >= 1 && rank >= 0 && rank < world, "in_process: rank ", rank, " of ", world);
  auto ctx = std::make_unique<DistributedContext>();
  if (world == 1) return ctx;
  static std::mutex mutex;
  static std::map<std::string, c10::intrusive_ptr<c10d::Store>> stores;
  c10::intrusive_ptr<c10d::Store> store;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto& slot = stores[name];
    if (!slot) slot = c10::make_intrusive<c10d::HashStore>();
    store = slot;
  }
  ctx->rank_ = rank;
  ctx->world_size_ = world;
  ctx->local_rank_ = rank;
  ctx->impl_->store = c10::make_intrusive<c10d::PrefixStore>("dirmoe/in_process", store);
  auto gloo_options = c10d::ProcessGroupGloo::Options::create(std::chrono::minutes(5));
  gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  ctx->impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(ctx->impl_->store, static_cast<int>(rank),
                                                                     static_cast<int>(world), gloo_options);
  ctx->impl_->name = "gloo";
  ctx->impl_->gloo_options = gloo_options;
  ctx->impl_->root_store = ctx->impl_->store;
  return ctx;
}

std::unique_ptr<DistributedContext> DistributedContext::new_group(const std::string& name,
                                                                  const std::vector<int64_t>& ranks) {
  const auto mine = std::find(ranks.begin(), ranks.end(), rank_);
  TORCH_CHECK(mine != ranks.end(), "process group '", name, "': rank ", rank_, " is not one of its ranks");
  TORCH_CHECK(std::is_sorted(ranks.begin(), ranks.end()) &&
                  std::adjacent_find(ranks.begin(), ranks.end()) == ranks.end() && ranks.front() >= 0 &&
                  ranks.back() < world_size_,
              "process group '", name, "': ranks must be ascending, distinct and below ", world_size_);
  auto group = std::make_unique<DistributedContext>();
  group->rank_ = mine - ranks.begin();
  group->world_size_ = static_cast<int64_t>(ranks.size());
  group->local_rank_ = local_rank_;
  group->group_name_ = name;
  group->timeout_s_ = timeout_s_;
  group->world_ranks_ = ranks;
  if (group->world_size_ == 1) return group;
  group->impl_->root_store = impl_->root_store;  // no backend: every collective of one process is the identity
  group->impl_->store = c10::make_intrusive<c10d::PrefixStore>("group/" + name, impl_->store);
  const int r = static_cast<int>(group->rank_);
  const int n = static_cast<int>(group->world_size_);
  if (impl_->name == "gloo") {
    group->impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(group->impl_->store, r, n, impl_->gloo_options);
    group->impl_->gloo_options = impl_->gloo_options;
#ifdef DIRMOE_HAVE_NCCL
  } else if (impl_->name == "nccl") {
    group->impl_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(group->impl_->store, r, n, impl_->nccl_options);
    group->impl_->nccl_options = impl_->nccl_options;
#endif
  } else {
    TORCH_CHECK(false, "process group '", name, "': no backend to build it on (", impl_->name, ")");
  }
  group->impl_->name = impl_->name;
  return group;
}

void DistributedContext::broadcast_module(torch::nn::Module& module) {
  std::vector<torch::Tensor> tensors;
  for (auto& p : module.parameters()) tensors.push_back(p);
  for (auto& b : module.buffers()) tensors.push_back(b);
  broadcast_tensors(tensors);
}

void DistributedContext::broadcast_tensors(const std::vector<torch::Tensor>& tensors) {
  if (!has_group()) return;
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    std::vector<torch::Tensor> one{t.data()};
    wait_collective(impl_->backend->broadcast(one, c10d::BroadcastOptions{}), "broadcast of the parameters");
  }
}

void DistributedContext::broadcast_buffers(torch::nn::Module& module) {
  if (!has_group()) return;
  torch::NoGradGuard no_grad;
  // One flat broadcast per (device, dtype) instead of one per buffer: this runs every step.
  std::map<std::string, std::vector<torch::Tensor>> groups;
  for (auto& b : module.buffers()) {
    if (b.numel() == 0) continue;
    groups[b.device().str() + "/" + std::string(c10::toString(b.scalar_type()))].push_back(b);
  }
  for (auto& [key, buffers] : groups) {
    std::vector<torch::Tensor> parts;
    for (auto& b : buffers) parts.push_back(b.reshape({-1}));
    std::vector<torch::Tensor> one{torch::cat(parts)};
    wait_collective(impl_->backend->broadcast(one, c10d::BroadcastOptions{}), "broadcast of the router buffers");
    int64_t offset = 0;
    for (auto& b : buffers) {
      b.copy_(one[0].narrow(0, offset, b.numel()).view_as(b));
      offset += b.numel();
    }
  }
}

void DistributedContext::average_gradients(const std::vector<torch::Tensor>& parameters, int64_t bucket_bytes) {
  if (!has_group()) return;
  reduce_gradients(parameters, 1.0 / static_cast<double>(world_size_), bucket_bytes);
}

void DistributedContext::reduce_gradients(const std::vector<torch::Tensor>& parameters, double scale,
                                          int64_t bucket_bytes) {
  torch::NoGradGuard no_grad;
  if (!has_group()) {
    if (scale == 1.0) return;
    for (const auto& p : parameters) {
      if (p.grad().defined()) p.grad().mul_(scale);
    }
    return;
  }
  // Group gradients by (device, dtype), then cut each group into buckets of ≤ bucket_bytes.
  std::map<std::string, std::vector<torch::Tensor>> groups;
  for (const auto& p : parameters) {
    if (!p.grad().defined()) continue;
    const auto& g = p.grad();
    groups[g.device().str() + "/" + std::string(c10::toString(g.scalar_type()))].push_back(g);
  }
  struct Bucket {
    std::vector<torch::Tensor> grads;
    torch::Tensor flat;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  for (auto& [key, grads] : groups) {
    Bucket current;
    int64_t bytes = 0;
    for (auto& g : grads) {
      const int64_t nbytes = g.numel() * static_cast<int64_t>(g.element_size());
      if (!current.grads.empty() && bytes + nbytes > bucket_bytes) {
        buckets.push_back(std::move(current));
        current = Bucket{};
        bytes = 0;
      }
      current.grads.push_back(g);
      bytes += nbytes;
    }
    if (!current.grads.empty()) buckets.push_back(std::move(current));
  }
  for (auto& bucket : buckets) {
    std::vector<torch::Tensor> flat_parts;
    for (auto& g : bucket.grads) flat_parts.push_back(g.reshape({-1}));
    bucket.flat = torch::cat(flat_parts);
    std::vector<torch::Tensor> one{bucket.flat};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    bucket.work = impl_->backend->allreduce(one, opts);
  }
  for (auto& bucket : buckets) {
    wait_collective(bucket.work, "all-reduce of the gradients");
    if (scale != 1.0) bucket.flat.mul_(scale);
    int64_t offset = 0;
    for (auto& g : bucket.grads) {
      const int64_t n = g.numel();
      g.copy_(bucket.flat.narrow(0, offset, n).view_as(g));
      offset += n;
    }
  }
}

void DistributedContext::average_(torch::Tensor& values) {
  if (!has_group()) return;
  std::vector<torch::Tensor> one{values};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  wait_collective(impl_->backend->allreduce(one, opts), "all-reduce (mean)");
  values.div_(static_cast<double>(world_size_));
}

void DistributedContext::sum_(torch::Tensor& values) {
  if (!has_group()) return;
  std::vector<torch::Tensor> one{values};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  wait_collective(impl_->backend->allreduce(one, opts), "all-reduce (sum)");
}

torch::Tensor DistributedContext::all_to_all(const torch::Tensor& input, const std::vector<int64_t>& output_splits,
                                             const std::vector<int64_t>& input_splits) {
  TORCH_CHECK(static_cast<int64_t>(output_splits.size()) == world_size_ &&
                  static_cast<int64_t>(input_splits.size()) == world_size_,
              "all_to_all over '", group_name_, "': split lists need ", world_size_, " entries");
  const int64_t rows_in = std::accumulate(input_splits.begin(), input_splits.end(), int64_t{0});
  const int64_t rows_out = std::accumulate(output_splits.begin(), output_splits.end(), int64_t{0});
  TORCH_CHECK(input.dim() >= 1 && input.size(0) == rows_in, "all_to_all over '", group_name_, "': input has ",
              input.dim() >= 1 ? input.size(0) : 0, " rows, its splits sum to ", rows_in);
  if (!has_group()) {
    TORCH_CHECK(rows_out == rows_in, "all_to_all of one process: output splits ", rows_out, " != input ", rows_in);
    return input;
  }
  std::vector<int64_t> sizes = input.sizes().vec();
  sizes[0] = rows_out;
  torch::Tensor output = torch::empty(sizes, input.options());
  torch::Tensor in = input.contiguous();
  std::vector<int64_t> out_splits = output_splits, in_splits = input_splits;
  wait_collective(impl_->backend->alltoall_base(output, in, out_splits, in_splits, c10d::AllToAllOptions{}),
                  "all-to-all of the expert tokens");
  return output;
}

torch::Tensor DistributedContext::all_gather_cat(const torch::Tensor& input) {
  if (!has_group()) return input;
  std::vector<torch::Tensor> inputs{input.contiguous()};
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int64_t r = 0; r < world_size_; ++r) outputs[0].push_back(torch::empty_like(inputs[0]));
  wait_collective(impl_->backend->allgather(outputs, inputs, c10d::AllgatherOptions{}), "all-gather");
  return torch::cat(outputs[0], 0);
}

void DistributedContext::max_(torch::Tensor& values) {
  if (!has_group()) return;
  std::vector<torch::Tensor> one{values};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::MAX;
  wait_collective(impl_->backend->allreduce(one, opts), "all-reduce (max)");
}

std::vector<std::string> DistributedContext::gather_to_main(const std::string& mine, const std::string& tag) {
  if (!has_group()) return {mine};
  const std::string key = "gather/" + tag + "/";
  impl_->store->set(key + std::to_string(rank_), std::vector<uint8_t>(mine.begin(), mine.end()));
  std::vector<std::string> out;
  if (is_main()) {
    for (int64_t r = 0; r < world_size_; ++r) {
      std::vector<uint8_t> bytes;
      try {
        bytes = impl_->store->get(key + std::to_string(r));
      } catch (const std::exception& e) {
        ++collective_seq_;
        throw CollectiveTimeout(describe_hang(fmt::format("store exchange '{}' (waiting for rank {})", tag, r), e.what()));
      }
      out.emplace_back(bytes.begin(), bytes.end());
    }
  }
  barrier();
  return out;
}

namespace {
class ProcessBatchMean : public BatchMeanReducer {
 public:
  explicit ProcessBatchMean(DistributedContext& dist) : dist_(dist) {}
  void mean_(torch::Tensor& values) override { dist_.average_(values); }

 private:
  DistributedContext& dist_;
};
}  // namespace

std::shared_ptr<BatchMeanReducer> make_batch_mean_reducer(DistributedContext& dist) {
  return std::make_shared<ProcessBatchMean>(dist);
}

namespace {

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string first_line(const std::string& text) {
  const auto end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

/// The value under `key`, or nullopt without waiting when there is none (or the store does not answer).
std::optional<nlohmann::json> peek(c10d::Store& store, const std::string& key) {
  try {
    if (!store.check({key})) return std::nullopt;
    const std::vector<uint8_t> bytes = store.get(key);
    return nlohmann::json::parse(std::string(bytes.begin(), bytes.end()));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

void DistributedContext::report_progress(int64_t step, const std::string& phase) {
  progress_step_ = step;
  progress_phase_ = phase;
  if (!has_group() || !impl_->root_store) return;
  const int64_t me = world_ranks_.empty() ? rank_ : world_ranks_[static_cast<size_t>(rank_)];
  const std::string value = nlohmann::json{{"step", step}, {"phase", phase}, {"time", unix_seconds()}}.dump();
  try {
    impl_->root_store->set("progress/" + std::to_string(me), std::vector<uint8_t>(value.begin(), value.end()));
  } catch (const std::exception&) {
    // The store is gone (its host died): the next collective reports the hang.
  }
}

void DistributedContext::wait_collective(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  ++collective_seq_;
  try {
    work->wait(std::chrono::milliseconds(static_cast<int64_t>(timeout_s_ * 1000.0)));
  } catch (const std::exception& e) {
    throw CollectiveTimeout(describe_hang(what, e.what()));
  }
}

std::string DistributedContext::describe_hang(const std::string& what, const std::string& backend_text) {
  auto world_rank = [&](int64_t r) { return world_ranks_.empty() ? r : world_ranks_[static_cast<size_t>(r)]; };
  const int64_t me = world_rank(rank_);
  std::vector<std::string> arrived{std::to_string(me)}, missing;
  if (impl_->root_store) {
    c10d::Store& store = *impl_->root_store;
    // Leave this rank's wait where the others look, then give the ranks stuck in the same collective
    // (they time out at about the same moment) a few seconds to leave theirs.
    const std::string mine = nlohmann::json{{"group", group_name_}, {"seq", collective_seq_}, {"what", what},
                                            {"step", progress_step_}, {"time", unix_seconds()}}.dump();
    try {
      store.setTimeout(std::chrono::seconds(5));
      store.set("waiting/" + std::to_string(me), std::vector<uint8_t>(mine.begin(), mine.end()));
    } catch (const std::exception&) {
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    std::vector<std::optional<nlohmann::json>> waiting(static_cast<size_t>(world_size_));
    while (true) {
      bool all = true;
      for (int64_t r = 0; r < world_size_; ++r) {
        if (r == rank_) continue;
        waiting[static_cast<size_t>(r)] = peek(store, "waiting/" + std::to_string(world_rank(r)));
        const auto& w = waiting[static_cast<size_t>(r)];
        if (!w || w->value("seq", int64_t{-1}) != collective_seq_ || w->value("group", "") != group_name_) all = false;
      }
      if (all || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    const double now = unix_seconds();
    for (int64_t r = 0; r < world_size_; ++r) {
      if (r == rank_) continue;
      const auto& w = waiting[static_cast<size_t>(r)];
      const std::string name = std::to_string(world_rank(r));
      if (w && w->value("seq", int64_t{-1}) == collective_seq_ && w->value("group", "") == group_name_) {
        arrived.push_back(name);
        continue;
      }
      const auto seen = peek(store, "progress/" + name);
      missing.push_back(seen ? fmt::format("rank {} (last seen at step {}, {}, {:.0f} s ago)", name,
                                           seen->value("step", int64_t{-1}), seen->value("phase", "?"),
                                           now - seen->value("time", now))
                             : fmt::format("rank {} (never reported)", name));
    }
  }
  return fmt::format(
      "collective timeout: rank {} waited more than train.collective_timeout_s = {:g} s in the {} (collective #{} of "
      "group '{}') at step {} ({}); ranks that reached it: {}; ranks that did not: {}. Backend: {}. Every surviving "
      "rank stops with exit code 4, so that torchrun --max-restarts N can restart the job, which continues with "
      "--resume from the last checkpoint",
      me, timeout_s_, what, collective_seq_, group_name_, progress_step_, progress_phase_, fmt::join(arrived, ", "),
      missing.empty() ? std::string("none recorded") : fmt::format("{}", fmt::join(missing, "; ")),
      first_line(backend_text));
}

void DistributedContext::barrier() {
  if (!has_group()) return;
  // A tiny all-reduce is a barrier every backend implements the same way.
  torch::Tensor t = torch::zeros({1}, impl_->name == "nccl" ? torch::Device(torch::kCUDA, local_rank_) : torch::Device(torch::kCPU));
  max_(t);
}

}  // namespace dirmoe
