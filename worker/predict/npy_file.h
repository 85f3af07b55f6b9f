// NpyWriter: writes one NumPy .npy file (format version 1.0), the array
// format of a model export (worker/predict/model_export.h), so that any
// NumPy (np.load) or a few lines of code in another language reads it.
//
// The format: the 6 bytes "\x93NUMPY", the version bytes 1 and 0, a
// little-endian uint16 header length, then that many bytes of ASCII header
// "{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }" padded with
// spaces and ending in '\n' so that the data starts at a multiple of 64
// bytes; then the values, C order (row-major), little-endian.
//
// Values are streamed: Append as often as needed, then Finish, which checks
// that exactly the shape's element count was written and renames the file
// into place (it is written as PATH.tmp until then, so an interrupted export
// leaves no short array under the real name). One thread owns a writer.
#ifndef MTPS_WORKER_PREDICT_NPY_FILE_H_
#define MTPS_WORKER_PREDICT_NPY_FILE_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace mtps {

enum class NpyType { kFloat32, kInt64, kUint64 };

class NpyWriter {
 public:
  // Opens PATH.tmp and writes the header of an array of `type` and `shape`
  // (every extent >= 0). IoError naming the file when it cannot.
  static StatusOr<std::unique_ptr<NpyWriter>> Create(const std::string& path, NpyType type,
                                                     std::vector<int64_t> shape);
  // Closes and removes PATH.tmp unless Finish succeeded.
  ~NpyWriter();
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;

  // Appends `count` elements of the writer's type from `data`.
  // InvalidArgument when that would exceed the shape; IoError on a write
  // error.
  Status Append(const void* data, size_t count);
  // Checks the element count, flushes, closes, renames PATH.tmp to PATH.
  Status Finish();

 private:
  NpyWriter(std::string path, NpyType type, int64_t elements, std::FILE* file);

  const std::string path_;
  const NpyType type_;
  const int64_t elements_;  // the shape's element count
  int64_t written_ = 0;
  std::FILE* file_;  // nullptr after Finish
  bool finished_ = false;
};

// The whole array at once: Create, Append(data, every element), Finish.
Status WriteNpy(const std::string& path, NpyType type, const std::vector<int64_t>& shape,
                const void* data);

}  // namespace mtps

#endif  // MTPS_WORKER_PREDICT_NPY_FILE_H_
