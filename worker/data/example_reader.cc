// ExampleReader::Open: picks the format's reader from the DataConfig and the
// files from the split, selects lines (part, holdout side), and wraps
// training readers in the shuffling reader. The readers themselves:
// worker/data/text_reader.h (census, CSV), aliccp_reader.h, field_id_reader.h,
// shuffling_reader.h. See worker/data/example_reader.h.
#include "worker/data/example_reader.h"

#include <cmath>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/hash.h"
#include "common/config/config_check.h"
#include "worker/data/aliccp_reader.h"
#include "worker/data/data_config.h"
#include "worker/data/field_id_reader.h"
#include "worker/data/shuffling_reader.h"
#include "worker/data/text_reader.h"

namespace mtps {

bool IsHeldOut(uint64_t line_index, double fraction, uint64_t seed) {
  // Top 53 bits of a mix of (seed, index) as a uniform double in [0, 1).
  const uint64_t h = Mix64(Mix64(seed) ^ line_index);
  return static_cast<double>(h >> 11) * 0x1.0p-53 < fraction;
}

LineSelector::LineSelector(int part, int num_parts, double holdout_fraction, uint64_t holdout_seed,
                           DataSplit split)
    : part_(part),
      num_parts_(num_parts),
      holdout_fraction_(holdout_fraction),
      holdout_seed_(holdout_seed),
      split_(split) {
  CHECK(num_parts >= 1 && part >= 0 && part < num_parts) << part << " of " << num_parts;
}

namespace {

// CheckDataFormat (worker/data/data_config.h) as a Status.
Status CheckFormat(const config::DataConfig& config) {
  ConfigProblems problems;
  CheckDataFormat(config, &problems);
  return problems.ToStatus();
}

// Opens the reader of the format; `common_path` is for ALICCP_RAW only;
// `budget` null: one of data.max_bad_lines of the reader's own.
StatusOr<std::unique_ptr<ExampleReader>> OpenFormat(const config::DataConfig& config,
                                                    const std::string& path,
                                                    const std::string& common_path,
                                                    const LineSelector& selector,
                                                    std::shared_ptr<BadLineBudget> budget) {
  MTPS_RETURN_IF_ERROR(CheckFormat(config));
  {
    ConfigProblems problems;
    CheckDataErrorBudget(config, &problems);
    MTPS_RETURN_IF_ERROR(problems.ToStatus());
  }
  if (budget == nullptr) budget = std::make_shared<BadLineBudget>(config.max_bad_lines());
  switch (config.format()) {
    case config::DataConfig::ALICCP_RAW:
      return OpenAliccpReader(config, path, common_path, selector, std::move(budget));
    case config::DataConfig::FIELD_ID:
      return OpenFieldIdReader(config, path, selector, std::move(budget));
    default:
      return OpenTextReader(config, path, selector, std::move(budget));
  }
}

Status CheckPart(const std::string& what, int part, int num_parts) {
  if (num_parts < 1 || part < 0 || part >= num_parts) {
    return Status::InvalidArgument("ExampleReader::Open(" + what + "): part " +
                                   std::to_string(part) + " of " + std::to_string(num_parts) +
                                   " is out of range");
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::unique_ptr<ExampleReader>> ExampleReader::Open(
    const config::DataConfig& config, DataSplit split, int part, int num_parts,
    std::shared_ptr<BadLineBudget> budget) {
  const char* side = split == DataSplit::kTrain ? "train" : "test";
  MTPS_RETURN_IF_ERROR(CheckPart(side, part, num_parts));
  ConfigProblems problems;
  CheckDataSampling(config, &problems);
  CheckDataFiles(config, split, &problems);
  MTPS_RETURN_IF_ERROR(problems.ToStatus());
  // With a holdout the test side is the held-out part of train_path.
  const double holdout = config.holdout_fraction();
  std::string path = config.train_path();
  std::string common_path = config.train_common_path();
  if (split == DataSplit::kTest && !(holdout > 0)) {
    path = config.test_path();
    common_path = config.test_common_path();
  }
  const LineSelector selector(part, num_parts, holdout, config.holdout_seed(), split);
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<ExampleReader> reader,
                        OpenFormat(config, path, common_path, selector, std::move(budget)));
  if (split == DataSplit::kTrain && config.shuffle_buffer() > 0) {
    // Each worker shuffles its share differently; StartEpoch mixes in the epoch.
    const uint64_t seed = Mix64(Mix64(config.shuffle_seed()) ^ static_cast<uint64_t>(part));
    reader = NewShufflingReader(std::move(reader), config.shuffle_buffer(), seed);
  }
  return reader;
}

StatusOr<std::unique_ptr<ExampleReader>> ExampleReader::Open(
    const config::DataConfig& config, const std::string& path, int part, int num_parts,
    std::shared_ptr<BadLineBudget> budget) {
  MTPS_RETURN_IF_ERROR(CheckPart(path, part, num_parts));
  std::string common_path;
  if (config.format() == config::DataConfig::ALICCP_RAW) {
    if (path == config.train_path()) {
      common_path = config.train_common_path();
    } else if (path == config.test_path()) {
      common_path = config.test_common_path();
    } else {
      return Status::InvalidArgument(
          "ExampleReader::Open(" + path +
          "): ALICCP_RAW needs its common_features file, known only for data.train_path and "
          "data.test_path");
    }
  }
  return OpenFormat(config, path, common_path, LineSelector(part, num_parts), std::move(budget));
}

StatusOr<FeatureSchema> ReadSchema(const config::DataConfig& config, const std::string& path) {
  MTPS_RETURN_IF_ERROR(CheckFormat(config));
  if (config.format() == config::DataConfig::ALICCP_RAW) {
    MTPS_ASSIGN_OR_RETURN(FieldSlots slots,
                          FieldSlots::Create(config, AliccpLabelColumns(), "ALICCP_RAW"));
    return slots.schema();
  }
  if (config.format() == config::DataConfig::FIELD_ID) {
    MTPS_ASSIGN_OR_RETURN(FieldSlots slots,
                          FieldSlots::Create(config, FieldIdLabelColumns(), "FIELD_ID"));
    return slots.schema();
  }
  return ReadTextSchema(config, path);
}

StatusOr<FeatureSchema> ReadSchema(const config::DataConfig& config) {
  return ReadSchema(config, config.train_path());
}

}  // namespace mtps
