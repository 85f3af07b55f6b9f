// LineReader (plain/gzip lines via zlib) and LineExampleReader. See
// worker/data/line_reader.h.
#include "worker/data/line_reader.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "worker/data/feature_extractor.h"

namespace mtps {
namespace {

constexpr int kGzBufferBytes = 256 * 1024;
constexpr int kChunkBytes = 64 * 1024;

gzFile AsGz(void* file) { return static_cast<gzFile>(file); }

}  // namespace

// ---------------------------------------------------------------------------
// LineReader
// ---------------------------------------------------------------------------

StatusOr<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::NotFound(path + ": no such file");
  if (std::filesystem::is_directory(path, ec)) {
    return Status::IoError(path + ": is a directory, expected a data file");
  }
  errno = 0;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    return Status::IoError(
        path + ": cannot open: " + (errno != 0 ? std::strerror(errno) : "out of memory"));
  }
  gzbuffer(file, kGzBufferBytes);
  return std::unique_ptr<LineReader>(new LineReader(path, file));
}

LineReader::~LineReader() { gzclose(AsGz(file_)); }

std::string LineReader::Location() const {
  return path_ + ":" + std::to_string(line_number_) + ": ";
}

Status LineReader::ReadLine(std::string_view* line, bool* eof) {
  *line = std::string_view();
  *eof = false;
  buffer_.clear();
  if (buffer_.capacity() < kChunkBytes) buffer_.reserve(kChunkBytes);
  char chunk[kChunkBytes];
  bool got_any = false;
  while (true) {
    if (gzgets(AsGz(file_), chunk, kChunkBytes) == nullptr) {
      int err = Z_OK;
      const char* message = gzerror(AsGz(file_), &err);
      if (err == Z_ERRNO) {
        return Status::IoError(path_ + ":" + std::to_string(line_number_ + 1) +
                               ": read failed: " + std::strerror(errno));
      }
      if (err != Z_OK) {
        return Status::Corruption(path_ + ":" + std::to_string(line_number_ + 1) +
                                  ": gzip data is damaged: " + message);
      }
      break;  // End of file.
    }
    got_any = true;
    buffer_.append(chunk, std::strlen(chunk));
    if (!buffer_.empty() && buffer_.back() == '\n') break;
  }
  if (!got_any) {
    *eof = true;
    return Status::OK();
  }
  ++line_number_;
  std::string_view view(buffer_);
  if (!view.empty() && view.back() == '\n') view.remove_suffix(1);
  if (!view.empty() && view.back() == '\r') view.remove_suffix(1);
  *line = view;
  return Status::OK();
}

Status LineReader::Rewind() {
  if (gzrewind(AsGz(file_)) != 0) {
    int err = Z_OK;
    return Status::IoError(path_ + ": cannot rewind: " + gzerror(AsGz(file_), &err));
  }
  line_number_ = 0;
  return Status::OK();
}

// ---------------------------------------------------------------------------
// LineExampleReader
// ---------------------------------------------------------------------------

Status CheckMaxExamples(int max_examples) {
  if (max_examples <= 0) {
    return Status::InvalidArgument("ExampleReader::Next: max_examples must be > 0, got " +
                                   std::to_string(max_examples));
  }
  return Status::OK();
}

Status LineExampleReader::Next(int max_examples, Batch* batch) {
  MTPS_RETURN_IF_ERROR(CheckMaxExamples(max_examples));
  ResetBatch(batch);
  while (batch->num_examples < max_examples && !eof_) {
    std::string_view line;
    MTPS_RETURN_IF_ERROR(lines_->ReadLine(&line, &eof_));
    if (eof_) break;
    if (TrimField(line).empty()) continue;
    MTPS_RETURN_IF_ERROR(ReadDataLine(line, selector_.Keep(data_index_++), batch));
  }
  return Status::OK();
}

Status LineExampleReader::Rewind() {
  MTPS_RETURN_IF_ERROR(lines_->Rewind());
  data_index_ = 0;
  eof_ = false;
  bad_this_pass_ = 0;
  return Status::OK();
}

Status LineExampleReader::SkipBadLine(bool keep, const Status& error) {
  if (!keep) return Status::OK();
  if (++bad_this_pass_ <= bad_counted_) return Status::OK();  // counted in an earlier pass
  MTPS_RETURN_IF_ERROR(budget_->Skip(error));
  bad_counted_ = bad_this_pass_;
  return Status::OK();
}

}  // namespace mtps
