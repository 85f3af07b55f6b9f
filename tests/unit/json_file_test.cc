// JSON output files (common/base/json_file.h): key order, number types,
// null for non-finite numbers, bad UTF-8, atomic writes and JSON lines.
#include "common/base/json_file.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "tests/unit/temp_dir_test.h"

namespace mtps {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(JsonTextTest, KeepsKeyOrderAndNumberTypes) {
  Json j;
  j["z"] = 1;
  j["a"] = 2.5;
  j["m"] = std::numeric_limits<uint64_t>::max();
  j["n"] = int64_t{-7};
  j["d"] = 3.0;
  EXPECT_EQ(JsonText(j, -1), "{\"z\":1,\"a\":2.5,\"m\":18446744073709551615,\"n\":-7,\"d\":3.0}");
  EXPECT_EQ(JsonText(j, 2),
            "{\n  \"z\": 1,\n  \"a\": 2.5,\n  \"m\": 18446744073709551615,\n  \"n\": -7,\n"
            "  \"d\": 3.0\n}");
}

TEST(JsonTextTest, NonFiniteNumbersAreNull) {
  Json j;
  j["nan"] = std::nan("");
  j["inf"] = std::numeric_limits<double>::infinity();
  j["ninf"] = -std::numeric_limits<double>::infinity();
  EXPECT_EQ(JsonText(j, -1), "{\"nan\":null,\"inf\":null,\"ninf\":null}");
}

TEST(JsonTextTest, DoublesRoundTripAndStringsAreEscaped) {
  const double v = 0.1 + 0.2;  // 0.30000000000000004
  Json j;
  j["v"] = v;
  j["s"] = "tab\there \"q\" \x01 \\";
  const std::string text = JsonText(j, -1);
  EXPECT_EQ(Json::parse(text)["v"].get<double>(), v);
  EXPECT_EQ(text, "{\"v\":0.30000000000000004,\"s\":\"tab\\there \\\"q\\\" \\u0001 \\\\\"}");
}

TEST(JsonTextTest, InvalidUtf8IsReplacedNotThrown) {
  Json j;
  j["host"] = std::string("ab\xff") + "c";
  std::string text;
  ASSERT_NO_THROW(text = JsonText(j, -1));
  EXPECT_EQ(Json::parse(text)["host"], std::string("ab\xEF\xBF\xBD") + "c");  // U+FFFD
}

class JsonFileTest : public TempDirTest {};

TEST_F(JsonFileTest, WriteJsonFileIsIndentedEndsWithNewlineAndLeavesNoTemporary) {
  const std::string path = (dir_ / "x.json").string();
  Json j;
  j["a"] = 1;
  ASSERT_TRUE(WriteJsonFile(path, j).ok());
  EXPECT_EQ(ReadAll(path), "{\n  \"a\": 1\n}\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  j["a"] = 2;
  ASSERT_TRUE(WriteJsonFile(path, j).ok());  // replaces the whole file
  EXPECT_EQ(ReadAll(path), "{\n  \"a\": 2\n}\n");
  EXPECT_EQ(WriteJsonFile((dir_ / "no" / "such" / "dir.json").string(), j).code(),
            StatusCode::kIoError);
}

TEST_F(JsonFileTest, AppendJsonLineWritesOneObjectPerLine) {
  const std::string path = (dir_ / "p.jsonl").string();
  Json a, b;
  a["t"] = 1.5;
  a["loss"] = Json::object({{"x", 0.25}});
  b["t"] = 2.5;
  ASSERT_TRUE(AppendJsonLine(path, a).ok());
  ASSERT_TRUE(AppendJsonLine(path, b).ok());
  EXPECT_EQ(ReadAll(path), "{\"t\":1.5,\"loss\":{\"x\":0.25}}\n{\"t\":2.5}\n");
}

}  // namespace
}  // namespace mtps
