#pragma once
// The trainer's view of a data directory written by `dirmoe-data build`: a resumable stream of
// training windows and a fixed set of validation windows.
#include <memory>
#include <vector>

#include <torch/types.h>

#include "dirmoe/config/config.h"
#include "dirmoe/train/batch_source.h"

namespace dirmoe {

struct TrainingData {
  std::unique_ptr<BatchSource> train;     // random windows of the "train" split (seed train.seed)
  std::vector<torch::Tensor> validation;  // train.eval_batches × (batch_size·processes, seq_len+1), fixed windows
};

/// Opens config.data.dir. Sets config.model.vocab_size from the manifest when it is 0 (and
/// refuses a vocab_size smaller than the tokenizer's). Throws DataError naming the directory and
/// saying to run `dirmoe-data build` when it holds no shards. The validation batches have the
/// global batch's rows (train.batch_size × `processes`), so that every number of processes with the
/// same global batch scores the same windows (the trainer gives each process its share of rows).
TrainingData open_training_data(Config& config, int64_t processes = 1);

}  // namespace dirmoe
