// The raw Ali-CCP release (DataConfig.format ALICCP_RAW): a sample_skeleton
// file joined with a common_features file on common_feature_index.
//
//   skeleton: sample_id,click,conversion,common_feature_index,feature_count,feature_list
//   common:   common_feature_index,feature_count,feature_list
//
// A feature_list is features separated by byte 0x01, each
// `field_id 0x02 feature_id 0x03 value`; value is 1.0 for plain ids and a
// count or weight for the *_14 history fields and the cross fields. A
// sample's features are those of its skeleton line plus those of its common
// line; fields are slots as in FieldSlots (worker/data/field_id_reader.h), each
// key weighted by its value (skeleton features first, then common ones, each
// in file order). Label columns: "click" and "conversion".
//
// The join is a streamed merge: both files list common_feature_index values
// in the same order (the skeleton lines of one index are contiguous, the
// common file has one line per index), so the reader keeps one common line
// at a time and never loads the common file. Common lines no skeleton line
// refers to are skipped. Every reader streams the whole common file in step
// with the whole skeleton file, whichever skeleton lines (part, holdout side)
// it keeps; features are parsed only for kept lines (and the common lines
// they use).
//
// Errors (InvalidArgument, naming file:line): a line with too few values; a
// skeleton index that is not next in the common file (missing, or the files
// are in different orders; names both files and lines); a feature_count that
// differs from the number of features; a feature without 0x02 or 0x03, with
// an empty field or feature id, or with a value that is not a finite number;
// a bad label.
//
// Within the data error budget (worker/data/bad_line_budget.h) a malformed
// line of either file is skipped, except a skeleton index that is not next
// in the common file: that always fails, since a garbled index cannot be
// told from files in different orders, and looking for it has read the
// common file to its end. A malformed skeleton line is counted by the reader
// that keeps it. A malformed common line is counted once, by the reader that
// keeps the skeleton line whose join reached it (the first sample of its
// index, or the sample whose search passed it), and the samples of its index
// are dropped with it, uncounted (they would lack its features).
#ifndef MTPS_WORKER_DATA_ALICCP_READER_H_
#define MTPS_WORKER_DATA_ALICCP_READER_H_

#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/config.pb.h"
#include "worker/data/bad_line_budget.h"
#include "worker/data/example_reader.h"

namespace mtps {

// The ALICCP_RAW label columns, in skeleton line order (columns 2 and 3).
inline const std::vector<std::string>& AliccpLabelColumns() {
  static const std::vector<std::string> kColumns = {"click", "conversion"};
  return kColumns;
}

// Reads `skeleton_path` joined with `common_path` (each plain or gzip),
// keeping the skeleton data lines `selector` keeps, skipping malformed lines
// within `budget` (not null).
StatusOr<std::unique_ptr<ExampleReader>> OpenAliccpReader(const config::DataConfig& config,
                                                          const std::string& skeleton_path,
                                                          const std::string& common_path,
                                                          const LineSelector& selector,
                                                          std::shared_ptr<BadLineBudget> budget);

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_ALICCP_READER_H_
