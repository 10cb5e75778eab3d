#include "dirmoe/train/run_counters.h"

#include <cmath>

namespace dirmoe {
namespace {

double json_number(const nlohmann::json& j, const char* key, double fallback) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  return j.at(key).get<double>();
}

}  // namespace

nlohmann::json finite_or_null(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

bool RunCounters::record_validation(double val_loss) {
  last_val = val_loss;
  if (!std::isfinite(val_loss) || val_loss >= best_val) return false;
  best_val = val_loss;
  best_step = step;
  return true;
}

nlohmann::json RunCounters::trainer_state() const {
  return {{"best_val_loss", finite_or_null(best_val)},
          {"best_step", best_step},
          {"last_val_loss", finite_or_null(last_val)},
          {"train_seconds", train_seconds},
          {"total_flops", total_flops},
          {"flops_known", flops_known},
          {"clipped_steps", clipped_steps},
          {"parity", parity.state()},
          {"load", load.state()}};
}

void RunCounters::restore(const nlohmann::json& meta) {
  step = meta.at("step").get<int64_t>();
  tokens = meta.at("tokens").get<int64_t>();
  const nlohmann::json& tr = meta.at("trainer");
  best_val = json_number(tr, "best_val_loss", std::numeric_limits<double>::infinity());
  best_step = tr.value("best_step", int64_t{-1});
  last_val = json_number(tr, "last_val_loss", std::numeric_limits<double>::quiet_NaN());
  train_seconds = tr.value("train_seconds", 0.0);
  total_flops = tr.value("total_flops", 0.0);
  flops_known = tr.value("flops_known", true);
  clipped_steps = tr.value("clipped_steps", 0.0);
  parity.restore(tr.at("parity"));
  load.restore(tr.value("load", nlohmann::json::object()));
}

}  // namespace dirmoe
