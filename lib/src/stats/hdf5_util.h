#pragma once
// Small helpers over the HDF5 C++ API shared by the routing file and time-series writers
// (private to lib/src/stats).
#include <H5Cpp.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "dirmoe/core/error.h"

namespace dirmoe::h5 {

template <typename T>
const H5::PredType& native_type();
template <>
inline const H5::PredType& native_type<int64_t>() { return H5::PredType::NATIVE_INT64; }
template <>
inline const H5::PredType& native_type<int32_t>() { return H5::PredType::NATIVE_INT32; }
template <>
inline const H5::PredType& native_type<int16_t>() { return H5::PredType::NATIVE_INT16; }
template <>
inline const H5::PredType& native_type<double>() { return H5::PredType::NATIVE_DOUBLE; }
template <>
inline const H5::PredType& native_type<float>() { return H5::PredType::NATIVE_FLOAT; }

inline H5::StrType string_type() {
  H5::StrType type(H5::PredType::C_S1, H5T_VARIABLE);
  type.setCset(H5T_CSET_UTF8);
  return type;
}

inline void write_attr(H5::H5Object& obj, const std::string& name, int64_t value) {
  H5::DataSpace scalar;
  obj.createAttribute(name, H5::PredType::NATIVE_INT64, scalar).write(H5::PredType::NATIVE_INT64, &value);
}
inline void write_attr(H5::H5Object& obj, const std::string& name, double value) {
  H5::DataSpace scalar;
  obj.createAttribute(name, H5::PredType::NATIVE_DOUBLE, scalar).write(H5::PredType::NATIVE_DOUBLE, &value);
}
inline void write_attr(H5::H5Object& obj, const std::string& name, const std::string& value) {
  H5::DataSpace scalar;
  const auto type = string_type();
  obj.createAttribute(name, type, scalar).write(type, value);
}

/// Writes a dataset of shape `dims` from row-major `data`; gzip-chunked when `gzip_level` ≥ 0.
template <typename T>
void write_dataset(H5::Group& group, const std::string& name, const std::vector<hsize_t>& dims,
                   const std::vector<T>& data, int gzip_level = -1) {
  H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
  H5::DSetCreatPropList props;
  if (gzip_level >= 0) {
    std::vector<hsize_t> chunk(dims);
    // ~64 Ki elements per chunk along the first axis, whole along the others.
    hsize_t inner = 1;
    for (size_t i = 1; i < chunk.size(); ++i) inner *= std::max<hsize_t>(chunk[i], 1);
    chunk[0] = std::max<hsize_t>(1, std::min<hsize_t>(std::max<hsize_t>(dims[0], 1), 65536 / inner + 1));
    for (size_t i = 1; i < chunk.size(); ++i) chunk[i] = std::max<hsize_t>(chunk[i], 1);
    props.setChunk(static_cast<int>(chunk.size()), chunk.data());
    props.setShuffle();
    props.setDeflate(static_cast<unsigned>(gzip_level));
  }
  H5::DataSet ds = group.createDataSet(name, native_type<T>(), space, props);
  if (!data.empty()) ds.write(data.data(), native_type<T>());
}

inline void write_strings(H5::Group& group, const std::string& name, const std::vector<std::string>& values) {
  const hsize_t dims[1] = {values.size()};
  H5::DataSpace space(1, dims);
  const auto type = string_type();
  H5::DataSet ds = group.createDataSet(name, type, space);
  std::vector<const char*> pointers;
  for (const auto& v : values) pointers.push_back(v.c_str());
  if (!pointers.empty()) ds.write(pointers.data(), type);
}

/// Builds an HDF5 file in memory (the core driver, no backing store): `fill` writes its contents,
/// and the file's bytes come back for the caller to put on disk with write_file_atomic.
///
/// NOTE: why not write through libhdf5: when a write to disk fails inside it (a full disk, EFBIG),
/// HDF5 1.10 leaves the file half closed and crashes at library shutdown. In memory nothing can
/// fail that way, and the one disk write is ours, reported with the path. `path` is the file the
/// image is for: it labels the in-memory file and the error. Throws H5::Exception from `fill`,
/// IoError naming `path` if no image comes back.
inline std::string build_file_image(const std::string& path, const std::function<void(H5::H5File&)>& fill) {
  H5::FileAccPropList access;
  access.setCore(/*increment=*/1 << 20, /*backing_store=*/false);
  H5::H5File file(path + ".in-memory", H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, access);
  fill(file);
  file.flush(H5F_SCOPE_GLOBAL);
  const ssize_t size = H5Fget_file_image(file.getId(), nullptr, 0);
  std::string image(size > 0 ? static_cast<size_t>(size) : 0, '\0');
  if (size <= 0 || H5Fget_file_image(file.getId(), image.data(), image.size()) != size) {
    throw IoError(fmt::format("{}: HDF5 could not produce the file image", path));
  }
  file.close();
  return image;
}

}  // namespace dirmoe::h5
