#pragma once
// The one exception family of the library. Apps catch `dirmoe::Error` (and std::exception) once
// in main and exit non-zero; the library itself never calls exit().
#include <stdexcept>
#include <string>

namespace dirmoe {

/// Base of every error the library raises for bad input, bad config or failed I/O. The message
/// names the file and/or key and says what to do.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// A config value or key is wrong (unknown key, wrong type, failed validation).
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A file could not be read or written, or its contents are not what they claim to be.
class IoError : public Error {
 public:
  using Error::Error;
};

/// A data set (corpus, shards, task file) is malformed.
class DataError : public Error {
 public:
  using Error::Error;
};

}  // namespace dirmoe
