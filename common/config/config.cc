// Config loading (text format with located errors), dotted-path overrides,
// semantic validation and printing. See common/config/config.h.
#include "common/config/config.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <set>
#include <sstream>
#include <string_view>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/message.h>
#include <google/protobuf/text_format.h>

namespace mtps {
namespace {

namespace pb = google::protobuf;

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }

// Byte offset of protobuf's 0-based (line, column); the tokenizer advances
// the column to the next multiple of 8 on a tab.
size_t OffsetOf(const std::string& text, int line, int column) {
  size_t offset = 0;
  for (int l = 0; l < line && offset < text.size(); ++offset) {
    if (text[offset] == '\n') ++l;
  }
  for (int col = 0; col < column && offset < text.size() && text[offset] != '\n'; ++offset) {
    col = text[offset] == '\t' ? col + 8 - col % 8 : col + 1;
  }
  return offset;
}

// The dotted path of the field being parsed at `offset` of a text-format
// message, e.g. "data.labels.column", recovered by a light scan of the text
// (protobuf's own messages do not always name the field, e.g. "Expected
// integer, got: abc"). An identifier starting at `offset` is included, so an
// unknown field name is reported as the field itself. Best effort: "" if the
// text is too broken to tell.
std::string FieldPathAt(const std::string& text, size_t offset) {
  size_t end = offset;
  if (end < text.size() && IsIdentStart(text[end])) {
    while (end < text.size() && IsIdentChar(text[end])) ++end;
  }
  std::vector<std::string> stack;
  std::string field;
  size_t i = 0;
  while (i < end) {
    const char c = text[i];
    if (c == '#') {
      while (i < end && text[i] != '\n') ++i;
    } else if (c == '"' || c == '\'') {
      for (++i; i < end && text[i] != c && text[i] != '\n'; ++i) {
        if (text[i] == '\\') ++i;
      }
      ++i;
    } else if (IsIdentStart(c)) {
      const size_t start = i;
      while (i < text.size() && IsIdentChar(text[i])) ++i;
      size_t next = i;
      while (next < text.size() && (text[next] == ' ' || text[next] == '\t' || text[next] == '\n' ||
                                    text[next] == '\r')) {
        ++next;
      }
      // A field name is followed by ':' or a message body; anything else is
      // a value (an enum name, true, inf).
      if (next >= text.size() || text[next] == ':' || text[next] == '{' || text[next] == '<') {
        field = text.substr(start, i - start);
      }
    } else if (c >= '0' && c <= '9') {
      while (i < end &&
             (IsIdentChar(text[i]) || text[i] == '.' || text[i] == '-' || text[i] == '+')) {
        ++i;
      }
    } else if (c == '{' || c == '<') {
      stack.push_back(field);
      field.clear();
      ++i;
    } else if (c == '}' || c == '>') {
      if (!stack.empty()) stack.pop_back();
      field.clear();
      ++i;
    } else {
      ++i;
    }
  }
  std::string path;
  for (const std::string& name : stack) path += name + ".";
  path += field;
  if (!path.empty() && path.back() == '.') path.pop_back();
  return path;
}

// Records every parse error of one text-format document as
// "<source>:<line>:<column>: field '<path>': <message>" (1-based).
class LocatedErrorCollector : public pb::io::ErrorCollector {
 public:
  LocatedErrorCollector(std::string source, const std::string* text)
      : source_(std::move(source)), text_(text) {}

  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    size_t offset = OffsetOf(*text_, line, column);
    // Protobuf reports an unknown field name or enum value at the token
    // after it, which may be on the next line; point at the name itself.
    for (const std::string prefix : {"no field named \"", "Unknown enumeration value of \""}) {
      const size_t start = message.find(prefix);
      if (start == std::string::npos) continue;
      const size_t begin = start + prefix.size();
      const std::string name = message.substr(begin, message.find('"', begin) - begin);
      const size_t at = name.empty() ? std::string::npos : text_->rfind(name, offset);
      if (at != std::string::npos) offset = at;
      break;
    }
    // 1-based line and byte column of `offset`.
    int out_line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < offset && i < text_->size(); ++i) {
      if ((*text_)[i] == '\n') {
        ++out_line;
        line_start = i + 1;
      }
    }
    std::ostringstream os;
    os << source_ << ":" << out_line << ":" << offset - line_start + 1 << ": ";
    const std::string field = FieldPathAt(*text_, offset);
    if (!field.empty()) os << "field '" << field << "': ";
    os << message;
    errors_.push_back(os.str());
  }
  // Warnings (e.g. deprecated syntax) do not fail a load.
  void AddWarning(int, pb::io::ColumnNumber, const std::string&) override {}

  std::string Joined() const {
    std::string out;
    for (const std::string& e : errors_) out += (out.empty() ? "" : "; ") + e;
    return out;
  }

 private:
  const std::string source_;
  const std::string* text_;
  std::vector<std::string> errors_;
};

// Parses `text` into *message (cleared first); errors are located in `source`.
Status ParseText(const std::string& text, const std::string& source, pb::Message* message) {
  LocatedErrorCollector errors(source, &text);
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, message)) {
    std::string joined = errors.Joined();
    if (joined.empty()) joined = source + ": cannot parse text-format " + message->GetTypeName();
    return Status::InvalidArgument(joined);
  }
  return Status::OK();
}

std::string ResolveAgainst(const std::filesystem::path& dir, const std::string& path) {
  if (path.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (dir / path).lexically_normal().string();
}

// ---------------------------------------------------------------------------
// Overrides
// ---------------------------------------------------------------------------

std::string FieldNames(const pb::Descriptor* d) {
  std::string names;
  for (int i = 0; i < d->field_count(); ++i) {
    names += (i ? ", " : "") + d->field(i)->name();
  }
  return names;
}

Status ParseInt(std::string_view text, int64_t lo, int64_t hi, int64_t* out) {
  const std::string s(TrimSpaces(text));
  if (s.empty()) return Status::InvalidArgument("empty value, expected an integer");
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (*end != '\0') return Status::InvalidArgument("'" + s + "' is not an integer");
  if (errno == ERANGE || v < lo || v > hi) {
    return Status::InvalidArgument("'" + s + "' is out of range [" + std::to_string(lo) + ", " +
                                   std::to_string(hi) + "]");
  }
  *out = v;
  return Status::OK();
}

Status ParseUint(std::string_view text, uint64_t hi, uint64_t* out) {
  const std::string s(TrimSpaces(text));
  if (s.empty() || s[0] == '-' || s[0] == '+') {
    return Status::InvalidArgument("'" + s + "' is not an unsigned integer");
  }
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (*end != '\0') return Status::InvalidArgument("'" + s + "' is not an unsigned integer");
  if (errno == ERANGE || v > hi) {
    return Status::InvalidArgument("'" + s + "' is out of range [0, " + std::to_string(hi) + "]");
  }
  *out = v;
  return Status::OK();
}

Status ParseReal(std::string_view text, double max_abs, double* out) {
  const std::string s(TrimSpaces(text));
  if (s.empty()) return Status::InvalidArgument("empty value, expected a number");
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (*end != '\0') return Status::InvalidArgument("'" + s + "' is not a number");
  if (!std::isfinite(v) || std::fabs(v) > max_abs) {
    return Status::InvalidArgument("'" + s + "' is not a finite number in range");
  }
  *out = v;
  return Status::OK();
}

// Sets (or, for a repeated field, appends) one scalar value of field f.
Status SetScalar(pb::Message* m, const pb::FieldDescriptor* f, std::string_view text) {
  const pb::Reflection* r = m->GetReflection();
  const bool add = f->is_repeated();
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32: {
      int64_t v = 0;
      MTPS_RETURN_IF_ERROR(ParseInt(text, std::numeric_limits<int32_t>::min(),
                                    std::numeric_limits<int32_t>::max(), &v));
      add ? r->AddInt32(m, f, static_cast<int32_t>(v)) : r->SetInt32(m, f, static_cast<int32_t>(v));
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_INT64: {
      int64_t v = 0;
      MTPS_RETURN_IF_ERROR(ParseInt(text, std::numeric_limits<int64_t>::min(),
                                    std::numeric_limits<int64_t>::max(), &v));
      add ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_UINT32: {
      uint64_t v = 0;
      MTPS_RETURN_IF_ERROR(ParseUint(text, std::numeric_limits<uint32_t>::max(), &v));
      add ? r->AddUInt32(m, f, static_cast<uint32_t>(v))
          : r->SetUInt32(m, f, static_cast<uint32_t>(v));
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v = 0;
      MTPS_RETURN_IF_ERROR(ParseUint(text, std::numeric_limits<uint64_t>::max(), &v));
      add ? r->AddUInt64(m, f, v) : r->SetUInt64(m, f, v);
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_DOUBLE: {
      double v = 0;
      MTPS_RETURN_IF_ERROR(ParseReal(text, std::numeric_limits<double>::max(), &v));
      add ? r->AddDouble(m, f, v) : r->SetDouble(m, f, v);
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_FLOAT: {
      double v = 0;
      MTPS_RETURN_IF_ERROR(ParseReal(text, std::numeric_limits<float>::max(), &v));
      add ? r->AddFloat(m, f, static_cast<float>(v)) : r->SetFloat(m, f, static_cast<float>(v));
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_BOOL: {
      const std::string_view s = TrimSpaces(text);
      bool v = false;
      if (s == "true" || s == "1") {
        v = true;
      } else if (s != "false" && s != "0") {
        return Status::InvalidArgument("'" + std::string(s) + "' is not a bool (true/false/1/0)");
      }
      add ? r->AddBool(m, f, v) : r->SetBool(m, f, v);
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      const std::string s(TrimSpaces(text));
      const pb::EnumValueDescriptor* v = f->enum_type()->FindValueByName(s);
      if (v == nullptr) {
        std::string names;
        for (int i = 0; i < f->enum_type()->value_count(); ++i) {
          names += (i ? ", " : "") + f->enum_type()->value(i)->name();
        }
        return Status::InvalidArgument("'" + s + "' is not a value of " +
                                       f->enum_type()->full_name() + " (one of " + names + ")");
      }
      add ? r->AddEnum(m, f, v) : r->SetEnum(m, f, v);
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_STRING: {
      add ? r->AddString(m, f, std::string(text)) : r->SetString(m, f, std::string(text));
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      return Status::Internal("SetScalar on a message field");
  }
  return Status::OK();
}

Status ApplyOverrideUnchecked(const std::string& assignment, config::Config* config) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos) {
    return Status::InvalidArgument("expected <dotted.field.path>=<value>");
  }
  const std::string path(TrimSpaces(std::string_view(assignment).substr(0, eq)));
  const std::string_view value = std::string_view(assignment).substr(eq + 1);
  if (path.empty()) return Status::InvalidArgument("empty field path");

  pb::Message* m = config;
  std::string walked;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string name =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool last = dot == std::string::npos;
    const pb::Descriptor* d = m->GetDescriptor();
    if (name.empty()) return Status::InvalidArgument("empty component in field path");
    const pb::FieldDescriptor* f = d->FindFieldByName(name);
    if (f == nullptr) {
      return Status::InvalidArgument("'" + name + "' is not a field of " +
                                     (walked.empty() ? std::string("the config") : walked) + " (" +
                                     d->full_name() + " has: " + FieldNames(d) + ")");
    }
    walked += (walked.empty() ? "" : ".") + name;
    const pb::Reflection* r = m->GetReflection();
    if (!last) {
      if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) {
        return Status::InvalidArgument("'" + walked + "' is a scalar field, it has no subfields");
      }
      if (f->is_repeated()) {
        return Status::InvalidArgument("'" + walked +
                                       "' is a repeated message; overrides cannot index into it");
      }
      m = r->MutableMessage(m, f);  // Creates it; clears oneof siblings.
      start = dot + 1;
      continue;
    }
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        return Status::InvalidArgument("'" + walked +
                                       "' is a repeated message; overrides cannot replace it");
      }
      pb::Message* sub = r->MutableMessage(m, f);
      return ParseText(std::string(value), "value of '" + walked + "'", sub);
    }
    if (!f->is_repeated()) return SetScalar(m, f, value);
    r->ClearField(m, f);
    if (TrimSpaces(value).empty()) return Status::OK();
    size_t item_start = 0;
    while (true) {
      const size_t comma = value.find(',', item_start);
      const std::string_view item =
          value.substr(item_start, comma == std::string_view::npos ? std::string_view::npos
                                                                   : comma - item_start);
      Status s = SetScalar(
          m, f, f->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING ? TrimSpaces(item) : item);
      if (!s.ok()) return Status::InvalidArgument("list item: " + s.message());
      if (comma == std::string_view::npos) break;
      item_start = comma + 1;
    }
    return Status::OK();
  }
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

class Problems {
 public:
  void Add(const std::string& field, const std::string& why) {
    items_.push_back(field + ": " + why);
  }
  template <typename T>
  void Positive(const std::string& field, T value) {
    if (!(value > 0)) Add(field, "must be > 0 (got " + ToString(value) + ")");
  }
  template <typename T>
  void NonNegative(const std::string& field, T value) {
    if (!(value >= 0)) Add(field, "must be >= 0 (got " + ToString(value) + ")");
  }
  Status ToStatus() const {
    if (items_.empty()) return Status::OK();
    std::string joined;
    for (const std::string& p : items_) joined += (joined.empty() ? "" : "; ") + p;
    return Status::InvalidArgument("invalid config: " + joined);
  }

 private:
  template <typename T>
  static std::string ToString(T value) {
    std::ostringstream os;
    os << value;
    return os.str();
  }
  std::vector<std::string> items_;
};

void ValidateData(const config::DataConfig& data, Problems* p) {
  if (data.format() == config::DataConfig::FORMAT_UNSPECIFIED) {
    p->Add("data.format", "must be set (CENSUS_RAW, CSV, ALICCP_RAW or FIELD_ID)");
  }
  if (data.train_path().empty()) p->Add("data.train_path", "must be set");
  // With a holdout the test side is the held-out part of train_path.
  const bool holdout = data.holdout_fraction() > 0;
  if (!(data.holdout_fraction() >= 0 && data.holdout_fraction() < 1)) {
    std::ostringstream os;
    os << "must be in [0, 1) (0: no holdout), got " << data.holdout_fraction();
    p->Add("data.holdout_fraction", os.str());
  }
  if (holdout && !data.test_path().empty()) {
    p->Add("data.test_path",
           "must be empty when data.holdout_fraction > 0 (the test side is the held-out part of "
           "data.train_path)");
  } else if (!holdout && data.test_path().empty()) {
    p->Add("data.test_path",
           "must be set (or hold out part of data.train_path with "
           "data.holdout_fraction)");
  }
  p->NonNegative("data.shuffle_buffer", data.shuffle_buffer());
  const bool field_ids = data.format() == config::DataConfig::ALICCP_RAW ||
                         data.format() == config::DataConfig::FIELD_ID;
  if (data.format() == config::DataConfig::ALICCP_RAW) {
    if (data.train_common_path().empty()) {
      p->Add("data.train_common_path", "must be set for format ALICCP_RAW");
    }
    if (holdout && !data.test_common_path().empty()) {
      p->Add("data.test_common_path", "must be empty when data.holdout_fraction > 0");
    } else if (!holdout && data.test_common_path().empty()) {
      p->Add("data.test_common_path", "must be set for format ALICCP_RAW");
    }
  } else {
    if (!data.train_common_path().empty()) {
      p->Add("data.train_common_path", "is only used by format ALICCP_RAW");
    }
    if (!data.test_common_path().empty()) {
      p->Add("data.test_common_path", "is only used by format ALICCP_RAW");
    }
  }
  if (field_ids) {
    // Features are (field id, feature id) pairs: no dense values, no columns
    // to enumerate, fixed label columns.
    const std::string format = config::DataConfig::Format_Name(data.format());
    const std::set<std::string> label_columns = data.format() == config::DataConfig::ALICCP_RAW
                                                    ? std::set<std::string>{"click", "conversion"}
                                                    : std::set<std::string>{"click", "purchase"};
    for (int i = 0; i < data.labels_size(); ++i) {
      const std::string& column = data.labels(i).column();
      if (!column.empty() && !label_columns.count(column)) {
        p->Add("data.labels[" + std::to_string(i) + "].column",
               "'" + column + "' is not a label column of format " + format + " (one of " +
                   *label_columns.begin() + ", " + *label_columns.rbegin() + ")");
      }
    }
    if (data.dense_columns_size() > 0) {
      p->Add("data.dense_columns", "format " + format + " has no dense columns");
    }
    if (data.other_columns() == config::DataConfig::OTHER_CATEGORICAL) {
      p->Add("data.other_columns",
             "OTHER_CATEGORICAL is not supported by format " + format + " (name the input fields)");
    }
  }
  if (data.delimiter().size() != 1) {
    p->Add("data.delimiter", "must be one character (got '" + data.delimiter() + "')");
  }
  if (data.labels_size() == 0) p->Add("data.labels", "at least one label is required");
  std::set<std::string> label_names;
  for (int i = 0; i < data.labels_size(); ++i) {
    const config::LabelSpec& label = data.labels(i);
    const std::string field = "data.labels[" + std::to_string(i) + "]";
    if (label.name().empty()) p->Add(field + ".name", "must be set");
    if (label.column().empty()) p->Add(field + ".column", "must be set");
    if (!label.name().empty() && !label_names.insert(label.name()).second) {
      p->Add(field + ".name", "duplicate label name '" + label.name() + "'");
    }
  }
  // Each column has at most one input role and a label column is no input.
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
  if (data.categorical_columns_size() == 0 && data.multi_valued_columns_size() == 0 &&
      data.dense_columns_size() == 0 &&
      data.other_columns() != config::DataConfig::OTHER_CATEGORICAL) {
    p->Add("data",
           "no input column: set categorical_columns, multi_valued_columns, dense_columns or "
           "other_columns: OTHER_CATEGORICAL");
  }
}

void ValidateModel(const config::Config& config, Problems* p) {
  const config::ModelConfig& model = config.model();
  p->Positive("model.embedding_dim", model.embedding_dim());
  std::set<std::string> labels;
  for (const config::LabelSpec& label : config.data().labels()) labels.insert(label.name());
  switch (model.kind_case()) {
    case config::ModelConfig::KIND_NOT_SET:
      p->Add("model.kind", "must be set (model.esmm, mmoe, shared_bottom, ple or single_task)");
      break;
    case config::ModelConfig::kSharedBottom:
    case config::ModelConfig::kPle:
    case config::ModelConfig::kSingleTask:
      // Sizes and label names are checked by CreateModel (worker/models/model.cc).
      break;
    case config::ModelConfig::kEsmm: {
      const config::EsmmConfig& esmm = model.esmm();
      for (int i = 0; i < esmm.tower_hidden_size(); ++i) {
        p->Positive("model.esmm.tower_hidden[" + std::to_string(i) + "]", esmm.tower_hidden(i));
      }
      if (!labels.count(esmm.click_label())) {
        p->Add("model.esmm.click_label", "'" + esmm.click_label() + "' is not a data label name");
      }
      if (!labels.count(esmm.conversion_label())) {
        p->Add("model.esmm.conversion_label",
               "'" + esmm.conversion_label() + "' is not a data label name");
      }
      if (esmm.click_label() == esmm.conversion_label()) {
        p->Add("model.esmm.conversion_label", "must differ from click_label");
      }
      break;
    }
    case config::ModelConfig::kMmoe: {
      const config::MmoeConfig& mmoe = model.mmoe();
      p->Positive("model.mmoe.num_experts", mmoe.num_experts());
      for (int i = 0; i < mmoe.expert_hidden_size(); ++i) {
        p->Positive("model.mmoe.expert_hidden[" + std::to_string(i) + "]", mmoe.expert_hidden(i));
      }
      for (int i = 0; i < mmoe.tower_hidden_size(); ++i) {
        p->Positive("model.mmoe.tower_hidden[" + std::to_string(i) + "]", mmoe.tower_hidden(i));
      }
      break;
    }
  }
}

void ValidateAdagrad(const std::string& field, const config::Adagrad& a, Problems* p) {
  p->Positive(field + ".learning_rate", a.learning_rate());
  // Zero would make the first Adagrad step 0/0.
  p->Positive(field + ".initial_accumulator", a.initial_accumulator());
}

void ValidateTrainServerCluster(const config::Config& config, Problems* p) {
  const config::TrainConfig& train = config.train();
  p->Positive("train.batch_size", train.batch_size());
  if (train.epochs() < 1)
    p->Add("train.epochs", "must be >= 1 (got " + std::to_string(train.epochs()) + ")");
  p->Positive("train.eval_batch_size", train.eval_batch_size());
  p->Positive("train.progress_interval_sec", train.progress_interval_sec());
  p->Positive("train.max_inflight_pushes", train.max_inflight_pushes());

  const config::ServerConfig& server = config.server();
  const config::SparseOptimizer& sparse = server.sparse_optimizer();
  if (sparse.has_adagrad()) ValidateAdagrad("server.sparse_optimizer.adagrad", sparse.adagrad(), p);
  if (sparse.has_sgd()) {
    p->Positive("server.sparse_optimizer.sgd.learning_rate", sparse.sgd().learning_rate());
  }
  if (sparse.has_adam()) {
    const config::Adam& adam = sparse.adam();
    p->Positive("server.sparse_optimizer.adam.learning_rate", adam.learning_rate());
    if (!(adam.beta1() >= 0 && adam.beta1() < 1)) {
      p->Add("server.sparse_optimizer.adam.beta1", "must be in [0, 1)");
    }
    if (!(adam.beta2() >= 0 && adam.beta2() < 1)) {
      p->Add("server.sparse_optimizer.adam.beta2", "must be in [0, 1)");
    }
    p->Positive("server.sparse_optimizer.adam.epsilon", adam.epsilon());
  }
  if (sparse.has_ftrl()) {
    const config::Ftrl& ftrl = sparse.ftrl();
    p->Positive("server.sparse_optimizer.ftrl.alpha", ftrl.alpha());
    p->NonNegative("server.sparse_optimizer.ftrl.beta", ftrl.beta());
    p->NonNegative("server.sparse_optimizer.ftrl.l1", ftrl.l1());
    p->NonNegative("server.sparse_optimizer.ftrl.l2", ftrl.l2());
  }
  // The upper bounds are the sparse table's (ps/table/sparse_table.h): 16-bit
  // admission counters, 32-bit steps and row numbers.
  p->NonNegative("server.admission_min_count", server.admission_min_count());
  if (server.admission_min_count() > 65535) {
    p->Add("server.admission_min_count",
           "must be <= 65535 (got " + std::to_string(server.admission_min_count()) + ")");
  }
  p->NonNegative("server.evict_after_steps", server.evict_after_steps());
  if (server.evict_after_steps() >= (int64_t{1} << 31)) {
    p->Add("server.evict_after_steps",
           "must be < 2^31 (got " + std::to_string(server.evict_after_steps()) + ")");
  }
  p->NonNegative("server.max_rows", server.max_rows());
  if (server.max_rows() > (int64_t{1} << 32) - 2) {
    p->Add("server.max_rows",
           "must be <= 2^32 - 2 (got " + std::to_string(server.max_rows()) + ")");
  }
  if (server.shard_threads() < 1 || server.shard_threads() > kMaxShardThreads) {
    p->Add("server.shard_threads", "must be in [1, " + std::to_string(kMaxShardThreads) +
                                       "] (got " + std::to_string(server.shard_threads()) + ")");
  }
  const config::DenseOptimizer& dense = server.dense_optimizer();
  if (dense.has_adagrad()) ValidateAdagrad("server.dense_optimizer.adagrad", dense.adagrad(), p);
  if (dense.has_adam()) {
    const config::Adam& adam = dense.adam();
    p->Positive("server.dense_optimizer.adam.learning_rate", adam.learning_rate());
    if (!(adam.beta1() >= 0 && adam.beta1() < 1)) {
      p->Add("server.dense_optimizer.adam.beta1", "must be in [0, 1)");
    }
    if (!(adam.beta2() >= 0 && adam.beta2() < 1)) {
      p->Add("server.dense_optimizer.adam.beta2", "must be in [0, 1)");
    }
    p->Positive("server.dense_optimizer.adam.epsilon", adam.epsilon());
  }
  p->NonNegative("server.embedding_init_scale", server.embedding_init_scale());

  const config::ClusterConfig& cluster = config.cluster();
  p->Positive("cluster.request_timeout_ms", cluster.request_timeout_ms());
  p->Positive("cluster.register_timeout_ms", cluster.register_timeout_ms());
  p->Positive("cluster.barrier_timeout_ms", cluster.barrier_timeout_ms());
  p->Positive("cluster.heartbeat_interval_ms", cluster.heartbeat_interval_ms());
  p->Positive("cluster.heartbeat_timeout_ms", cluster.heartbeat_timeout_ms());
  if (cluster.heartbeat_timeout_ms() <= cluster.heartbeat_interval_ms()) {
    // A live node would be declared dead between two of its heartbeats.
    p->Add("cluster.heartbeat_timeout_ms", "must be > cluster.heartbeat_interval_ms");
  }
}

}  // namespace

StatusOr<config::Config> LoadConfig(const std::string& path,
                                    const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Status::NotFound("config file '" + path + "': no such file");
  }
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status::IoError("config file '" + path + "': not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) {
    return Status::IoError("config file '" + path + "': cannot open: " + std::strerror(errno));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::IoError("config file '" + path + "': read failed");

  config::Config config;
  MTPS_RETURN_IF_ERROR(ParseText(text.str(), path, &config));

  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (config.has_data()) {
    config::DataConfig* data = config.mutable_data();
    if (data->has_train_path()) data->set_train_path(ResolveAgainst(dir, data->train_path()));
    if (data->has_test_path()) data->set_test_path(ResolveAgainst(dir, data->test_path()));
    if (data->has_train_common_path()) {
      data->set_train_common_path(ResolveAgainst(dir, data->train_common_path()));
    }
    if (data->has_test_common_path()) {
      data->set_test_common_path(ResolveAgainst(dir, data->test_common_path()));
    }
  }

  for (const std::string& assignment : overrides)
    MTPS_RETURN_IF_ERROR(ApplyOverride(assignment, &config));

  Status valid = ValidateConfig(config);
  if (!valid.ok()) return Status::InvalidArgument(path + ": " + valid.message());
  return config;
}

Status ApplyOverride(const std::string& assignment, config::Config* config) {
  config::Config copy = *config;  // Small; keeps *config unchanged on error.
  Status s = ApplyOverrideUnchecked(assignment, &copy);
  if (!s.ok()) return Status::InvalidArgument("override '" + assignment + "': " + s.message());
  config->Swap(&copy);
  return Status::OK();
}

Status ValidateConfig(const config::Config& config) {
  Problems problems;
  ValidateData(config.data(), &problems);
  ValidateModel(config, &problems);
  ValidateTrainServerCluster(config, &problems);
  if (config.train().staleness() < 0) {
    problems.Add("train.staleness",
                 "must be >= 0, got " + std::to_string(config.train().staleness()));
  }
  if (config.train().throttle_ms() < 0) {
    problems.Add("train.throttle_ms",
                 "must be >= 0, got " + std::to_string(config.train().throttle_ms()));
  }
  if (config.eval().auc_bins() < 0 || config.eval().auc_bins() > (1 << 24)) {
    problems.Add("eval.auc_bins",
                 "must be in [0, 16777216], got " + std::to_string(config.eval().auc_bins()));
  }
  return problems.ToStatus();
}

std::string ConfigToText(const config::Config& config) {
  std::string out;
  pb::TextFormat::Printer printer;
  printer.PrintToString(config, &out);
  return out;
}

}  // namespace mtps
