// Fuzzes the census reader (DataConfig.format CENSUS_RAW: worker/data/
// census_format.h, text_reader.h, feature_extractor.h) through
// ExampleReader::Open, with the data section of configs/census_mmoe.pbtxt.
// The input is the whole data file (plain, or gzip when it starts with
// gzip's magic: the reader detects it by content). Every batch is checked
// against the schema, and a file read without error must read the same
// again after Rewind (tests/fuzz/reader_fuzz.h).
//
// Run: tests/run_fuzz, or by hand
//   build-fuzz/tests/fuzz/fuzz_census_reader -dict=tests/fuzz/mtps.dict \
//     build-fuzz/fuzz-corpus/fuzz_census_reader tests/fuzz/corpus/fuzz_census_reader
#include <cstdint>

#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/reader_fuzz.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mtps::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mtps;
  static const config::DataConfig base =
      fuzz::ShippedDataConfig(MTPS_SOURCE_DIR, "census_mmoe.pbtxt");
  const auto path = fuzz::ScratchDir::Get() / "census.data";
  fuzz::WriteFileOrDie(path, fuzz::AsView(data, size));
  config::DataConfig config = base;
  config.set_train_path(path.string());
  fuzz::OpenAndReadTwice(config);
  return 0;
}
