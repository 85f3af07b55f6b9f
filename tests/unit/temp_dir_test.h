// TempDirTest: a GoogleTest fixture giving each test a fresh temporary
// directory (removed afterwards) and helpers that write plain or gzip files
// into it. Shared by the reader and config tests.
#ifndef MTPS_TESTS_UNIT_TEMP_DIR_TEST_H_
#define MTPS_TESTS_UNIT_TEMP_DIR_TEST_H_

#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace mtps {

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "mtps_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // Writes `text` to dir_/name (creating subdirectories) and returns the path.
  std::string Write(const std::string& name, const std::string& text) {
    const std::filesystem::path path = dir_ / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
    return path.string();
  }
  // Writes `text` gzip-compressed to dir_/name and returns the path.
  std::string WriteGzip(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())),
              static_cast<int>(text.size()));
    gzclose(f);
    return path;
  }

  std::filesystem::path dir_;
};

}  // namespace mtps

#endif  // MTPS_TESTS_UNIT_TEMP_DIR_TEST_H_
