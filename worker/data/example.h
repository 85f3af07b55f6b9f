// Batch and FeatureSchema: parsed examples in the layout the trainer consumes.
//
// Readers (worker/data/census_format.h, worker/data/csv_format.h) fill Batches; the
// embedding pooling (worker/nn/embedding_bag.h) and the models read them.
#ifndef MTPS_WORKER_DATA_EXAMPLE_H_
#define MTPS_WORKER_DATA_EXAMPLE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace mtps {

enum class Pooling { kSum, kMean };

// How a slot's weighted keys are combined into one embedding.
// One sparse input slot: a categorical column (always one key per example) or
// a multi-valued column (zero or more weighted keys, pooled).
struct SlotInfo {
  std::string name;
  Pooling pooling = Pooling::kSum;
};

// What every example of a data source holds, in order. Derived from the data
// config (and the CSV header), identical on every worker.
struct FeatureSchema {
  std::vector<SlotInfo> slots;
  std::vector<std::string> dense_names;
  std::vector<std::string> label_names;  // task names, DataConfig.labels order
};

// A batch of examples. Sparse features are CSR over (example, slot): the keys
// of example b, slot s are keys[offsets[b*num_slots+s] .. offsets[b*num_slots+s+1]).
// A plain value filled by one reader (ExampleReader::Next replaces it) and
// then read by the trainer on the same thread; no synchronisation. Its
// vectors keep their capacity across Clear, so a reused Batch stops
// allocating once it has seen the largest batch.
struct Batch {
  int num_examples = 0;
  int num_slots = 0;
  int num_dense = 0;
  int num_labels = 0;
  std::vector<uint64_t> keys;
  std::vector<float> weights;     // one per key; 1.0 for plain ids
  std::vector<uint32_t> offsets;  // num_examples * num_slots + 1 entries
  std::vector<float> dense;       // row-major num_examples x num_dense
  std::vector<float> labels;      // row-major num_examples x num_labels, 0 or 1

  void Clear() {
    num_examples = 0;
    keys.clear();
    weights.clear();
    offsets.assign(1, 0);
    dense.clear();
    labels.clear();
  }
};

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_EXAMPLE_H_
