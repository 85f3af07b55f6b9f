// Reading data files line by line, shared by every data reader: LineReader
// reads the lines of a plain or gzip file; LineExampleReader is the base of
// the readers that make one example of one data line (census, CSV, FIELD_ID,
// ALICCP_RAW's skeleton file), walking the data lines, asking the
// LineSelector which to keep and the BadLineBudget whether a malformed one
// may be skipped.
#ifndef MTPS_WORKER_DATA_LINE_READER_H_
#define MTPS_WORKER_DATA_LINE_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "worker/data/bad_line_budget.h"
#include "worker/data/example.h"
#include "worker/data/example_reader.h"

namespace mtps {

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
// is full or the file ends. A malformed line is still a data line (it keeps
// its index, so the parts and the holdout do not move); the reader passes it
// to SkipBadLine. Owns the LineReader and shares the budget; not
// thread-safe.
class LineExampleReader : public ExampleReader {
 public:
  Status Next(int max_examples, Batch* batch) final;
  // Rewinds the file and the line count; readers with more state extend it.
  Status Rewind() override;

 protected:
  // `budget` is never null.
  LineExampleReader(std::unique_ptr<LineReader> lines, const LineSelector& selector,
                    std::shared_ptr<BadLineBudget> budget)
      : lines_(std::move(lines)), selector_(selector), budget_(std::move(budget)) {}

  LineReader& lines() const { return *lines_; }

  // Sets up an empty *batch for the reader's schema.
  virtual void ResetBatch(Batch* batch) const = 0;
  // Called for every data line in file order; appends the line's example to
  // *batch when `keep` (leaving *batch as it was on error). A malformed line
  // goes to SkipBadLine.
  virtual Status ReadDataLine(std::string_view line, bool keep, Batch* batch) = 0;

  // For ReadDataLine: `error` (an InvalidArgument naming file:line) makes the
  // current data line, or a line of another file it depends on (Ali-CCP's
  // common line), malformed; `keep` says whether this reader is the one that
  // answers for it. OK means skip it and go on. A line this reader keeps goes
  // to the budget (BadLineBudget::Skip, its error beyond the budget). A line
  // it does not keep is skipped uncounted: the reader that keeps it counts
  // it. After a Rewind the same file gives the same malformed lines again:
  // the first ones of a pass, up to as many as the most any earlier pass
  // counted, are skipped uncounted and unlogged.
  Status SkipBadLine(bool keep, const Status& error);

 private:
  const std::unique_ptr<LineReader> lines_;
  const LineSelector selector_;
  const std::shared_ptr<BadLineBudget> budget_;
  int64_t data_index_ = 0;  // 0-based index of the next data line
  bool eof_ = false;
  int64_t bad_this_pass_ = 0;  // malformed kept lines since the last Rewind
  int64_t bad_counted_ = 0;    // the most of any pass: those the budget has
};

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_LINE_READER_H_
