// .npy files (see worker/predict/npy_file.h).
#include "worker/predict/npy_file.h"

#include <cerrno>
#include <cstring>
#include <utility>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              ".npy arrays are written little-endian in host order");

namespace mtps {
namespace {

size_t ElementSize(NpyType type) { return type == NpyType::kFloat32 ? 4 : 8; }

const char* Descr(NpyType type) {
  switch (type) {
    case NpyType::kFloat32:
      return "<f4";
    case NpyType::kInt64:
      return "<i8";
    case NpyType::kUint64:
      return "<u8";
  }
  return "?";
}

std::string Header(NpyType type, const std::vector<int64_t>& shape) {
  // Python tuple syntax: "()", "(n,)", "(n, d)".
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dims += ",";
  std::string header = std::string("{'descr': '") + Descr(type) +
                       "', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header;
}

}  // namespace

NpyWriter::NpyWriter(std::string path, NpyType type, int64_t elements, std::FILE* file)
    : path_(std::move(path)), type_(type), elements_(elements), file_(file) {}

StatusOr<std::unique_ptr<NpyWriter>> NpyWriter::Create(const std::string& path, NpyType type,
                                                       std::vector<int64_t> shape) {
  int64_t elements = 1;
  for (int64_t d : shape) {
    if (d < 0) return Status::InvalidArgument(path + ": negative extent in the shape");
    elements *= d;
  }
  const std::string tmp = path + ".tmp";
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (file == nullptr) {
    return Status::IoError(tmp + ": cannot open for writing: " + std::strerror(errno));
  }
  std::unique_ptr<NpyWriter> writer(new NpyWriter(path, type, elements, file));
  const std::string header = Header(type, shape);
  if (std::fwrite(header.data(), 1, header.size(), file) != header.size()) {
    return Status::IoError(tmp + ": write failed: " + std::strerror(errno));
  }
  return writer;
}

NpyWriter::~NpyWriter() {
  if (file_ != nullptr) std::fclose(file_);
  if (!finished_) std::remove((path_ + ".tmp").c_str());
}

Status NpyWriter::Append(const void* data, size_t count) {
  if (file_ == nullptr) return Status::InvalidArgument(path_ + ": Append after Finish");
  if (static_cast<int64_t>(count) > elements_ - written_) {
    return Status::InvalidArgument(path_ + ": more elements than its shape holds (" +
                                   std::to_string(elements_) + ")");
  }
  if (count > 0 && std::fwrite(data, ElementSize(type_), count, file_) != count) {
    return Status::IoError(path_ + ".tmp: write failed: " + std::strerror(errno));
  }
  written_ += static_cast<int64_t>(count);
  return Status::OK();
}

Status NpyWriter::Finish() {
  if (file_ == nullptr) return Status::InvalidArgument(path_ + ": Finish twice");
  if (written_ != elements_) {
    return Status::InvalidArgument(path_ + ": " + std::to_string(written_) +
                                   " elements written, its shape holds " +
                                   std::to_string(elements_));
  }
  const bool flushed = std::fflush(file_) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed) return Status::IoError(path_ + ".tmp: write failed");
  if (std::rename((path_ + ".tmp").c_str(), path_.c_str()) != 0) {
    return Status::IoError(path_ + ": cannot rename into place: " + std::strerror(errno));
  }
  finished_ = true;
  return Status::OK();
}

Status WriteNpy(const std::string& path, NpyType type, const std::vector<int64_t>& shape,
                const void* data) {
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<NpyWriter> writer, NpyWriter::Create(path, type, shape));
  int64_t elements = 1;
  for (int64_t d : shape) elements *= d;
  MTPS_RETURN_IF_ERROR(writer->Append(data, static_cast<size_t>(elements)));
  return writer->Finish();
}

}  // namespace mtps
