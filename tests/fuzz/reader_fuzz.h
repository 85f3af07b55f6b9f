// What the data-reader fuzz targets share: reading every batch of an opened
// ExampleReader twice (the second time after Rewind) and checking each
// batch's layout (worker/data/example.h) against the reader's schema.
#ifndef MTPS_TESTS_FUZZ_READER_FUZZ_H_
#define MTPS_TESTS_FUZZ_READER_FUZZ_H_

#include <cstdint>
#include <memory>
#include <string>

#include "tests/fuzz/fuzz_support.h"

#include "common/base/status.h"
#include "common/config/config.h"
#include "proto/config.pb.h"
#include "worker/data/example.h"
#include "worker/data/example_reader.h"

namespace mtps {
namespace fuzz {

// The data section of a shipped config (configs/NAME, under the source dir
// `source_dir`), for a fuzz target's static setup; shuffling off, so a
// second read must repeat the first.
inline config::DataConfig ShippedDataConfig(const std::string& source_dir,
                                            const std::string& name) {
  auto loaded = LoadConfig(source_dir + "/configs/" + name, {});
  if (!loaded.ok()) Fail("cannot load configs/" + name + ": " + loaded.status().ToString());
  config::DataConfig data = loaded->data();
  data.set_shuffle_buffer(0);
  data.set_holdout_fraction(0);
  data.clear_test_path();
  data.clear_test_common_path();
  return data;
}

// Fails the run unless `batch` is laid out as example.h says and fits
// `schema`; labels are 0 or 1.
inline void CheckBatch(const Batch& batch, const FeatureSchema& schema) {
  const size_t n = static_cast<size_t>(batch.num_examples);
  if (batch.num_slots != static_cast<int>(schema.slots.size()) ||
      batch.num_dense != static_cast<int>(schema.dense_names.size()) ||
      batch.num_labels != static_cast<int>(schema.label_names.size())) {
    Fail("a batch's slot, dense or label count differs from the schema");
  }
  const size_t cells = n * static_cast<size_t>(batch.num_slots);
  if (batch.offsets.size() != cells + 1 || batch.offsets[0] != 0 ||
      batch.offsets[cells] != batch.keys.size() || batch.weights.size() != batch.keys.size()) {
    Fail("a batch's offsets do not cover its keys");
  }
  for (size_t i = 0; i < cells; ++i) {
    if (batch.offsets[i] > batch.offsets[i + 1]) Fail("a batch's offsets go backwards");
  }
  if (batch.dense.size() != n * static_cast<size_t>(batch.num_dense) ||
      batch.labels.size() != n * static_cast<size_t>(batch.num_labels)) {
    Fail("a batch's dense or label array has the wrong size");
  }
  for (float label : batch.labels) {
    if (label != 0.0f && label != 1.0f) Fail("a label other than 0 or 1: " + std::to_string(label));
  }
}

// Reads every batch (at most `max_examples` examples, so a long input stays
// fast); returns the examples read, or the error that ended the read.
inline StatusOr<int64_t> ReadAll(ExampleReader* reader, int64_t max_examples = 100000) {
  Batch batch;
  int64_t total = 0;
  for (;;) {
    MTPS_RETURN_IF_ERROR(reader->Next(7, &batch));
    if (batch.num_examples == 0) return total;
    CheckBatch(batch, reader->schema());
    total += batch.num_examples;
    if (total > max_examples) return total;
  }
}

// Opens `config` (train side, part 0 of 1: every line), reads it all, and
// if that worked reads it again after Rewind, which must give the same
// number of examples (shuffling must be off). Open and read errors are
// fine (that is what hostile input gets), crashes and broken batches not;
// an error must not be kOk-coded nonsense either (it says why).
inline void OpenAndReadTwice(const config::DataConfig& config) {
  auto reader = ExampleReader::Open(config, DataSplit::kTrain, 0, 1);
  if (!reader.ok()) {
    if (reader.status().message().empty()) Fail("an Open error without a message");
    return;
  }
  StatusOr<int64_t> first = ReadAll(reader->get());
  if (!first.ok()) {
    if (first.status().message().empty()) Fail("a read error without a message");
    return;
  }
  Status rewound = (*reader)->Rewind();
  if (!rewound.ok()) Fail("Rewind after a clean read: " + rewound.ToString());
  StatusOr<int64_t> second = ReadAll(reader->get());
  if (!second.ok())
    Fail("the second read failed where the first worked: " + second.status().ToString());
  if (*first != *second) {
    Fail("the second read gave " + std::to_string(*second) + " examples, the first " +
         std::to_string(*first));
  }
}

}  // namespace fuzz
}  // namespace mtps

#endif  // MTPS_TESTS_FUZZ_READER_FUZZ_H_
