// The data section's rules (see worker/data/data_config.h).
#include "worker/data/data_config.h"

#include <set>
#include <sstream>
#include <string>

#include "worker/data/aliccp_reader.h"
#include "worker/data/field_id_reader.h"

namespace mtps {
namespace {

bool IsFieldIdFormat(config::DataConfig::Format format) {
  return format == config::DataConfig::ALICCP_RAW || format == config::DataConfig::FIELD_ID;
}

}  // namespace

void CheckDataFormat(const config::DataConfig& data, ConfigProblems* p) {
  if (data.format() == config::DataConfig::FORMAT_UNSPECIFIED ||
      !config::DataConfig::Format_IsValid(data.format())) {
    p->Add("data.format", "must be set (CENSUS_RAW, CSV, ALICCP_RAW or FIELD_ID)");
  }
  if (data.delimiter().size() != 1) {
    p->Add("data.delimiter", "must be one character (got '" + data.delimiter() + "')");
  }
}

void CheckDataSampling(const config::DataConfig& data, ConfigProblems* p) {
  if (!(data.holdout_fraction() >= 0 && data.holdout_fraction() < 1)) {
    std::ostringstream os;
    os << "must be in [0, 1) (0: no holdout), got " << data.holdout_fraction();
    p->Add("data.holdout_fraction", os.str());
  }
  p->NonNegative("data.shuffle_buffer", data.shuffle_buffer());
}

void CheckDataErrorBudget(const config::DataConfig& data, ConfigProblems* p) {
  p->NonNegative("data.max_bad_lines", data.max_bad_lines());
}

void CheckDataFiles(const config::DataConfig& data, DataSplit split, ConfigProblems* p) {
  const bool aliccp = data.format() == config::DataConfig::ALICCP_RAW;
  if (split == DataSplit::kTrain) {
    if (data.train_path().empty()) p->Add("data.train_path", "must be set");
    if (aliccp && data.train_common_path().empty()) {
      p->Add("data.train_common_path", "must be set for format ALICCP_RAW");
    } else if (!aliccp && !data.train_common_path().empty()) {
      p->Add("data.train_common_path", "is only used by format ALICCP_RAW");
    }
    return;
  }
  // With a holdout the test side is the held-out part of train_path.
  const bool holdout = data.holdout_fraction() > 0;
  if (holdout && !data.test_path().empty()) {
    p->Add("data.test_path",
           "must be empty when data.holdout_fraction > 0 (the test side is the held-out part of "
           "data.train_path)");
  } else if (!holdout && data.test_path().empty()) {
    p->Add("data.test_path",
           "must be set (or hold out part of data.train_path with "
           "data.holdout_fraction)");
  }
  if (!aliccp) {
    if (!data.test_common_path().empty()) {
      p->Add("data.test_common_path", "is only used by format ALICCP_RAW");
    }
  } else if (holdout && !data.test_common_path().empty()) {
    p->Add("data.test_common_path", "must be empty when data.holdout_fraction > 0");
  } else if (!holdout && data.test_common_path().empty()) {
    p->Add("data.test_common_path", "must be set for format ALICCP_RAW");
  }
}

void CheckDataLabels(const config::DataConfig& data, ConfigProblems* p) {
  if (data.labels_size() == 0) p->Add("data.labels", "at least one label is required");
  std::set<std::string> names;
  for (int i = 0; i < data.labels_size(); ++i) {
    const config::LabelSpec& label = data.labels(i);
    const std::string field = "data.labels[" + std::to_string(i) + "]";
    if (label.name().empty()) p->Add(field + ".name", "must be set");
    if (label.column().empty()) p->Add(field + ".column", "must be set");
    if (!label.name().empty() && !names.insert(label.name()).second) {
      p->Add(field + ".name", "duplicate label name '" + label.name() + "'");
    }
  }
}

void CheckColumnRoles(const config::DataConfig& data, ConfigProblems* p) {
  std::set<std::string> label_columns;
  for (const config::LabelSpec& label : data.labels()) label_columns.insert(label.column());
  std::set<std::string> used;
  auto use = [&](const std::string& field, const std::string& column) {
    if (column.empty()) {
      p->Add(field, "empty column name");
    } else if (label_columns.count(column)) {
      p->Add(field, "column '" + column + "' is a label column and cannot be an input");
    } else if (!used.insert(column).second) {
      p->Add(field, "column '" + column + "' is named more than once as an input or ignored");
    }
  };
  for (int i = 0; i < data.categorical_columns_size(); ++i) {
    use("data.categorical_columns[" + std::to_string(i) + "]", data.categorical_columns(i));
  }
  for (int i = 0; i < data.dense_columns_size(); ++i) {
    use("data.dense_columns[" + std::to_string(i) + "]", data.dense_columns(i));
  }
  for (int i = 0; i < data.multi_valued_columns_size(); ++i) {
    const config::MultiValuedColumn& mv = data.multi_valued_columns(i);
    const std::string field = "data.multi_valued_columns[" + std::to_string(i) + "]";
    use(field + ".name", mv.name());
    if (mv.separator().size() != 1) {
      p->Add(field + ".separator", "must be one character (got '" + mv.separator() + "')");
    }
  }
  for (int i = 0; i < data.ignore_columns_size(); ++i) {
    const std::string& column = data.ignore_columns(i);
    const std::string field = "data.ignore_columns[" + std::to_string(i) + "]";
    if (column.empty()) {
      p->Add(field, "empty column name");
    } else if (!label_columns.count(column) && !used.insert(column).second) {
      p->Add(field, "column '" + column + "' is both ignored and used as an input");
    }
  }
  if (IsFieldIdFormat(data.format())) {
    // Inputs are fields named in these two lists (CheckFieldIdData rejects
    // the rest).
    if (data.categorical_columns_size() == 0 && data.multi_valued_columns_size() == 0) {
      p->Add("data", "format " + config::DataConfig::Format_Name(data.format()) +
                         " needs at least one input field in data.categorical_columns or "
                         "data.multi_valued_columns");
    }
  } else if (data.categorical_columns_size() == 0 && data.multi_valued_columns_size() == 0 &&
             data.dense_columns_size() == 0 &&
             data.other_columns() != config::DataConfig::OTHER_CATEGORICAL) {
    p->Add("data",
           "no input column: set categorical_columns, multi_valued_columns, dense_columns or "
           "other_columns: OTHER_CATEGORICAL");
  }
}

void CheckDataConfig(const config::Config& config, ConfigProblems* p) {
  const config::DataConfig& data = config.data();
  CheckDataFormat(data, p);
  CheckDataFiles(data, DataSplit::kTrain, p);
  CheckDataSampling(data, p);
  CheckDataErrorBudget(data, p);
  CheckDataFiles(data, DataSplit::kTest, p);
  if (data.format() == config::DataConfig::ALICCP_RAW) {
    CheckFieldIdData(data, AliccpLabelColumns(), "ALICCP_RAW", p);
  } else if (data.format() == config::DataConfig::FIELD_ID) {
    CheckFieldIdData(data, FieldIdLabelColumns(), "FIELD_ID", p);
  }
  CheckDataLabels(data, p);
  CheckColumnRoles(data, p);
}

}  // namespace mtps
