// Field parsing and FeatureExtractor (row -> example per DataConfig). See
// worker/data/feature_extractor.h.
#include "worker/data/feature_extractor.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "common/base/hash.h"
#include "common/config/config_check.h"
#include "worker/data/data_config.h"

namespace mtps {
namespace {

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

std::string_view TrimField(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ParseFiniteFloat(std::string_view text, float* out) {
  if (text.empty()) return false;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  if (*first == '+') ++first;  // from_chars rejects a leading '+'.
  if (first == last) return false;
  // Fast path for the common case, a short unsigned integer ("1", "12"):
  // below 10^9 it fits in 32 bits, and the conversion to float rounds to
  // nearest like from_chars, so the result is the same float.
  if (last - first <= 9) {
    uint32_t n = 0;
    const char* p = first;
    while (p != last && static_cast<unsigned char>(*p - '0') < 10) n = n * 10 + (*p++ - '0');
    if (p == last) {
      *out = static_cast<float>(n);
      return true;
    }
  }
  float value = 0;
  const auto [end, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || end != last || !std::isfinite(value)) return false;
  *out = value;
  return true;
}

LabelRule::LabelRule(const config::LabelSpec& spec) {
  for (const std::string& v : spec.positive_values()) positive_values_.emplace_back(TrimField(v));
}

bool LabelRule::Parse(std::string_view text, float* y) const {
  text = TrimField(text);
  if (positive_values_.empty()) {
    float x = 0;
    if (!ParseFiniteFloat(text, &x)) return false;
    *y = x > 0.5f ? 1.0f : 0.0f;
    return true;
  }
  float value = 0;
  for (const std::string& positive : positive_values_) {
    if (text == positive) value = 1;
  }
  *y = value;
  return true;
}

// ---------------------------------------------------------------------------
// FeatureExtractor
// ---------------------------------------------------------------------------

StatusOr<FeatureExtractor> FeatureExtractor::Create(const config::DataConfig& config,
                                                    const std::vector<std::string>& columns,
                                                    const std::string& source) {
  ConfigProblems problems;
  CheckColumnRoles(config, &problems);
  MTPS_RETURN_IF_ERROR(problems.ToStatus());

  FeatureExtractor fx;
  fx.source_ = source;
  fx.num_columns_ = columns.size();
  fx.column_names_ = columns;
  std::unordered_map<std::string, int> index;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (!index.emplace(columns[i], static_cast<int>(i)).second) {
      return Status::InvalidArgument(source + ": column '" + columns[i] + "' appears twice");
    }
  }
  auto find = [&](const std::string& column, const std::string& field, int* out) -> Status {
    auto it = index.find(column);
    if (it == index.end()) {
      return Status::InvalidArgument(
          source + ": column '" + column + "' (data." + field +
          ") is not in the file; its columns are: " + JoinNames(columns));
    }
    *out = it->second;
    return Status::OK();
  };

  // The columns named anywhere (so not OTHER_CATEGORICAL slots). Column
  // names are distinct, so CheckColumnRoles has made sure that every column
  // has one role (a label column may also be ignored).
  std::vector<bool> named(columns.size(), false);

  for (const config::LabelSpec& spec : config.labels()) {
    Label label{0, LabelRule(spec)};
    MTPS_RETURN_IF_ERROR(find(spec.column(), "labels.column", &label.column));
    named[label.column] = true;
    fx.labels_.push_back(std::move(label));
    fx.schema_.label_names.push_back(spec.name());
  }
  for (const std::string& column : config.ignore_columns()) {
    int c = 0;
    MTPS_RETURN_IF_ERROR(find(column, "ignore_columns", &c));
    named[c] = true;
  }
  for (const std::string& column : config.dense_columns()) {
    int c = 0;
    MTPS_RETURN_IF_ERROR(find(column, "dense_columns", &c));
    named[c] = true;
    fx.dense_columns_.push_back(c);
    fx.schema_.dense_names.push_back(column);
  }
  fx.log1p_ = config.dense_transform() == config::DataConfig::LOG1P;

  auto add_slot = [&](int column, char separator, Pooling pooling) {
    Slot slot;
    slot.column = column;
    slot.key_seed = HashBytes(std::string_view("\x1f", 1), HashBytes(columns[column]));
    slot.separator = separator;
    fx.slots_.push_back(slot);
    fx.schema_.slots.push_back(SlotInfo{columns[column], pooling});
  };
  for (const std::string& column : config.categorical_columns()) {
    int c = 0;
    MTPS_RETURN_IF_ERROR(find(column, "categorical_columns", &c));
    named[c] = true;
    add_slot(c, 0, Pooling::kSum);
  }
  for (const config::MultiValuedColumn& mv : config.multi_valued_columns()) {
    int c = 0;
    MTPS_RETURN_IF_ERROR(find(mv.name(), "multi_valued_columns.name", &c));
    named[c] = true;
    // CheckColumnRoles: the separator is one character.
    add_slot(c, mv.separator()[0],
             mv.pooling() == config::MultiValuedColumn::MEAN ? Pooling::kMean : Pooling::kSum);
  }
  if (config.other_columns() == config::DataConfig::OTHER_CATEGORICAL) {
    for (size_t c = 0; c < columns.size(); ++c) {
      if (!named[c]) add_slot(static_cast<int>(c), 0, Pooling::kSum);
    }
  }
  return fx;
}

void FeatureExtractor::ResetBatch(Batch* batch) const {
  batch->Clear();
  batch->num_slots = static_cast<int>(schema_.slots.size());
  batch->num_dense = static_cast<int>(schema_.dense_names.size());
  batch->num_labels = static_cast<int>(schema_.label_names.size());
}

Status FeatureExtractor::Error(int64_t line_number, int column, std::string_view text,
                               const std::string& why) const {
  return Status::InvalidArgument(source_ + ":" + std::to_string(line_number) + ": column '" +
                                 column_names_[column] + "': '" + std::string(text) + "' " + why);
}

Status FeatureExtractor::Append(const std::vector<std::string_view>& fields, int64_t line_number,
                                Batch* batch) const {
  DCHECK_EQ(fields.size(), num_columns_);
  DCHECK_EQ(batch->num_slots, static_cast<int>(slots_.size()));
  const size_t dense_size = batch->dense.size();
  const size_t label_size = batch->labels.size();
  auto fail = [&](Status status) {
    batch->dense.resize(dense_size);
    batch->labels.resize(label_size);
    return status;
  };

  for (int c : dense_columns_) {
    const std::string_view text = TrimField(fields[c]);
    float x = 0;
    if (!ParseFiniteFloat(text, &x)) return fail(Error(line_number, c, text, "is not a number"));
    if (log1p_) x = std::copysign(std::log1p(std::fabs(x)), x);
    batch->dense.push_back(x);
  }
  for (const Label& label : labels_) {
    const std::string_view text = TrimField(fields[label.column]);
    float y = 0;
    if (!label.rule.Parse(text, &y)) {
      return fail(Error(line_number, label.column, text,
                        "is not a number (the label has no positive_values)"));
    }
    batch->labels.push_back(y);
  }
  // Keys cannot fail, so nothing after this point needs undoing.
  for (const Slot& slot : slots_) {
    const std::string_view value = TrimField(fields[slot.column]);
    if (slot.separator == 0) {
      batch->keys.push_back(Mix64(HashBytes(value, slot.key_seed)));
      batch->weights.push_back(1.0f);
    } else {
      size_t start = 0;
      while (start <= value.size()) {
        size_t end = value.find(slot.separator, start);
        if (end == std::string_view::npos) end = value.size();
        const std::string_view id = TrimField(value.substr(start, end - start));
        if (!id.empty()) {
          batch->keys.push_back(Mix64(HashBytes(id, slot.key_seed)));
          batch->weights.push_back(1.0f);
        }
        start = end + 1;
      }
    }
    batch->offsets.push_back(static_cast<uint32_t>(batch->keys.size()));
  }
  ++batch->num_examples;
  return Status::OK();
}

}  // namespace mtps
