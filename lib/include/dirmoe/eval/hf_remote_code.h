#pragma once
// The transformers "remote code" of an exported checkpoint: configuration_dirmoe.py and
// modeling_dirmoe.py (kept in lib/src/eval/hf/, compiled in byte for byte by
// cmake/EmbedFiles.cmake). With `auto_map` in config.json they let
// AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True) load any router's checkpoint
// (docs/export.md "Layout dirmoe").
#include <string>
#include <utility>
#include <vector>

namespace dirmoe::eval {

/// (file name, content) of each remote-code file, configuration first.
const std::vector<std::pair<std::string, std::string>>& hf_remote_code_files();

}  // namespace dirmoe::eval
