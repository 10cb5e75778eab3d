#include "dirmoe/data/byte_reader.h"

#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "dirmoe/core/error.h"

namespace dirmoe::data {
namespace fs = std::filesystem;

namespace {
constexpr size_t kInChunk = 1 << 18;
}  // namespace

struct ByteReader::Impl {
  // NOTE: a member type, not a file-local one: a class with external linkage must not hold a field
  // of an anonymous-namespace type (GCC's -Wsubobject-linkage, in a unity batch).
  enum class Format { kPlain, kGzip, kZstd };
  std::string path;
  std::FILE* file = nullptr;
  Format format = Format::kPlain;
  std::vector<char> in;     // compressed input buffer
  size_t in_pos = 0, in_len = 0;
  bool in_eof = false;
  int64_t raw_read = 0;
  z_stream zs{};
  bool zs_open = false;
  bool gz_member_done = false;
  ZSTD_DCtx* zstd = nullptr;
  bool stream_done = false;
  // line reading
  std::vector<char> lbuf;
  size_t lpos = 0, llen = 0;

  bool refill() {
    if (in_eof) return false;
    in_len = std::fread(in.data(), 1, in.size(), file);
    in_pos = 0;
    raw_read += static_cast<int64_t>(in_len);
    if (in_len < in.size()) {
      if (std::ferror(file)) throw IoError(fmt::format("{}: read error ({})", path, std::strerror(errno)));
      in_eof = true;
    }
    return in_len > 0;
  }

  ~Impl() {
    if (zs_open) inflateEnd(&zs);
    if (zstd != nullptr) ZSTD_freeDCtx(zstd);
    if (file != nullptr) std::fclose(file);
  }

  size_t read_plain(char* dst, size_t n) {
    size_t got = 0;
    if (in_pos < in_len) {
      got = std::min(n, in_len - in_pos);
      std::memcpy(dst, in.data() + in_pos, got);
      in_pos += got;
    }
    if (got < n && !in_eof) {
      const size_t more = std::fread(dst + got, 1, n - got, file);
      raw_read += static_cast<int64_t>(more);
      if (more < n - got) {
        if (std::ferror(file)) throw IoError(fmt::format("{}: read error ({})", path, std::strerror(errno)));
        in_eof = true;
      }
      got += more;
    }
    return got;
  }

  size_t read_gzip(char* dst, size_t n) {
    size_t produced = 0;
    while (produced < n && !stream_done) {
      if (zs.avail_in == 0) {
        if (in_pos < in_len) {
          zs.next_in = reinterpret_cast<Bytef*>(in.data() + in_pos);
          zs.avail_in = static_cast<uInt>(in_len - in_pos);
          in_pos = in_len;
        } else if (refill()) {
          zs.next_in = reinterpret_cast<Bytef*>(in.data());
          zs.avail_in = static_cast<uInt>(in_len);
          in_pos = in_len;
        } else {
          if (!gz_member_done) throw IoError(fmt::format("{}: truncated gzip stream", path));
          stream_done = true;
          break;
        }
      }
      if (gz_member_done) {
        // Another gzip member follows (concatenated .gz files are valid gzip).
        inflateReset(&zs);
        gz_member_done = false;
      }
      zs.next_out = reinterpret_cast<Bytef*>(dst + produced);
      zs.avail_out = static_cast<uInt>(n - produced);
      const int rc = inflate(&zs, Z_NO_FLUSH);
      produced = n - zs.avail_out;
      if (rc == Z_STREAM_END) {
        gz_member_done = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        throw IoError(fmt::format("{}: corrupt gzip data ({})", path, zs.msg != nullptr ? zs.msg : "inflate failed"));
      }
    }
    return produced;
  }

  size_t read_zstd(char* dst, size_t n) {
    ZSTD_outBuffer out{dst, n, 0};
    while (out.pos < out.size && !stream_done) {
      if (in_pos >= in_len && !refill()) {
        // End of input: a finished frame (last return 0) ends the stream; otherwise the decoder
        // may still hold output to flush, and if it has none the stream was cut short.
        if (zstd_last_rc == 0) {
          stream_done = true;
          break;
        }
        const size_t before = out.pos;
        ZSTD_inBuffer empty{nullptr, 0, 0};
        zstd_last_rc = ZSTD_decompressStream(zstd, &out, &empty);
        if (ZSTD_isError(zstd_last_rc)) {
          throw IoError(fmt::format("{}: corrupt zstd data ({})", path, ZSTD_getErrorName(zstd_last_rc)));
        }
        if (out.pos == before && zstd_last_rc != 0) throw IoError(fmt::format("{}: truncated zstd stream", path));
        continue;
      }
      ZSTD_inBuffer inb{in.data(), in_len, in_pos};
      zstd_last_rc = ZSTD_decompressStream(zstd, &out, &inb);
      in_pos = inb.pos;
      if (ZSTD_isError(zstd_last_rc)) {
        throw IoError(fmt::format("{}: corrupt zstd data ({})", path, ZSTD_getErrorName(zstd_last_rc)));
      }
    }
    return out.pos;
  }
  size_t zstd_last_rc = 1;  // last ZSTD_decompressStream result; 0 = a frame just ended
};

ByteReader::ByteReader(const fs::path& path) : impl_(std::make_unique<Impl>()) {
  impl_->path = path.string();
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw IoError(fmt::format("{}: is a directory, expected a file", path.string()));
  impl_->file = std::fopen(path.c_str(), "rb");
  if (impl_->file == nullptr) {
    throw IoError(fmt::format("{}: cannot open for reading ({})", path.string(), std::strerror(errno)));
  }
  impl_->in.resize(kInChunk);
  impl_->refill();
  const auto* b = reinterpret_cast<const unsigned char*>(impl_->in.data());
  if (impl_->in_len >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
    impl_->format = Impl::Format::kGzip;
    if (inflateInit2(&impl_->zs, 15 + 16) != Z_OK) throw IoError(impl_->path + ": zlib initialisation failed");
    impl_->zs_open = true;
  } else if (impl_->in_len >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) {
    impl_->format = Impl::Format::kZstd;
    impl_->zstd = ZSTD_createDCtx();
    if (impl_->zstd == nullptr) throw IoError(impl_->path + ": zstd initialisation failed");
  }
}

ByteReader::~ByteReader() = default;

size_t ByteReader::read(char* dst, size_t n) {
  switch (impl_->format) {
    case Impl::Format::kGzip: return impl_->read_gzip(dst, n);
    case Impl::Format::kZstd: return impl_->read_zstd(dst, n);
    default: return impl_->read_plain(dst, n);
  }
}

bool ByteReader::read_line(std::string& line) {
  auto& I = *impl_;
  line.clear();
  if (I.lbuf.empty()) I.lbuf.resize(1 << 18);
  bool any = false;
  for (;;) {
    if (I.lpos >= I.llen) {
      I.llen = read(I.lbuf.data(), I.lbuf.size());
      I.lpos = 0;
      if (I.llen == 0) return any;
    }
    any = true;
    const char* start = I.lbuf.data() + I.lpos;
    const auto* nl = static_cast<const char*>(std::memchr(start, '\n', I.llen - I.lpos));
    if (nl != nullptr) {
      line.append(start, static_cast<size_t>(nl - start));
      I.lpos += static_cast<size_t>(nl - start) + 1;
      return true;
    }
    line.append(start, I.llen - I.lpos);
    I.lpos = I.llen;
  }
}

const char* ByteReader::format() const {
  switch (impl_->format) {
    case Impl::Format::kGzip: return "gzip";
    case Impl::Format::kZstd: return "zstd";
    default: return "plain";
  }
}

int64_t ByteReader::raw_bytes_read() const { return impl_->raw_read; }

std::string read_decompressed(const fs::path& path) {
  ByteReader reader(path);
  std::string out;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (!ec) out.reserve(static_cast<size_t>(size));
  char buf[1 << 16];
  size_t n;
  while ((n = reader.read(buf, sizeof(buf))) > 0) out.append(buf, n);
  return out;
}

}  // namespace dirmoe::data
