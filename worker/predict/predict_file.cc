// Scoring one data file (see worker/predict/predict_file.h).
#include "worker/predict/predict_file.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include "common/eval/metrics.h"
#include "worker/data/example_reader.h"
#include "worker/predict/npy_file.h"

namespace mtps {
namespace {

bool SameInputs(const FeatureSchema& a, const FeatureSchema& b) {
  if (a.slots.size() != b.slots.size() || a.dense_names != b.dense_names) return false;
  for (size_t i = 0; i < a.slots.size(); ++i) {
    if (a.slots[i].name != b.slots[i].name || a.slots[i].pooling != b.slots[i].pooling) {
      return false;
    }
  }
  return true;
}

std::string SlotNames(const FeatureSchema& s) {
  std::string out;
  for (const SlotInfo& slot : s.slots) out += (out.empty() ? "" : ", ") + slot.name;
  return out;
}

// The output file, written under PATH.tmp and renamed into place by Close.
class TsvOut {
 public:
  explicit TsvOut(std::string path) : path_(std::move(path)) {}
  ~TsvOut() {
    if (file_ != nullptr) {
      std::fclose(file_);
      std::remove((path_ + ".tmp").c_str());
    }
  }
  Status Open() {
    file_ = std::fopen((path_ + ".tmp").c_str(), "w");
    if (file_ == nullptr) {
      return Status::IoError(path_ + ".tmp: cannot open for writing: " + std::strerror(errno));
    }
    return Status::OK();
  }
  void Write(const std::string& text) { std::fwrite(text.data(), 1, text.size(), file_); }
  Status Close() {
    const bool ok = !std::ferror(file_) && std::fflush(file_) == 0;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!ok || !closed) {
      std::remove((path_ + ".tmp").c_str());
      return Status::IoError(path_ + ".tmp: write failed");
    }
    if (std::rename((path_ + ".tmp").c_str(), path_.c_str()) != 0) {
      return Status::IoError(path_ + ": cannot rename into place: " + std::strerror(errno));
    }
    return Status::OK();
  }

 private:
  const std::string path_;
  std::FILE* file_ = nullptr;
};

// The inputs of every example, for PredictOptions::dump_dir.
struct InputDump {
  std::vector<uint64_t> keys;
  std::vector<float> weights;
  std::vector<int64_t> offsets{0};
  std::vector<float> dense;
  std::vector<float> input;
  int64_t rows = 0;

  void Add(const Batch& batch, const RowMatrix<float>& in) {
    const int64_t base = offsets.back();
    for (size_t i = 1; i < batch.offsets.size(); ++i) offsets.push_back(base + batch.offsets[i]);
    keys.insert(keys.end(), batch.keys.begin(), batch.keys.end());
    weights.insert(weights.end(), batch.weights.begin(), batch.weights.end());
    dense.insert(dense.end(), batch.dense.begin(), batch.dense.end());
    input.insert(input.end(), in.data(), in.data() + in.size());
    rows += batch.num_examples;
  }

  Status Write(const std::string& dir, int num_dense, int64_t input_dim) const {
    const int64_t k = static_cast<int64_t>(keys.size());
    MTPS_RETURN_IF_ERROR(WriteNpy(dir + "/keys.npy", NpyType::kUint64, {k}, keys.data()));
    MTPS_RETURN_IF_ERROR(WriteNpy(dir + "/weights.npy", NpyType::kFloat32, {k}, weights.data()));
    MTPS_RETURN_IF_ERROR(WriteNpy(dir + "/offsets.npy", NpyType::kInt64,
                                  {static_cast<int64_t>(offsets.size())}, offsets.data()));
    MTPS_RETURN_IF_ERROR(
        WriteNpy(dir + "/dense.npy", NpyType::kFloat32, {rows, num_dense}, dense.data()));
    return WriteNpy(dir + "/input.npy", NpyType::kFloat32, {rows, input_dim}, input.data());
  }
};

}  // namespace

StatusOr<FeatureSchema> TrainedSchema(const config::DataConfig& data) {
  auto schema = ReadSchema(data);
  if (schema.ok() || data.format() != config::DataConfig::CSV ||
      data.other_columns() == config::DataConfig::OTHER_CATEGORICAL) {
    return schema;
  }
  FeatureSchema composed;
  for (const std::string& column : data.categorical_columns()) {
    composed.slots.push_back(SlotInfo{column, Pooling::kSum});
  }
  for (const config::MultiValuedColumn& mv : data.multi_valued_columns()) {
    composed.slots.push_back(SlotInfo{mv.name(), mv.pooling() == config::MultiValuedColumn::MEAN
                                                     ? Pooling::kMean
                                                     : Pooling::kSum});
  }
  composed.dense_names.assign(data.dense_columns().begin(), data.dense_columns().end());
  for (const config::LabelSpec& label : data.labels()) composed.label_names.push_back(label.name());
  return composed;
}

config::DataConfig PredictDataConfig(const config::DataConfig& data, const PredictOptions& options,
                                     bool labeled) {
  config::DataConfig out = data;
  out.set_test_path(options.data_path);
  out.set_test_common_path(options.common_path);
  out.set_holdout_fraction(0);
  out.set_max_bad_lines(0);  // a row per data line: none skipped
  if (!labeled) out.clear_labels();
  return out;
}

StatusOr<bool> DataHasLabels(const config::DataConfig& data, const PredictOptions& options,
                             const FeatureSchema& trained) {
  const config::DataConfig labeled = PredictDataConfig(data, options, true);
  auto schema = ReadSchema(labeled, options.data_path);
  bool has_labels = true;
  if (!schema.ok() && data.format() == config::DataConfig::CSV) {
    // A file without the label columns (data to serve) reads without them.
    auto unlabeled = ReadSchema(PredictDataConfig(data, options, false), options.data_path);
    if (unlabeled.ok()) {
      schema = std::move(unlabeled);
      has_labels = false;
    }
  }
  if (!schema.ok()) return schema.status();
  if (!SameInputs(*schema, trained)) {
    return Status::InvalidArgument(
        options.data_path + ": its columns give the slots [" + SlotNames(*schema) + "] and " +
        std::to_string(schema->dense_names.size()) + " dense features; the model was trained on [" +
        SlotNames(trained) + "] and " + std::to_string(trained.dense_names.size()));
  }
  return has_labels;
}

StatusOr<PredictResult> PredictFile(const config::Config& config, const FeatureSchema& trained,
                                    const PredictOptions& options, Scorer* scorer) {
  if (options.batch_size < 1) return Status::InvalidArgument("batch size must be >= 1");
  MTPS_ASSIGN_OR_RETURN(const bool labeled, DataHasLabels(config.data(), options, trained));
  const config::DataConfig data = PredictDataConfig(config.data(), options, labeled);
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<ExampleReader> reader,
                        ExampleReader::Open(data, DataSplit::kTest, 0, 1));

  PredictResult result;
  result.labeled = labeled;
  result.auc_bins = config.eval().auc_bins();
  const std::vector<std::string>& tasks = scorer->tasks();
  TsvOut out(options.out_path);
  MTPS_RETURN_IF_ERROR(out.Open());
  std::string line;
  for (size_t t = 0; t < tasks.size(); ++t) line += (t ? "\t" : "") + tasks[t];
  if (labeled) {
    for (const std::string& label : trained.label_names) line += "\tlabel:" + label;
  }
  out.Write(line + "\n");

  std::vector<EvalColumn> eval;
  std::vector<ScoreHistogram> histograms;
  const int bins = result.auc_bins;
  if (labeled && bins > 0) histograms.assign(tasks.size(), ScoreHistogram(bins));
  InputDump dump;
  Batch batch;
  RowMatrix<float> scores;
  char number[32];
  for (;;) {
    MTPS_RETURN_IF_ERROR(reader->Next(options.batch_size, &batch));
    if (batch.num_examples == 0) break;
    scorer->Score(batch, &scores);
    for (int b = 0; b < batch.num_examples; ++b) {
      line.clear();
      for (Eigen::Index t = 0; t < scores.cols(); ++t) {
        std::snprintf(number, sizeof(number), "%.9g", static_cast<double>(scores(b, t)));
        line += (t ? "\t" : "") + std::string(number);
      }
      if (labeled) {
        for (int l = 0; l < batch.num_labels; ++l) {
          line +=
              batch.labels[static_cast<size_t>(b) * batch.num_labels + l] > 0.5f ? "\t1" : "\t0";
        }
      }
      out.Write(line + "\n");
    }
    if (labeled) {
      scorer->Evaluate(batch, &eval);
      if (bins > 0) {
        // As a worker does: fold each batch into the histograms.
        for (size_t t = 0; t < histograms.size() && t < eval.size(); ++t) {
          for (size_t i = 0; i < eval[t].scores.size(); ++i) {
            histograms[t].Add(eval[t].scores[i], eval[t].labels[i]);
          }
          eval[t].scores.clear();
          eval[t].labels.clear();
        }
      }
    }
    if (!options.dump_dir.empty()) dump.Add(batch, scorer->input());
    result.rows += batch.num_examples;
  }
  MTPS_RETURN_IF_ERROR(out.Close());
  if (labeled) {
    eval.resize(tasks.size());
    for (size_t t = 0; t < tasks.size(); ++t) {
      TaskMetrics m;
      m.task = tasks[t];
      if (bins > 0) {
        m.examples = histograms[t].examples();
        m.auc = histograms[t].Auc();
        m.logloss = histograms[t].LogLoss();
      } else {
        m.examples = static_cast<int64_t>(eval[t].scores.size());
        m.auc = Auc(eval[t].scores, eval[t].labels);
        m.logloss = LogLoss(eval[t].scores, eval[t].labels);
      }
      result.metrics.push_back(m);
    }
  }
  if (!options.dump_dir.empty()) {
    MTPS_RETURN_IF_ERROR(dump.Write(options.dump_dir, static_cast<int>(trained.dense_names.size()),
                                    scorer->model().input_dim()));
  }
  return result;
}

}  // namespace mtps
