// The raw Ali-CCP reader: a streamed merge join of a sample_skeleton file
// with its common_features file. See worker/data/aliccp_reader.h.
//
// Speed: lines are split into string_views (features in one pass each), numbers parsed with
// from_chars, keys hashed in place; the only per-sample work beyond that is
// copying the (cached, slot-grouped) common features into the batch.
#include "worker/data/aliccp_reader.h"

#include <charconv>
#include <cstring>
#include <utility>

#include "worker/data/feature_extractor.h"
#include "worker/data/field_id_reader.h"
#include "worker/data/line_reader.h"

namespace mtps {
namespace {

constexpr char kFeatureSeparator = '\x01';
constexpr char kIdSeparator = '\x02';
constexpr char kValueSeparator = '\x03';

// A printable excerpt for messages: control and non-ASCII bytes as \xNN.
std::string Excerpt(std::string_view s) {
  constexpr size_t kMax = 80;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMax) out += "...";
  return out;
}

// Splits off the first n comma-separated values of `line` into out[0..n-1]
// and the rest (after the n-th comma) into out[n]. Returns how many values
// were found (n + 1 when the line has at least n commas).
int SplitHead(std::string_view line, int n, std::string_view* out) {
  size_t pos = 0;
  for (int i = 0; i < n; ++i) {
    const size_t comma = line.find(',', pos);
    if (comma == std::string_view::npos) {
      out[i] = line.substr(pos);
      return i + 1;
    }
    out[i] = line.substr(pos, comma - pos);
    pos = comma + 1;
  }
  out[n] = line.substr(pos);
  return n + 1;
}

bool ParseCount(std::string_view text, int64_t* out) {
  text = TrimField(text);
  if (text.empty()) return false;
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return false;
  *out = value;
  return true;
}

// The location prefix "path:line: " of a message.
std::string At(const LineReader& lines) { return lines.Location(); }

// Parses `list` (the feature_list of the line `lines` last returned), adding
// the features of input fields to *out, and checks that it holds `count_text`
// features.
Status ParseFeatures(const FieldSlots& slots, std::string_view count_text, std::string_view list,
                     const LineReader& lines, SlotGrouper* out) {
  int64_t expected = 0;
  if (!ParseCount(count_text, &expected)) {
    return Status::InvalidArgument(At(lines) + "feature_count '" + Excerpt(count_text) +
                                   "' is not a non-negative integer");
  }
  int64_t count = 0;
  if (!list.empty()) {
    const char* p = list.data();
    const char* const end = p + list.size();
    while (true) {
      // One pass over the feature (a dozen bytes: cheaper than a memchr per
      // separator): its end, the first \x02, and the first \x03 after it.
      const char* id_sep = nullptr;
      const char* value_sep = nullptr;
      const char* f_end = p;
      for (; f_end != end && *f_end != kFeatureSeparator; ++f_end) {
        if (*f_end == kIdSeparator) {
          if (id_sep == nullptr) id_sep = f_end;
        } else if (*f_end == kValueSeparator) {
          if (value_sep == nullptr && id_sep != nullptr) value_sep = f_end;
        }
      }
      ++count;
      const std::string_view feature(p, f_end - p);
      if (value_sep == nullptr) {
        return Status::InvalidArgument(At(lines) + "feature " + std::to_string(count) + " '" +
                                       Excerpt(feature) +
                                       "': expected field_id \\x02 feature_id \\x03 value (no " +
                                       (id_sep == nullptr ? "\\x02" : "\\x03") + ")");
      }
      const std::string_view field(p, id_sep - p);
      const std::string_view id(id_sep + 1, value_sep - id_sep - 1);
      const std::string_view value(value_sep + 1, f_end - value_sep - 1);
      if (field.empty() || id.empty()) {
        return Status::InvalidArgument(At(lines) + "feature " + std::to_string(count) + " '" +
                                       Excerpt(feature) + "': empty " +
                                       (field.empty() ? "field id" : "feature id"));
      }
      float weight = 0;
      if (!ParseFiniteFloat(value, &weight)) {
        return Status::InvalidArgument(At(lines) + "feature " + std::to_string(count) + " '" +
                                       Excerpt(feature) + "': value '" + Excerpt(value) +
                                       "' is not a finite number");
      }
      const int slot = slots.SlotOf(field);
      if (slot >= 0) out->Add(slot, slots.Key(slot, id), weight);
      if (f_end == end) break;
      p = f_end + 1;
    }
  }
  if (count != expected) {
    return Status::InvalidArgument(At(lines) + "feature_count is " + std::to_string(expected) +
                                   " but the feature_list has " + std::to_string(count) +
                                   " features");
  }
  return Status::OK();
}

class AliccpReader : public LineExampleReader {
 public:
  AliccpReader(FieldSlots slots, std::unique_ptr<LineReader> skeleton,
               std::unique_ptr<LineReader> common, const LineSelector& selector,
               std::shared_ptr<BadLineBudget> budget)
      : LineExampleReader(std::move(skeleton), selector, std::move(budget)),
        slots_(std::move(slots)),
        skeleton_(&lines()),
        common_(std::move(common)) {}

  const FeatureSchema& schema() const override { return slots_.schema(); }

  Status Rewind() override {
    MTPS_RETURN_IF_ERROR(LineExampleReader::Rewind());
    MTPS_RETURN_IF_ERROR(common_->Rewind());
    have_common_ = false;
    common_parsed_ = false;
    common_bad_ = false;
    common_line_ = 0;
    return Status::OK();
  }

 private:
  void ResetBatch(Batch* batch) const override { slots_.ResetBatch(batch); }

  // Malformed lines (see the header): a skeleton line without its six
  // values does not move the join and is skipped. A common line is answered
  // for by the reader that keeps the skeleton line whose join reached it:
  // one without its three values when the join passes it, and the common
  // line the join stops at, whose features that reader parses at once. The
  // samples of a malformed common line are dropped with it (they lack its
  // features) and not counted again. Every reader walks both files whole, so
  // every reader sees the same lines reach the same common lines, and each
  // malformed line is counted by exactly one reader.
  Status ReadDataLine(std::string_view line, bool keep, Batch* batch) override {
    // sample_id, click, conversion, common_feature_index, feature_count, feature_list
    std::string_view v[6];
    const int found = SplitHead(line, 5, v);
    if (found < 6) {
      return SkipBadLine(keep, Status::InvalidArgument(
                                   At(*skeleton_) +
                                   "expected 6 comma-separated values (sample_id,click,conversion,"
                                   "common_feature_index,feature_count,feature_list), found " +
                                   std::to_string(found)));
    }
    // Every line moves the join, kept or not.
    bool reached = false;
    MTPS_RETURN_IF_ERROR(SeekCommon(v[3], keep, &reached));
    if (reached && keep && !common_bad_) {
      const Status parsed = ParseCommon();
      if (!parsed.ok()) return SkipBadLine(keep, parsed);  // drops this sample too
    }
    if (!keep || common_bad_) return Status::OK();
    // The common line's first sample is another reader's: parse it here too.
    if (!common_parsed_ && !ParseCommon().ok()) return Status::OK();
    const Status appended = Append(v, batch);
    return appended.ok() ? appended : SkipBadLine(keep, appended);
  }

  // Makes the common line of `index` current: the current one, or the next
  // common line with that index (skipping lines no skeleton line uses); sets
  // *reached when that is a new one. A common line without its three values
  // on the way goes to SkipBadLine(keep) (and, if it is the one, makes the
  // current common line malformed).
  Status SeekCommon(std::string_view index, bool keep, bool* reached) {
    if (have_common_ && index == common_index_) return Status::OK();
    const int64_t from_line = common_->line_number() + 1;
    while (true) {
      std::string_view line;
      bool eof = false;
      MTPS_RETURN_IF_ERROR(common_->ReadLine(&line, &eof));
      if (eof) {
        have_common_ = false;
        return Status::InvalidArgument(
            At(*skeleton_) + "common_feature_index '" + Excerpt(index) + "' is not in " +
            common_->path() + " at or after line " + std::to_string(from_line) +
            (common_line_ == 0 ? std::string()
                               : " (line " + std::to_string(common_line_) + " has '" +
                                     Excerpt(common_index_) + "')") +
            ", where the file ends (line " + std::to_string(common_->line_number()) +
            "): it is missing, or the two files do not list common_feature_index in the same "
            "order");
      }
      if (TrimField(line).empty()) continue;
      std::string_view v[3];
      const bool complete = SplitHead(line, 2, v) == 3;
      if (!complete) {
        MTPS_RETURN_IF_ERROR(SkipBadLine(
            keep, Status::InvalidArgument(At(*common_) +
                                          "expected 3 comma-separated values "
                                          "(common_feature_index,feature_count,feature_list)")));
        if (v[0] != index) continue;
      }
      if (v[0] == index) {
        common_index_.assign(index.data(), index.size());
        common_line_ = common_->line_number();
        common_count_ = complete ? v[1] : std::string_view();
        common_list_ = complete ? v[2] : std::string_view();
        have_common_ = true;
        common_parsed_ = false;
        common_bad_ = !complete;
        *reached = true;
        return Status::OK();
      }
    }
  }

  // Parses the current common line's features into common_features_ (then
  // common_parsed_), or sets common_bad_ and returns why it is malformed.
  Status ParseCommon() {
    common_features_.Reset(slots_.num_slots());
    const Status parsed =
        ParseFeatures(slots_, common_count_, common_list_, *common_, &common_features_);
    if (!parsed.ok()) {
      common_bad_ = true;
      return parsed;
    }
    common_features_.Group();
    common_parsed_ = true;
    return Status::OK();
  }

  // Parses the current skeleton line (values v) and appends its example with
  // the parsed common features; *batch is unchanged on error.
  Status Append(const std::string_view* v, Batch* batch) {
    MTPS_RETURN_IF_ERROR(slots_.ParseLabels(v + 1, *skeleton_, Excerpt, &labels_));
    sample_.Reset(slots_.num_slots());
    MTPS_RETURN_IF_ERROR(ParseFeatures(slots_, v[4], v[5], *skeleton_, &sample_));
    sample_.AppendExample(&common_features_, batch);  // per slot: skeleton, then common
    batch->labels.insert(batch->labels.end(), labels_.begin(), labels_.end());
    ++batch->num_examples;
    return Status::OK();
  }

  const FieldSlots slots_;
  LineReader* const skeleton_;  // lines(), the skeleton file
  const std::unique_ptr<LineReader> common_;
  // The current common line: its index (a copy) and views of its other
  // values into common_'s line buffer, valid until common_ reads on.
  bool have_common_ = false;
  std::string common_index_;
  int64_t common_line_ = 0;  // its line number (0: none yet)
  std::string_view common_count_;
  std::string_view common_list_;
  bool common_parsed_ = false;   // common_features_ holds its features
  bool common_bad_ = false;      // it is malformed: its samples are dropped
  SlotGrouper common_features_;  // the current common line's input features
  SlotGrouper sample_;           // scratch: the skeleton line's input features
  std::vector<float> labels_;    // scratch
};

}  // namespace

StatusOr<std::unique_ptr<ExampleReader>> OpenAliccpReader(const config::DataConfig& config,
                                                          const std::string& skeleton_path,
                                                          const std::string& common_path,
                                                          const LineSelector& selector,
                                                          std::shared_ptr<BadLineBudget> budget) {
  MTPS_ASSIGN_OR_RETURN(FieldSlots slots,
                        FieldSlots::Create(config, AliccpLabelColumns(), "ALICCP_RAW"));
  if (common_path.empty()) {
    return Status::InvalidArgument("ALICCP_RAW: no common_features file for " + skeleton_path +
                                   " (data.train_common_path / data.test_common_path)");
  }
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<LineReader> skeleton, LineReader::Open(skeleton_path));
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<LineReader> common, LineReader::Open(common_path));
  return std::unique_ptr<ExampleReader>(new AliccpReader(
      std::move(slots), std::move(skeleton), std::move(common), selector, std::move(budget)));
}

}  // namespace mtps
