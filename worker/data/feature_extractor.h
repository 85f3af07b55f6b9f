// Field parsing shared by the data readers: TrimField, ParseFiniteFloat,
// LabelRule (a label column's text to 0/1), and FeatureExtractor, which maps
// one row of column values to one example of a Batch as a DataConfig says
// (slots, dense features, labels). Reading the lines themselves:
// worker/data/line_reader.h.
//
// The format-specific parts (how a line splits into values, what the
// columns are called) live in worker/data/census_format.h and worker/data/csv_format.h.
#ifndef MTPS_WORKER_DATA_FEATURE_EXTRACTOR_H_
#define MTPS_WORKER_DATA_FEATURE_EXTRACTOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "proto/config.pb.h"
#include "worker/data/example.h"

namespace mtps {

// Strips spaces and tabs from both ends.
std::string_view TrimField(std::string_view s);

// Parses all of `text` as a finite float (a leading '+' is allowed); false if
// it is empty, not a number, has trailing characters or is not finite.
bool ParseFiniteFloat(std::string_view text, float* out);

// How one label column's text becomes 0 or 1 (a LabelSpec): 1 when the
// trimmed text is one of positive_values, else 0; with no positive_values the
// text must parse as a number and > 0.5 is 1. Immutable; thread-safe.
class LabelRule {
 public:
  explicit LabelRule(const config::LabelSpec& spec);
  // False (and *y untouched) if the label is numeric and `text` is not a number.
  bool Parse(std::string_view text, float* y) const;
  bool numeric() const { return positive_values_.empty(); }

 private:
  std::vector<std::string> positive_values_;  // trimmed
};

// Maps rows of named columns to examples. Built once per file from the
// config and the file's column names (header or fixed census names); holds
// only tables that are immutable after Create, so concurrent Appends to
// different batches are safe. Append allocates nothing once the batch
// vectors have grown.
//
// Slots: categorical_columns in config order, then multi_valued_columns, then
// (other_columns == OTHER_CATEGORICAL) every remaining column in file order
// that is not a label, dense or ignored column. Key = FeatureKey(column,
// trimmed value). Dense columns parse as float, then dense_transform. Labels
// per LabelSpec.
class FeatureExtractor {
 public:
  // `columns` are the file's column names in order; `source` (the path) is
  // used in error messages. A column the config names but `columns` lacks,
  // or a column given two roles, is InvalidArgument naming column and source.
  static StatusOr<FeatureExtractor> Create(const config::DataConfig& config,
                                           const std::vector<std::string>& columns,
                                           const std::string& source);

  const FeatureSchema& schema() const { return schema_; }
  size_t num_columns() const { return num_columns_; }

  // Appends the example of one row (values in column order, already split;
  // fields.size() must equal num_columns()) to *batch, whose num_slots,
  // num_dense and num_labels must match the schema. On error (a bad number
  // or label, naming source:line, the column and the text) *batch is left as
  // it was.
  Status Append(const std::vector<std::string_view>& fields, int64_t line_number,
                Batch* batch) const;

  // Sets up an empty *batch for this schema (Clear() plus the widths).
  void ResetBatch(Batch* batch) const;

 private:
  struct Slot {
    int column = 0;
    uint64_t key_seed = 0;  // hash state after (column name, 0x1f); see common/base/hash.h
    char separator = 0;     // multi-valued columns only; 0 for categorical
  };
  struct Label {
    int column = 0;
    LabelRule rule;
  };

  Status Error(int64_t line_number, int column, std::string_view text,
               const std::string& why) const;

  std::string source_;
  size_t num_columns_ = 0;
  std::vector<std::string> column_names_;
  std::vector<Slot> slots_;
  std::vector<int> dense_columns_;
  bool log1p_ = false;
  std::vector<Label> labels_;
  FeatureSchema schema_;
};

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_FEATURE_EXTRACTOR_H_
