// FieldSlots (field id -> slot, keys, labels), SlotGrouper and the FIELD_ID
// (PaddleRec field:id) reader. See worker/data/field_id_reader.h.
#include "worker/data/field_id_reader.h"

#include <algorithm>
#include <utility>

#include "common/base/hash.h"
#include "worker/data/data_config.h"

namespace mtps {

// ---------------------------------------------------------------------------
// FieldSlots
// ---------------------------------------------------------------------------

StatusOr<FieldSlots> FieldSlots::Create(const config::DataConfig& config,
                                        const std::vector<std::string>& label_columns,
                                        const std::string& format) {
  ConfigProblems problems;
  CheckFieldIdData(config, label_columns, format, &problems);
  CheckDataLabels(config, &problems);
  CheckColumnRoles(config, &problems);
  MTPS_RETURN_IF_ERROR(problems.ToStatus());

  FieldSlots fs;
  fs.label_columns_ = label_columns;
  fs.table_.assign(kTableSize, Entry());
  for (const config::LabelSpec& spec : config.labels()) {
    // CheckFieldIdData: one of label_columns.
    const int column =
        static_cast<int>(std::find(label_columns.begin(), label_columns.end(), spec.column()) -
                         label_columns.begin());
    fs.labels_.push_back(Label{column, LabelRule(spec)});
    fs.schema_.label_names.push_back(spec.name());
  }

  // CheckColumnRoles: names non-empty and distinct; CheckFieldIdData: at most
  // kMaxSlots.
  auto add = [&](const std::string& name, Pooling pooling) {
    const int slot = static_cast<int>(fs.key_seeds_.size());
    fs.key_seeds_.push_back(HashBytes(std::string_view("\x1f", 1), HashBytes(name)));
    fs.schema_.slots.push_back(SlotInfo{name, pooling});
    uint64_t packed = 0;
    if (Pack(name, &packed)) {
      size_t i = Bucket(packed);
      while (fs.table_[i].packed != 0) i = (i + 1) & kTableMask;
      fs.table_[i] = Entry{packed, slot};
    } else {
      fs.long_names_.emplace(name, slot);
    }
  };
  for (const std::string& name : config.categorical_columns()) add(name, Pooling::kSum);
  for (const config::MultiValuedColumn& mv : config.multi_valued_columns()) {
    add(mv.name(),
        mv.pooling() == config::MultiValuedColumn::MEAN ? Pooling::kMean : Pooling::kSum);
  }
  return fs;
}

void CheckFieldIdData(const config::DataConfig& data, const std::vector<std::string>& label_columns,
                      const std::string& format, ConfigProblems* p) {
  std::string allowed;
  for (const std::string& c : label_columns) allowed += (allowed.empty() ? "" : ", ") + c;
  for (int i = 0; i < data.labels_size(); ++i) {
    const std::string& column = data.labels(i).column();
    if (!column.empty() &&
        std::find(label_columns.begin(), label_columns.end(), column) == label_columns.end()) {
      p->Add("data.labels[" + std::to_string(i) + "].column",
             "'" + column + "' is not a label column of format " + format + " (one of " + allowed +
                 ")");
    }
  }
  if (data.dense_columns_size() > 0) {
    p->Add("data.dense_columns", "format " + format + " has no dense columns");
  }
  if (data.other_columns() == config::DataConfig::OTHER_CATEGORICAL) {
    p->Add("data.other_columns",
           "OTHER_CATEGORICAL is not supported by format " + format + " (name the input fields)");
  }
  const int fields = data.categorical_columns_size() + data.multi_valued_columns_size();
  if (fields > FieldSlots::kMaxSlots) {
    p->Add("data", "format " + format + " reads at most " + std::to_string(FieldSlots::kMaxSlots) +
                       " input fields (got " + std::to_string(fields) +
                       " in data.categorical_columns and " + "data.multi_valued_columns)");
  }
}

Status FieldSlots::ParseLabels(const std::string_view* values, const LineReader& lines,
                               std::string (*quote)(std::string_view),
                               std::vector<float>* labels) const {
  labels->clear();
  for (const Label& label : labels_) {
    const std::string_view text = TrimField(values[label.column]);
    float y = 0;
    if (!label.rule.Parse(text, &y)) {
      return Status::InvalidArgument(lines.Location() + "column '" + label_columns_[label.column] +
                                     "': '" + quote(text) +
                                     "' is not a number (the label has no positive_values)");
    }
    labels->push_back(y);
  }
  return Status::OK();
}

uint64_t FieldSlots::Key(int slot, std::string_view feature_id) const {
  return Mix64(HashBytes(feature_id, key_seeds_[slot]));
}

void FieldSlots::ResetBatch(Batch* batch) const {
  batch->Clear();
  batch->num_slots = num_slots();
  batch->num_dense = 0;
  batch->num_labels = num_labels();
}

// ---------------------------------------------------------------------------
// SlotGrouper
// ---------------------------------------------------------------------------

void SlotGrouper::Group() {
  starts_.assign(num_slots_ + 1, 0);
  for (int s : slots_) ++starts_[s + 1];
  for (int s = 0; s < num_slots_; ++s) starts_[s + 1] += starts_[s];
  fill_.assign(starts_.begin(), starts_.end() - 1);
  grouped_keys_.resize(keys_.size());
  grouped_weights_.resize(keys_.size());
  for (size_t i = 0; i < slots_.size(); ++i) {
    const size_t at = fill_[slots_[i]]++;
    grouped_keys_[at] = keys_[i];
    grouped_weights_[at] = weights_[i];
  }
}

void SlotGrouper::AppendExample(const SlotGrouper* tail, Batch* batch) {
  DCHECK_EQ(batch->num_slots, num_slots_);
  DCHECK(tail == nullptr || tail->num_slots_ == num_slots_);
  const size_t base = batch->keys.size();
  const size_t total = keys_.size() + (tail == nullptr ? 0 : tail->size());
  batch->keys.resize(base + total);
  batch->weights.resize(base + total);
  const size_t offsets_base = batch->offsets.size();
  batch->offsets.resize(offsets_base + num_slots_);
  uint64_t* const keys = batch->keys.data();
  float* const weights = batch->weights.data();
  uint32_t* const offsets = batch->offsets.data() + offsets_base;
  // fill_[s]: first the count of slot s, then where its next feature goes.
  fill_.assign(num_slots_, 0);
  for (int s : slots_) ++fill_[s];
  size_t at = base;
  for (int s = 0; s < num_slots_; ++s) {
    const size_t count = fill_[s];
    fill_[s] = at;
    at += count;
    if (tail != nullptr) {
      for (size_t i = tail->Begin(s); i < tail->End(s); ++i, ++at) {
        keys[at] = tail->grouped_keys_[i];
        weights[at] = tail->grouped_weights_[i];
      }
    }
    offsets[s] = static_cast<uint32_t>(at);
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    const size_t to = fill_[slots_[i]]++;
    keys[to] = keys_[i];
    weights[to] = weights_[i];
  }
}

// ---------------------------------------------------------------------------
// FIELD_ID reader
// ---------------------------------------------------------------------------

namespace {

class FieldIdReader : public LineExampleReader {
 public:
  FieldIdReader(FieldSlots slots, std::unique_ptr<LineReader> lines, const LineSelector& selector,
                std::shared_ptr<BadLineBudget> budget)
      : LineExampleReader(std::move(lines), selector, std::move(budget)),
        slots_(std::move(slots)) {}

  const FeatureSchema& schema() const override { return slots_.schema(); }

 private:
  std::string Where() const { return lines().Location(); }

  void ResetBatch(Batch* batch) const override { slots_.ResetBatch(batch); }

  Status ReadDataLine(std::string_view line, bool keep, Batch* batch) override {
    if (!keep) return Status::OK();  // not parsed: the reader that keeps it checks it
    const Status parsed = ParseLine(line, batch);
    return parsed.ok() ? parsed : SkipBadLine(keep, parsed);
  }

  // Parses one kept data line and appends its example; *batch is unchanged on
  // error (every error is the line's).
  Status ParseLine(std::string_view line, Batch* batch) {
    // The first three values: sample_id, click, purchase.
    std::string_view head[3];
    size_t pos = 0;
    for (int i = 0; i < 3; ++i) {
      const size_t comma = line.find(',', pos);
      if (comma == std::string_view::npos && i < 2) {
        return Status::InvalidArgument(Where() +
                                       "expected sample_id,click,purchase,field:id,..., " +
                                       "found " + std::to_string(i + 1) + " value(s)");
      }
      head[i] =
          line.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
      pos = comma == std::string_view::npos ? line.size() + 1 : comma + 1;
    }
    MTPS_RETURN_IF_ERROR(slots_.ParseLabels(
        head + 1, lines(), [](std::string_view text) { return std::string(text); }, &labels_));
    grouper_.Reset(slots_.num_slots());
    int token = 3;
    while (pos <= line.size()) {
      size_t comma = line.find(',', pos);
      if (comma == std::string_view::npos) comma = line.size();
      const std::string_view t = TrimField(line.substr(pos, comma - pos));
      ++token;
      pos = comma + 1;
      const size_t colon = t.find(':');
      if (colon == std::string_view::npos || colon == 0 || colon + 1 == t.size()) {
        return Status::InvalidArgument(Where() + "value " + std::to_string(token) + " '" +
                                       std::string(t) + "': expected field:id");
      }
      const std::string_view field = t.substr(0, colon);
      const int slot = slots_.SlotOf(field);
      if (slot >= 0) grouper_.Add(slot, slots_.Key(slot, t.substr(colon + 1)), 1.0f);
    }
    grouper_.AppendExample(nullptr, batch);
    batch->labels.insert(batch->labels.end(), labels_.begin(), labels_.end());
    ++batch->num_examples;
    return Status::OK();
  }

  const FieldSlots slots_;
  SlotGrouper grouper_;        // scratch
  std::vector<float> labels_;  // scratch
};

}  // namespace

StatusOr<std::unique_ptr<ExampleReader>> OpenFieldIdReader(const config::DataConfig& config,
                                                           const std::string& path,
                                                           const LineSelector& selector,
                                                           std::shared_ptr<BadLineBudget> budget) {
  MTPS_ASSIGN_OR_RETURN(FieldSlots slots,
                        FieldSlots::Create(config, FieldIdLabelColumns(), "FIELD_ID"));
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<LineReader> lines, LineReader::Open(path));
  return std::unique_ptr<ExampleReader>(
      new FieldIdReader(std::move(slots), std::move(lines), selector, std::move(budget)));
}

}  // namespace mtps
