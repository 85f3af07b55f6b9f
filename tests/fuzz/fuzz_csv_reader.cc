// Fuzzes the CSV reader (DataConfig.format CSV: worker/data/csv_format.h,
// text_reader.h, feature_extractor.h) through ExampleReader::Open. Each
// input is read as the data file of two shipped configs: the Ali-CCP sample
// (configs/aliccp_esmm.pbtxt: categorical and dense columns, labels click
// and purchase) and AliExpress (configs/aliexpress_esmm.pbtxt: 16
// categorical, 63 dense columns), so a header that fits either gets to its
// data lines. Plain or gzip (by content). Every batch is checked against
// the schema, and a file read without error must read the same again after
// Rewind (tests/fuzz/reader_fuzz.h).
//
// Run: tests/run_fuzz, or by hand
//   build-fuzz/tests/fuzz/fuzz_csv_reader -dict=tests/fuzz/mtps.dict \
//     build-fuzz/fuzz-corpus/fuzz_csv_reader tests/fuzz/corpus/fuzz_csv_reader
#include <cstdint>

#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/reader_fuzz.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mtps::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mtps;
  static const config::DataConfig aliccp =
      fuzz::ShippedDataConfig(MTPS_SOURCE_DIR, "aliccp_esmm.pbtxt");
  static const config::DataConfig aliexpress =
      fuzz::ShippedDataConfig(MTPS_SOURCE_DIR, "aliexpress_esmm.pbtxt");
  const auto path = fuzz::ScratchDir::Get() / "data.csv";
  fuzz::WriteFileOrDie(path, fuzz::AsView(data, size));
  for (const config::DataConfig* base : {&aliccp, &aliexpress}) {
    config::DataConfig config = *base;
    config.set_train_path(path.string());
    fuzz::OpenAndReadTwice(config);
  }
  return 0;
}
