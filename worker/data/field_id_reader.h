// The field-id data formats: features are (field id, feature id) pairs rather
// than columns. FieldSlots maps field ids to slots (shared with the raw
// Ali-CCP reader, worker/data/aliccp_reader.h); OpenFieldIdReader reads
// DataConfig.format FIELD_ID, PaddleRec's multi-hot lines
//
//   sample_id,click,purchase,field:id,field:id,...
//
// where a field may repeat (all its ids go into its slot, weight 1). The label
// columns are "click" and "purchase" (LabelSpec.column, FieldIdLabelColumns);
// dense columns do not exist in this format (CheckFieldIdData).
#ifndef MTPS_WORKER_DATA_FIELD_ID_READER_H_
#define MTPS_WORKER_DATA_FIELD_ID_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/base/status.h"
#include "common/config/config_check.h"
#include "proto/config.pb.h"
#include "worker/data/bad_line_budget.h"
#include "worker/data/example.h"
#include "worker/data/example_reader.h"
#include "worker/data/feature_extractor.h"
#include "worker/data/line_reader.h"

namespace mtps {

// Slots and labels of a field-id format. Slots: data.categorical_columns then
// data.multi_valued_columns (their `name`), each a field id ("101",
// "109_14"); a categorical field pools by sum, a multi-valued one by its
// pooling. Every feature of a slot's field in a sample goes into the slot,
// keyed FeatureKey(field_id, feature_id). Fields not named are ignored.
// Immutable after Create; thread-safe.
class FieldSlots {
 public:
  // Most input fields (slots) of a field-id format.
  static constexpr int kMaxSlots = 128;

  // `label_columns` are the format's label column names, e.g. {"click",
  // "purchase"}, and `format` its name for messages. The config must pass
  // CheckDataLabels, CheckColumnRoles (worker/data/data_config.h) and
  // CheckFieldIdData with these label columns; else InvalidArgument naming
  // every field that does not.
  static StatusOr<FieldSlots> Create(const config::DataConfig& config,
                                     const std::vector<std::string>& label_columns,
                                     const std::string& format);

  const FeatureSchema& schema() const { return schema_; }
  int num_slots() const { return static_cast<int>(key_seeds_.size()); }
  int num_labels() const { return static_cast<int>(labels_.size()); }

  // The slot of `field_id`, or -1 if the field is not an input.
  int SlotOf(std::string_view field_id) const {
    uint64_t packed = 0;
    if (Pack(field_id, &packed)) {
      for (size_t i = Bucket(packed);; i = (i + 1) & kTableMask) {
        if (table_[i].packed == packed) return table_[i].slot;
        if (table_[i].packed == 0) return -1;
      }
    }
    if (long_names_.empty()) return -1;
    auto it = long_names_.find(std::string(field_id));
    return it == long_names_.end() ? -1 : it->second;
  }
  // FeatureKey(name of `slot`, feature_id), computed from a cached prefix.
  uint64_t Key(int slot, std::string_view feature_id) const;

  // Label i (data.labels order) is read from label column label_column(i)
  // (an index into Create's label_columns) by rule(i).
  int label_column(int i) const { return labels_[i].column; }
  const LabelRule& rule(int i) const { return labels_[i].rule; }

  // Parses a sample's labels into *labels (data.labels order) from its label
  // column values (values[c]: column c of Create's label_columns). A bad one
  // is InvalidArgument at lines.Location() naming the column and the text
  // (as quote(text) gives it).
  Status ParseLabels(const std::string_view* values, const LineReader& lines,
                     std::string (*quote)(std::string_view), std::vector<float>* labels) const;

  // Sets up an empty *batch for this schema.
  void ResetBatch(Batch* batch) const;

 private:
  struct Entry {
    uint64_t packed = 0;  // 0: empty
    int slot = -1;
  };
  struct Label {
    int column = 0;
    LabelRule rule;
  };
  static constexpr size_t kTableSize = 2 * kMaxSlots;  // at least twice the slot count
  static constexpr size_t kTableMask = kTableSize - 1;

  // Multiplicative hashing: the top bits depend on every byte (ids share
  // their first bytes, e.g. "121", "122").
  static size_t Bucket(uint64_t packed) {
    return static_cast<size_t>((packed * 0x9e3779b97f4a7c15ULL) >> 56) & kTableMask;
  }

  // Field ids of up to 7 bytes pack into one word (bytes, then the length in
  // the top byte; the empty id packs to 0, which matches no entry).
  static bool Pack(std::string_view id, uint64_t* out) {
    if (id.size() > 7) return false;
    uint64_t v = static_cast<uint64_t>(id.size()) << 56;
    for (size_t i = 0; i < id.size(); ++i) {
      v |= static_cast<uint64_t>(static_cast<unsigned char>(id[i])) << (8 * i);
    }
    *out = v;
    return id.size() > 0;
  }

  FeatureSchema schema_;
  std::vector<uint64_t> key_seeds_;                  // per slot: hash state after (field id, 0x1f)
  std::vector<Entry> table_;                         // open addressing over packed short ids
  std::unordered_map<std::string, int> long_names_;  // ids longer than 7 bytes
  std::vector<Label> labels_;
  std::vector<std::string> label_columns_;  // Create's label_columns
};

// Collects the features of one sample as (slot, key, weight) and orders them
// by slot (stably, so file order within a slot), for CSR Batches. Reuses its
// buffers: no allocation once they have grown. Not thread-safe.
class SlotGrouper {
 public:
  // Empties the grouper for samples with `num_slots` slots.
  void Reset(int num_slots) {
    num_slots_ = num_slots;
    slots_.clear();
    keys_.clear();
    weights_.clear();
  }
  void Add(int slot, uint64_t key, float weight) {
    slots_.push_back(slot);
    keys_.push_back(key);
    weights_.push_back(weight);
  }
  // Orders what was added by slot; then Begin/End/keys/weights are valid
  // until the next Reset or Add.
  void Group();
  size_t Begin(int slot) const { return starts_[slot]; }
  size_t End(int slot) const { return starts_[slot + 1]; }
  const uint64_t* keys() const { return grouped_keys_.data(); }
  const float* weights() const { return grouped_weights_.data(); }
  size_t size() const { return keys_.size(); }

  // Appends one example to *batch, whose num_slots must be this grouper's:
  // for every slot, the features added here (in the order added), then those
  // of `tail` in that slot (a grouper with the same num_slots on which Group
  // was called; nullptr for none), then the slot's end offset. Does not need
  // Group() on this grouper. Grows each batch vector once per example (not
  // once per slot) and writes the features straight to their place.
  void AppendExample(const SlotGrouper* tail, Batch* batch);

 private:
  int num_slots_ = 0;
  std::vector<int> slots_;
  std::vector<uint64_t> keys_;
  std::vector<float> weights_;
  std::vector<size_t> starts_;  // num_slots + 1
  std::vector<size_t> fill_;
  std::vector<uint64_t> grouped_keys_;
  std::vector<float> grouped_weights_;
};

// The FIELD_ID label columns, in line order (columns 2 and 3).
inline const std::vector<std::string>& FieldIdLabelColumns() {
  static const std::vector<std::string> kColumns = {"click", "purchase"};
  return kColumns;
}

// The rules of the field-id formats, whose features are (field id, feature
// id) pairs: every data.labels[].column (when set) is one of `label_columns`
// (the format's AliccpLabelColumns() or FieldIdLabelColumns()); there are
// no dense columns; other_columns is not OTHER_CATEGORICAL (no columns to
// enumerate); at most FieldSlots::kMaxSlots input fields. `format` names the
// format in messages. Part of CheckDataConfig (worker/data/data_config.h).
void CheckFieldIdData(const config::DataConfig& data, const std::vector<std::string>& label_columns,
                      const std::string& format, ConfigProblems* problems);

// Reads `path` (plain or gzip) in the FIELD_ID format, keeping the data lines
// `selector` keeps. A line with fewer than 3 values, a token without ':' or
// with an empty field or id, or a bad label is InvalidArgument naming
// path:line (and the token's 1-based position), or is skipped within
// `budget` (not null).
StatusOr<std::unique_ptr<ExampleReader>> OpenFieldIdReader(const config::DataConfig& config,
                                                           const std::string& path,
                                                           const LineSelector& selector,
                                                           std::shared_ptr<BadLineBudget> budget);

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_FIELD_ID_READER_H_
