// Text input shared by the data readers: LineReader reads lines of a plain
// or gzip file, LineExampleReader walks the data lines of one file for the
// readers that make one example per line, FeatureExtractor maps one row of
// column values to one example of a Batch as a DataConfig says (slots, dense
// features, labels).
//
// The format-specific parts (how a line splits into values, what the
// columns are called) live in worker/census_reader.h and worker/csv_reader.h.
#ifndef MTPS_WORKER_FEATURE_EXTRACTOR_H_
#define MTPS_WORKER_FEATURE_EXTRACTOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "proto/config.pb.h"
#include "worker/example.h"
#include "worker/reader.h"

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

// Reads a text file line by line, plain or gzip (detected by content, via
// zlib's gzopen). Owns its file handle. Not thread-safe.
class LineReader {
 public:
  // NotFound if `path` does not exist, IoError if it cannot be opened.
  static StatusOr<std::unique_ptr<LineReader>> Open(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Reads the next line without its "\n" or "\r\n" into *line (valid until
  // the next call). Sets *eof and leaves *line empty at end of file. A read
  // or decompression error is Corruption/IoError naming path:line.
  Status ReadLine(std::string_view* line, bool* eof);
  // Starts over from the first line.
  Status Rewind();

  const std::string& path() const { return path_; }
  // 1-based number of the line last returned (0 before the first).
  int64_t line_number() const { return line_number_; }
  // "path:line: ", the prefix of a message about the line last returned.
  std::string Location() const;

 private:
  LineReader(std::string path, void* file) : path_(std::move(path)), file_(file) {}

  const std::string path_;
  void* file_;  // gzFile; void* keeps zlib.h out of this header.
  std::string buffer_;
  int64_t line_number_ = 0;
};

// InvalidArgument unless max_examples > 0 (ExampleReader::Next's argument).
Status CheckMaxExamples(int max_examples);

// Base of the readers that make one example of one data line of one file
// (census, CSV, FIELD_ID; ALICCP_RAW's skeleton file). Next skips blank lines
// (they are not data lines), numbers the data lines from 0 and hands every
// one to ReadDataLine with whether the LineSelector keeps it, until the batch
// is full or the file ends. Owns the LineReader; not thread-safe.
class LineExampleReader : public ExampleReader {
 public:
  Status Next(int max_examples, Batch* batch) final;
  // Rewinds the file and the line count; readers with more state extend it.
  Status Rewind() override;

 protected:
  LineExampleReader(std::unique_ptr<LineReader> lines, const LineSelector& selector)
      : lines_(std::move(lines)), selector_(selector) {}

  LineReader& lines() const { return *lines_; }

  // Sets up an empty *batch for the reader's schema.
  virtual void ResetBatch(Batch* batch) const = 0;
  // Called for every data line in file order; appends the line's example to
  // *batch when `keep` (leaving *batch as it was on error).
  virtual Status ReadDataLine(std::string_view line, bool keep, Batch* batch) = 0;

 private:
  const std::unique_ptr<LineReader> lines_;
  const LineSelector selector_;
  int64_t data_index_ = 0;  // 0-based index of the next data line
  bool eof_ = false;
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
    uint64_t key_seed = 0;  // hash state after (column name, 0x1f); see common/hash.h
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

#endif  // MTPS_WORKER_FEATURE_EXTRACTOR_H_
