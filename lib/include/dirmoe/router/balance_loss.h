#pragma once
// The Switch Transformer load-balancing loss shared by the top-k and SparseMixer routers
// (Fedus et al. 2021, eq. 4, generalised to k choices per token).
#include <torch/types.h>

#include "dirmoe/router/batch_mean.h"

namespace dirmoe {

/// Unscaled balance loss E·Σ_e f_e·P_e, where f_e = (assignments to e)/(T·k) is the fraction of
/// the T·k dispatch decisions that went to expert e (no gradient) and P_e = mean_t probs_TE[t, e]
/// is the mean router probability (carries the gradient). Equals 1 under perfect balance with
/// uniform probabilities. dispatch_mask_TE: (T, E) bool; probs_TE: (T, E). With a `batch` reducer,
/// f_e and P_e are the global batch's (batch_mean.h).
torch::Tensor switch_balance_loss(const torch::Tensor& probs_TE, const torch::Tensor& dispatch_mask_TE,
                                  int64_t k, BatchMeanReducer* batch = nullptr);

/// Coefficient of variation (population std / mean) of the tokens dispatched to each expert, a
/// detached fp32 scalar (0 = perfectly balanced). dispatch_mask_TE: (T, E) bool.
torch::Tensor dispatch_load_cv(const torch::Tensor& dispatch_mask_TE);

}  // namespace dirmoe
