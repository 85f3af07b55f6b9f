// What the fuzz targets of tests/fuzz share: the input layout of the
// multi-part targets (records split at a separator), a scratch directory per
// fuzzer process for the targets that read files, and quiet logging.
//
// Separators rather than length prefixes: a mutation that changes one
// record's length leaves the others where they were, so the fuzzer keeps
// most of an input's structure. The separators are in tests/fuzz/mtps.dict.
#ifndef MTPS_TESTS_FUZZ_FUZZ_SUPPORT_H_
#define MTPS_TESTS_FUZZ_FUZZ_SUPPORT_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <glog/logging.h>
#include <google/protobuf/stubs/logging.h>

namespace mtps {
namespace fuzz {

// Between the frames of one message (fuzz_wire, fuzz_server).
inline constexpr std::string_view kFrameSeparator("\0MTPSFRM", 8);
// Between messages (fuzz_server).
inline constexpr std::string_view kMessageSeparator("\0MTPSMSG", 8);
// Between the files of one input (fuzz_aliccp_reader, fuzz_checkpoint_store)
// and between a config's text and its overrides (fuzz_config).
inline constexpr std::string_view kFileSeparator("\0MTPSFILE", 9);

// Fails the run with `what` (a broken invariant, not a crash of the code
// itself): libFuzzer reports the abort and saves the input.
[[noreturn]] inline void Fail(const std::string& what) {
  std::fprintf(stderr, "mtps fuzz: invariant broken: %s\n", what.c_str());
  std::abort();
}

// Splits `input` at every `separator` (n separators give n + 1 records,
// some possibly empty).
inline std::vector<std::string_view> Split(std::string_view input, std::string_view separator) {
  if (separator.empty()) Fail("Split at an empty separator");
  std::vector<std::string_view> out;
  for (;;) {
    const size_t at = input.find(separator);
    if (at == std::string_view::npos) break;
    out.push_back(input.substr(0, at));
    input.remove_prefix(at + separator.size());
  }
  out.push_back(input);
  return out;
}

// Joins records with `separator` (what the seed writer uses).
inline std::string Join(const std::vector<std::string>& records, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < records.size(); ++i) {
    if (i > 0) out.append(separator);
    out += records[i];
  }
  return out;
}

inline std::string_view AsView(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// A directory of this fuzzer process, created on first use under
// $TMPDIR (or /tmp) and removed at exit. A crashing run leaves it behind;
// its name says whose it is.
class ScratchDir {
 public:
  static const std::filesystem::path& Get() {
    static const ScratchDir dir;
    return dir.path_;
  }

 private:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/mtps_fuzz_XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      std::perror("mtps fuzz: mkdtemp");
      std::abort();
    }
    path_ = templ;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::filesystem::path path_;
};

// Writes `bytes` to `path` (replacing it); aborts when it cannot (the
// fuzzer's own environment is broken, not the code under test).
inline void WriteFileOrDie(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "mtps fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

// Only FATAL reaches stderr: a rejected input is logged by the code under
// test at WARNING or ERROR, millions of times in a run. CHECK failures
// still print (and abort, which the fuzzer reports as a crash).
// Protobuf's own log lines (e.g. "invalid UTF-8" when a fuzzed config with
// such a string is serialized; proto2 strings are bytes to mtps) go too.
inline void QuietLogging() {
  FLAGS_minloglevel = google::GLOG_FATAL;
  google::protobuf::SetLogHandler(nullptr);
}

}  // namespace fuzz
}  // namespace mtps

#endif  // MTPS_TESTS_FUZZ_FUZZ_SUPPORT_H_
