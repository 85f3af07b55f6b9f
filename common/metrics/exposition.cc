// Snapshot validation, merging and the Prometheus text format (see
// common/metrics/exposition.h).
#include "common/metrics/exposition.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <set>

namespace mtps {
namespace {

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Printable text for an error message: at most 64 bytes, non-printing bytes as '?'.
std::string Shown(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  if (s.size() > 64) out += "...";
  return out;
}

const char* TypeText(wire::MetricFamily::Type type) {
  switch (type) {
    case wire::MetricFamily::COUNTER:
      return "counter";
    case wire::MetricFamily::GAUGE:
      return "gauge";
    case wire::MetricFamily::HISTOGRAM:
      return "histogram";
    default:
      return "untyped";
  }
}

// `{a="x",b="y"` plus `extra` (e.g. `le="0.5"`) and `}`; nothing for no labels.
void AppendLabels(const wire::MetricSeries& series, const std::string& extra, std::string* out) {
  if (series.labels_size() == 0 && extra.empty()) return;
  out->push_back('{');
  bool first = true;
  for (const wire::MetricLabel& l : series.labels()) {
    if (!first) out->push_back(',');
    first = false;
    *out += l.name();
    *out += "=\"";
    *out += EscapeLabelValue(l.value());
    out->push_back('"');
  }
  if (!extra.empty()) {
    if (!first) out->push_back(',');
    *out += extra;
  }
  out->push_back('}');
}

void AppendSample(const std::string& name, const wire::MetricSeries& series,
                  const std::string& extra, const std::string& value, std::string* out) {
  *out += name;
  AppendLabels(series, extra, out);
  out->push_back(' ');
  *out += value;
  out->push_back('\n');
}

std::string FormatCount(uint64_t n) { return std::to_string(n); }

Status CheckSeries(const wire::MetricFamily& f, const wire::MetricSeries& s, int index,
                   const std::set<std::string>& reserved) {
  const std::string where = "metric " + f.name() + " series " + std::to_string(index);
  if (s.labels_size() > kMaxSeriesLabels) {
    return Status::InvalidArgument(where + ": " + std::to_string(s.labels_size()) +
                                   " labels, at most " + std::to_string(kMaxSeriesLabels));
  }
  std::set<std::string> names;
  for (const wire::MetricLabel& l : s.labels()) {
    if (!IsValidLabelName(l.name())) {
      return Status::InvalidArgument(where + ": invalid label name '" + Shown(l.name()) + "'");
    }
    if (reserved.count(l.name()) != 0) {
      return Status::InvalidArgument(where + ": label '" + l.name() +
                                     "' is reserved (the scheduler adds it)");
    }
    if (!names.insert(l.name()).second) {
      return Status::InvalidArgument(where + ": label '" + l.name() + "' given twice");
    }
    if (l.value().size() > kMaxLabelValueBytes) {
      return Status::InvalidArgument(where + ": label '" + l.name() + "' value of " +
                                     std::to_string(l.value().size()) + " bytes, at most " +
                                     std::to_string(kMaxLabelValueBytes));
    }
  }
  if (f.type() == wire::MetricFamily::HISTOGRAM) {
    if (s.has_value()) return Status::InvalidArgument(where + ": a histogram series has no value");
    if (s.bucket_counts_size() != f.bucket_bounds_size() + 1) {
      return Status::InvalidArgument(
          where + ": " + std::to_string(s.bucket_counts_size()) + " bucket counts for " +
          std::to_string(f.bucket_bounds_size()) + " bounds (needs one more, for +Inf)");
    }
    if (!std::isfinite(s.sum())) return Status::InvalidArgument(where + ": sum is not finite");
    uint64_t total = 0;
    for (uint64_t c : s.bucket_counts()) {
      if (__builtin_add_overflow(total, c, &total)) {
        return Status::InvalidArgument(where + ": bucket counts add up past 2^64");
      }
    }
    return Status::OK();
  }
  if (s.bucket_counts_size() > 0 || s.has_sum()) {
    return Status::InvalidArgument(where + ": buckets or a sum outside a histogram");
  }
  if (f.type() == wire::MetricFamily::COUNTER && !(std::isfinite(s.value()) && s.value() >= 0)) {
    return Status::InvalidArgument(where + ": a counter must be finite and >= 0, got " +
                                   FormatMetricValue(s.value()));
  }
  return Status::OK();
}

// The series' labels as one comparable key.
std::vector<std::pair<std::string, std::string>> LabelKey(const wire::MetricSeries& s) {
  std::vector<std::pair<std::string, std::string>> key;
  for (const wire::MetricLabel& l : s.labels()) key.emplace_back(l.name(), l.value());
  std::sort(key.begin(), key.end());
  return key;
}

}  // namespace

bool IsValidMetricName(std::string_view name) {
  if (name.empty() || name.size() > kMaxMetricNameBytes) return false;
  if (!IsNameStart(name[0]) && name[0] != ':') return false;
  for (char c : name) {
    if (!IsNameStart(c) && !IsDigit(c) && c != ':') return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.size() > kMaxMetricNameBytes || !IsNameStart(name[0])) return false;
  if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return false;
  for (char c : name) {
    if (!IsNameStart(c) && !IsDigit(c)) return false;
  }
  return true;
}

Status ValidateSnapshot(const wire::MetricsSnapshot& snapshot,
                        const std::vector<std::string>& reserved_labels) {
  const size_t bytes = snapshot.ByteSizeLong();
  if (bytes > kMaxSnapshotBytes) {
    return Status::InvalidArgument("metrics snapshot of " + std::to_string(bytes) +
                                   " bytes, at most " + std::to_string(kMaxSnapshotBytes));
  }
  if (snapshot.families_size() > kMaxSnapshotFamilies) {
    return Status::InvalidArgument("metrics snapshot of " +
                                   std::to_string(snapshot.families_size()) +
                                   " families, at most " + std::to_string(kMaxSnapshotFamilies));
  }
  const std::set<std::string> reserved(reserved_labels.begin(), reserved_labels.end());
  std::set<std::string> names;
  int total_series = 0;
  for (int i = 0; i < snapshot.families_size(); ++i) {
    const wire::MetricFamily& f = snapshot.families(i);
    if (!IsValidMetricName(f.name())) {
      return Status::InvalidArgument("metric family " + std::to_string(i) + ": invalid name '" +
                                     Shown(f.name()) + "'");
    }
    if (!names.insert(f.name()).second) {
      return Status::InvalidArgument("metric " + f.name() + " appears twice");
    }
    if (f.type() != wire::MetricFamily::COUNTER && f.type() != wire::MetricFamily::GAUGE &&
        f.type() != wire::MetricFamily::HISTOGRAM) {
      return Status::InvalidArgument("metric " + f.name() + ": type must be counter, gauge or " +
                                     "histogram");
    }
    if (f.help().size() > kMaxHelpBytes) {
      return Status::InvalidArgument("metric " + f.name() + ": help of " +
                                     std::to_string(f.help().size()) + " bytes, at most " +
                                     std::to_string(kMaxHelpBytes));
    }
    if (f.type() == wire::MetricFamily::HISTOGRAM) {
      if (f.bucket_bounds_size() < 1 || f.bucket_bounds_size() > kMaxHistogramBuckets) {
        return Status::InvalidArgument(
            "histogram " + f.name() + ": needs 1 to " + std::to_string(kMaxHistogramBuckets) +
            " bucket bounds, got " + std::to_string(f.bucket_bounds_size()));
      }
      for (int b = 0; b < f.bucket_bounds_size(); ++b) {
        const double bound = f.bucket_bounds(b);
        if (!std::isfinite(bound) || (b > 0 && !(bound > f.bucket_bounds(b - 1)))) {
          return Status::InvalidArgument(
              "histogram " + f.name() + ": bucket bounds must be finite and increasing (bound " +
              std::to_string(b) + " is " + FormatMetricValue(bound) + ")");
        }
      }
    } else if (f.bucket_bounds_size() > 0) {
      return Status::InvalidArgument("metric " + f.name() + ": bucket bounds outside a histogram");
    }
    total_series += f.series_size();
    if (total_series > kMaxSnapshotSeries) {
      return Status::InvalidArgument("metrics snapshot of more than " +
                                     std::to_string(kMaxSnapshotSeries) + " series");
    }
    std::set<std::vector<std::pair<std::string, std::string>>> label_sets;
    for (int s = 0; s < f.series_size(); ++s) {
      MTPS_RETURN_IF_ERROR(CheckSeries(f, f.series(s), s, reserved));
      if (!label_sets.insert(LabelKey(f.series(s))).second) {
        return Status::InvalidArgument("metric " + f.name() + " series " + std::to_string(s) +
                                       ": the same labels as an earlier series");
      }
    }
  }
  return Status::OK();
}

wire::MetricsSnapshot MergeSnapshots(const std::vector<LabelledSnapshot>& parts,
                                     std::vector<std::string>* conflicts) {
  std::map<std::string, wire::MetricFamily> merged;
  for (const LabelledSnapshot& part : parts) {
    if (part.snapshot == nullptr) continue;
    for (const wire::MetricFamily& f : part.snapshot->families()) {
      auto [it, added] = merged.try_emplace(f.name());
      wire::MetricFamily& into = it->second;
      if (added) {
        into.set_name(f.name());
        into.set_help(f.help());
        into.set_type(f.type());
        *into.mutable_bucket_bounds() = f.bucket_bounds();
      } else if (into.type() != f.type() ||
                 !std::equal(into.bucket_bounds().begin(), into.bucket_bounds().end(),
                             f.bucket_bounds().begin(), f.bucket_bounds().end())) {
        if (conflicts != nullptr) {
          std::string who;
          for (const auto& [name, value] : part.labels) who += " " + name + "=" + value;
          conflicts->push_back("metric " + f.name() + " of" + who + " is a " + TypeText(f.type()) +
                               (into.type() == f.type() ? " with other bucket bounds" : "") +
                               " but was a " + TypeText(into.type()) + " before; left out");
        }
        continue;
      }
      for (const wire::MetricSeries& s : f.series()) {
        wire::MetricSeries* out = into.add_series();
        for (const auto& [name, value] : part.labels) {
          wire::MetricLabel* l = out->add_labels();
          l->set_name(name);
          l->set_value(value);
        }
        for (const wire::MetricLabel& l : s.labels()) *out->add_labels() = l;
        if (s.has_value()) out->set_value(s.value());
        *out->mutable_bucket_counts() = s.bucket_counts();
        if (s.has_sum()) out->set_sum(s.sum());
      }
    }
  }
  wire::MetricsSnapshot out;
  for (auto& [name, f] : merged) *out.add_families() = std::move(f);
  return out;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), v);
  if (ec != std::errc()) return std::to_string(v);
  return std::string(buffer, end);
}

std::string RenderText(const wire::MetricsSnapshot& snapshot) {
  std::string out;
  for (const wire::MetricFamily& f : snapshot.families()) {
    out += "# HELP " + f.name() + " " + EscapeHelp(f.help()) + "\n";
    out += "# TYPE " + f.name() + " " + TypeText(f.type()) + "\n";
    for (const wire::MetricSeries& s : f.series()) {
      if (f.type() != wire::MetricFamily::HISTOGRAM) {
        AppendSample(f.name(), s, "", FormatMetricValue(s.value()), &out);
        continue;
      }
      // Cumulative counts; a malformed series (not from ValidateSnapshot)
      // prints what it has.
      uint64_t cumulative = 0;
      const std::string bucket = f.name() + "_bucket";
      for (int b = 0; b < f.bucket_bounds_size(); ++b) {
        if (b < s.bucket_counts_size()) cumulative += s.bucket_counts(b);
        AppendSample(bucket, s, "le=\"" + FormatMetricValue(f.bucket_bounds(b)) + "\"",
                     FormatCount(cumulative), &out);
      }
      for (int b = f.bucket_bounds_size(); b < s.bucket_counts_size(); ++b) {
        cumulative += s.bucket_counts(b);
      }
      AppendSample(bucket, s, "le=\"+Inf\"", FormatCount(cumulative), &out);
      AppendSample(f.name() + "_sum", s, "", FormatMetricValue(s.sum()), &out);
      AppendSample(f.name() + "_count", s, "", FormatCount(cumulative), &out);
    }
  }
  return out;
}

bool SumOfFamily(const wire::MetricsSnapshot& snapshot, std::string_view name, double* sum) {
  for (const wire::MetricFamily& f : snapshot.families()) {
    if (f.name() != name) continue;
    double total = 0;
    for (const wire::MetricSeries& s : f.series()) {
      total += f.type() == wire::MetricFamily::HISTOGRAM ? s.sum() : s.value();
    }
    *sum = total;
    return true;
  }
  return false;
}

}  // namespace mtps
