// The rules of the data section of a job config (config.data), owned by the
// readers that rely on them. Each function adds one problem (named by its
// field, see common/config/config_check.h) for every rule `data` breaks.
// CheckDataConfig runs them all: it is the ConfigCheck the scheduler passes
// to LoadConfig (launcher/node_main.cc). The readers run the ones they rely
// on: ExampleReader::Open (format, sampling, the error budget, the side's
// files), ReadSchema (format), FieldSlots (labels, column roles,
// CheckFieldIdData), FeatureExtractor (column roles). None of them opens a file: whether the named
// columns exist is the readers' business once they have the file.
#ifndef MTPS_WORKER_DATA_DATA_CONFIG_H_
#define MTPS_WORKER_DATA_DATA_CONFIG_H_

#include "common/config/config_check.h"
#include "proto/config.pb.h"
#include "worker/data/example_reader.h"

namespace mtps {

// data.format is set (CENSUS_RAW, CSV, ALICCP_RAW or FIELD_ID);
// data.delimiter is one character.
void CheckDataFormat(const config::DataConfig& data, ConfigProblems* problems);

// data.holdout_fraction is in [0, 1); data.shuffle_buffer >= 0.
void CheckDataSampling(const config::DataConfig& data, ConfigProblems* problems);

// data.max_bad_lines >= 0 (the data error budget, bad_line_budget.h).
void CheckDataErrorBudget(const config::DataConfig& data, ConfigProblems* problems);

// The files of one side. kTrain: train_path is set; train_common_path is set
// for ALICCP_RAW and empty for the other formats. kTest: with a holdout
// (holdout_fraction > 0) the test side is the held-out part of train_path,
// so test_path and test_common_path are empty; without one test_path is set,
// and test_common_path is set for ALICCP_RAW and empty for the others.
void CheckDataFiles(const config::DataConfig& data, DataSplit split, ConfigProblems* problems);

// data.labels: at least one; each with a name and a column; names distinct.
// (The label columns the field-id formats allow: CheckFieldIdData.)
void CheckDataLabels(const config::DataConfig& data, ConfigProblems* problems);

// Column roles: every categorical, dense, multi-valued and ignored column is
// named (non-empty) and named once; a label column is no input (it may also
// be ignored); every multi-valued separator is one character; there is at
// least one input (other_columns: OTHER_CATEGORICAL counts for the column
// formats).
void CheckColumnRoles(const config::DataConfig& data, ConfigProblems* problems);

// Every rule above (both sides' files), and CheckFieldIdData for ALICCP_RAW
// (AliccpLabelColumns()) and FIELD_ID (FieldIdLabelColumns()).
void CheckDataConfig(const config::Config& config, ConfigProblems* problems);

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_DATA_CONFIG_H_
