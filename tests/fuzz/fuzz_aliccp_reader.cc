// Fuzzes the raw Ali-CCP reader (DataConfig.format ALICCP_RAW: the
// skeleton file merge-joined with the common-features file,
// worker/data/aliccp_reader.h) through ExampleReader::Open. The input is the
// two files separated by kFileSeparator (tests/fuzz/fuzz_support.h):
// skeleton first, then common features (no separator: an empty common
// file). The config is the data section of configs/aliccp_esmm_fieldid.pbtxt
// with format ALICCP_RAW (its slots are the raw release's field ids) and
// labels click and conversion. Plain or gzip (by content). Every batch is
// checked against the schema, and files read without error must read the
// same again after Rewind (tests/fuzz/reader_fuzz.h).
//
// Run: tests/run_fuzz, or by hand
//   build-fuzz/tests/fuzz/fuzz_aliccp_reader -dict=tests/fuzz/mtps.dict \
//     build-fuzz/fuzz-corpus/fuzz_aliccp_reader tests/fuzz/corpus/fuzz_aliccp_reader
#include <cstdint>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/reader_fuzz.h"

namespace {

mtps::config::DataConfig AliccpRawConfig() {
  mtps::config::DataConfig data =
      mtps::fuzz::ShippedDataConfig(MTPS_SOURCE_DIR, "aliccp_esmm_fieldid.pbtxt");
  data.set_format(mtps::config::DataConfig::ALICCP_RAW);
  for (mtps::config::LabelSpec& label : *data.mutable_labels()) {
    if (label.column() == "purchase") label.set_column("conversion");
  }
  return data;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mtps::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mtps;
  static const config::DataConfig base = AliccpRawConfig();
  const std::vector<std::string_view> files =
      fuzz::Split(fuzz::AsView(data, size), fuzz::kFileSeparator);
  const auto skeleton = fuzz::ScratchDir::Get() / "sample_skeleton.csv";
  const auto common = fuzz::ScratchDir::Get() / "common_features.csv";
  fuzz::WriteFileOrDie(skeleton, files[0]);
  fuzz::WriteFileOrDie(common, files.size() > 1 ? files[1] : std::string_view());
  config::DataConfig config = base;
  config.set_train_path(skeleton.string());
  config.set_train_common_path(common.string());
  fuzz::OpenAndReadTwice(config);
  return 0;
}
