// Config loading (text format with located errors), dotted-path overrides,
// validation (the train, cluster and eval rules, then the owners' checks) and
// printing. See common/config/config.h.
#include "common/config/config.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string_view>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
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

// The message fields protobuf was inside when it stopped at an error, e.g.
// "data.labels[1]", from its ParseInfoTree: the parser creates a field's
// nested tree when the field's message body starts and records the field's
// location only once the body is complete, so the open messages are those
// with a nested tree and no location yet (for a repeated field, its last
// nested tree when it has more trees than locations). *innermost is the type
// of the innermost open message (`type` when none is open).
// Limit: with the list syntax of a repeated message field
// (`labels: [{...}, {...}]`) protobuf records one location for the whole
// list, so an error after such a list may be placed in its last element.
std::string OpenMessagePath(const pb::TextFormat::ParseInfoTree* tree, const pb::Descriptor* type,
                            const pb::Descriptor** innermost) {
  std::string path;
  while (tree != nullptr) {
    const pb::TextFormat::ParseInfoTree* open = nullptr;
    for (int i = 0; i < type->field_count() && open == nullptr; ++i) {
      const pb::FieldDescriptor* f = type->field(i);
      if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) continue;
      std::string name = f->name();
      if (!f->is_repeated()) {
        open = tree->GetTreeForNested(f, -1);
        if (open != nullptr && tree->GetLocation(f, -1).line >= 0) open = nullptr;
      } else {
        int trees = 0;
        while (tree->GetTreeForNested(f, trees) != nullptr) ++trees;
        int locations = 0;
        while (locations < trees && tree->GetLocation(f, locations).line >= 0) ++locations;
        if (trees > locations) {
          open = tree->GetTreeForNested(f, trees - 1);
          name += "[" + std::to_string(trees - 1) + "]";
        }
      }
      if (open != nullptr) {
        path += (path.empty() ? "" : ".") + name;
        type = f->message_type();
      }
    }
    tree = open;
  }
  *innermost = type;
  return path;
}

// Ignores the errors of the tokenizer FieldBefore runs (the parser has
// reported them).
class SilentErrors : public pb::io::ErrorCollector {
 public:
  void AddError(int, pb::io::ColumnNumber, const std::string&) override {}
};

// The field whose value protobuf was reading when it stopped at (line,
// column) (0-based, as protobuf counts): the last identifier followed by ':'
// before that point with no '{', '}', '<' or '>' in between, e.g.
// "embedding_dim" in `embedding_dim: eight`. This is the one thing the
// ParseInfoTree cannot tell, since the parser records a field only once its
// value parsed ("Expected integer, got: eight" names no field). The text is
// read with protobuf's own tokenizer. "" if there is none.
std::string FieldBefore(const std::string& text, int line, int column) {
  pb::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
  SilentErrors errors;
  pb::io::Tokenizer tokenizer(&input, &errors);
  tokenizer.set_comment_style(pb::io::Tokenizer::SH_COMMENT_STYLE);
  tokenizer.set_allow_f_after_float(true);
  tokenizer.set_require_space_after_number(false);
  std::string field;
  std::string identifier;  // the previous token, if an identifier
  while (tokenizer.Next()) {
    const pb::io::Tokenizer::Token& token = tokenizer.current();
    if (token.line > line || (token.line == line && token.column >= column)) break;
    if (token.type == pb::io::Tokenizer::TYPE_SYMBOL) {
      if (token.text == ":") {
        field = identifier;
      } else if (token.text == "{" || token.text == "}" || token.text == "<" || token.text == ">") {
        field.clear();
      }
    }
    identifier = token.type == pb::io::Tokenizer::TYPE_IDENTIFIER ? token.text : "";
  }
  return field;
}

// The name in `message` after `prefix` up to the next '"' ("" if absent).
std::string QuotedAfter(const std::string& message, const std::string& prefix) {
  const size_t start = message.find(prefix);
  if (start == std::string::npos) return "";
  const size_t begin = start + prefix.size();
  const size_t end = message.find('"', begin);
  return end == std::string::npos ? "" : message.substr(begin, end - begin);
}

// Records every parse error of one text-format document as
// "<source>:<line>:<column>: field '<path>': <message>" (1-based).
class LocatedErrorCollector : public pb::io::ErrorCollector {
 public:
  // `tree` is the ParseInfoTree the parser writes locations of `type` to.
  LocatedErrorCollector(std::string source, const std::string* text,
                        const pb::TextFormat::ParseInfoTree* tree, const pb::Descriptor* type)
      : source_(std::move(source)), text_(text), tree_(tree), type_(type) {}

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
    const std::string field = FieldPath(line, column, message);
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
  // The dotted path of the field an error at protobuf's (line, column) is
  // about: the open messages (OpenMessagePath), then the field protobuf's
  // message names (an unknown one as written: 'no field named "x"'; a known
  // one: 'for field "format"'), else the field whose value was being read
  // (FieldBefore), if it is a field of the innermost open message. "" when
  // it cannot be told.
  std::string FieldPath(int line, int column, const std::string& message) const {
    const pb::Descriptor* innermost = nullptr;
    std::string path = OpenMessagePath(tree_, type_, &innermost);
    std::string leaf = QuotedAfter(message, "no field named \"");
    if (leaf.empty()) {
      std::string named = QuotedAfter(message, "field \"");
      if (named.empty()) named = FieldBefore(*text_, line, column);
      if (!named.empty() && innermost->FindFieldByName(named) != nullptr) leaf = named;
    }
    if (!leaf.empty()) path += (path.empty() ? "" : ".") + leaf;
    return path;
  }

  const std::string source_;
  const std::string* text_;
  const pb::TextFormat::ParseInfoTree* tree_;
  const pb::Descriptor* type_;
  std::vector<std::string> errors_;
};

// Parses `text` into *message (cleared first); errors are located in `source`.
Status ParseText(const std::string& text, const std::string& source, pb::Message* message) {
  pb::TextFormat::ParseInfoTree tree;
  LocatedErrorCollector errors(source, &text, &tree, message->GetDescriptor());
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(&tree);
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

// The checks of the sections no other library owns: train, cluster, eval.
void ValidateTrainClusterEval(const config::Config& config, ConfigProblems* p) {
  const config::TrainConfig& train = config.train();
  p->Positive("train.batch_size", train.batch_size());
  if (train.epochs() < 1)
    p->Add("train.epochs", "must be >= 1 (got " + std::to_string(train.epochs()) + ")");
  p->Positive("train.eval_batch_size", train.eval_batch_size());
  p->Positive("train.progress_interval_sec", train.progress_interval_sec());
  p->Positive("train.max_inflight_pushes", train.max_inflight_pushes());
  if (train.staleness() < 0) {
    p->Add("train.staleness", "must be >= 0, got " + std::to_string(train.staleness()));
  }
  if (train.throttle_ms() < 0) {
    p->Add("train.throttle_ms", "must be >= 0, got " + std::to_string(train.throttle_ms()));
  }
  if (train.read_ahead_batches() < 0 || train.read_ahead_batches() > 1024) {
    p->Add("train.read_ahead_batches", "must be in [0, 1024] (0: no reading thread), got " +
                                           std::to_string(train.read_ahead_batches()));
  }
  if (train.dense_sync_batches() < 1 || train.dense_sync_batches() > 1000000) {
    p->Add("train.dense_sync_batches",
           "must be in [1, 1000000] (1: the servers step the dense parameters), got " +
               std::to_string(train.dense_sync_batches()));
  } else if (train.dense_sync_batches() > 1 && train.consistency() != config::TrainConfig::ASYNC) {
    p->Add("train.dense_sync_batches",
           "> 1 (the workers' local dense steps) needs train.consistency ASYNC, got " +
               config::TrainConfig::Consistency_Name(train.consistency()));
  }
  if (train.compute_threads() < 0 || train.compute_threads() > 1024) {
    p->Add("train.compute_threads", "must be in [0, 1024] (0: the launcher's choice), got " +
                                        std::to_string(train.compute_threads()));
  }

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
  if (cluster.metrics_port() < -1 || cluster.metrics_port() > 65535) {
    p->Add("cluster.metrics_port",
           "must be -1 (no metrics server), 0 (any free port) or a port "
           "in [1, 65535], got " +
               std::to_string(cluster.metrics_port()));
  }
  const config::RetryConfig& retry = cluster.retry();
  p->Positive("cluster.retry.min_interval_ms", retry.min_interval_ms());
  p->NonNegative("cluster.retry.max_resends", retry.max_resends());
  p->Positive("cluster.retry.held_interval_ms", retry.held_interval_ms());
  if (retry.max_interval_ms() < retry.min_interval_ms()) {
    p->Add("cluster.retry.max_interval_ms",
           "must be >= cluster.retry.min_interval_ms (" + std::to_string(retry.min_interval_ms()) +
               "), got " + std::to_string(retry.max_interval_ms()));
  }

  if (train.counter_key() != 0 && !config.server().sparse_optimizer().has_sgd()) {
    p->Add("train.counter_key",
           "needs server.sparse_optimizer.sgd (the counter adds exactly 1 "
           "per push only under SGD)");
  }

  const config::CheckpointConfig& ckpt = config.checkpoint();
  if (!(ckpt.interval_seconds() >= 0)) {
    p->Add("checkpoint.interval_seconds",
           "must be >= 0 (0: off), got " + std::to_string(ckpt.interval_seconds()));
  }
  if (ckpt.interval_steps() < 0) {
    p->Add("checkpoint.interval_steps",
           "must be >= 0 (0: off), got " + std::to_string(ckpt.interval_steps()));
  }
  if (ckpt.full_every() < 1) {
    p->Add("checkpoint.full_every",
           "must be >= 1 (1: every checkpoint full), got " + std::to_string(ckpt.full_every()));
  }
  if (ckpt.keep() < 1) {
    p->Add("checkpoint.keep", "must be >= 1, got " + std::to_string(ckpt.keep()));
  }

  if (config.eval().auc_bins() < 0 || config.eval().auc_bins() > (1 << 24)) {
    p->Add("eval.auc_bins",
           "must be in [0, 16777216], got " + std::to_string(config.eval().auc_bins()));
  }
}

}  // namespace

StatusOr<config::Config> LoadConfig(const std::string& path,
                                    const std::vector<std::string>& overrides,
                                    const std::vector<ConfigCheck>& checks) {
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

  Status valid = ValidateConfig(config, checks);
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

Status ValidateConfig(const config::Config& config, const std::vector<ConfigCheck>& checks) {
  ConfigProblems problems;
  ValidateTrainClusterEval(config, &problems);
  RunConfigChecks(config, checks, &problems);
  return problems.ToStatus();
}

std::string ConfigToText(const config::Config& config) {
  std::string out;
  pb::TextFormat::Printer printer;
  printer.PrintToString(config, &out);
  return out;
}

std::string ModelKindName(const config::ModelConfig& model) {
  const pb::OneofDescriptor* kind = config::ModelConfig::descriptor()->FindOneofByName("kind");
  CHECK(kind != nullptr) << "config::ModelConfig has no oneof 'kind'";
  const pb::FieldDescriptor* set = model.GetReflection()->GetOneofFieldDescriptor(model, kind);
  return set != nullptr ? set->name() : "";
}

}  // namespace mtps
