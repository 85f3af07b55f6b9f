// Tests of the readers' per-feature building blocks: ParseFiniteFloat
// (worker/data/feature_extractor.h; its integer fast path must give exactly the
// float std::from_chars gives) and SlotGrouper::AppendExample
// (worker/data/field_id_reader.h; against a batch built slot by slot here).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "worker/data/feature_extractor.h"
#include "worker/data/field_id_reader.h"

namespace mtps {
namespace {

// The reference: std::from_chars on the text without its leading '+', the
// whole text consumed, finite.
bool ReferenceParse(const std::string& text, float* out) {
  const char* first = text.data();
  const char* last = text.data() + text.size();
  if (first != last && *first == '+') ++first;
  if (first == last) return false;
  float value = 0;
  const auto [end, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || end != last || !std::isfinite(value)) return false;
  *out = value;
  return true;
}

uint32_t Bits(float f) {
  uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}

void ExpectSameAsReference(const std::string& text) {
  float expected = -12345;
  const bool expected_ok = ReferenceParse(text, &expected);
  float got = -12345;
  const bool ok = ParseFiniteFloat(text, &got);
  ASSERT_EQ(ok, expected_ok) << "'" << text << "'";
  if (ok) {
    ASSERT_EQ(Bits(got), Bits(expected)) << "'" << text << "': " << got << " vs " << expected;
  }
}

TEST(FeatureParseFloatTest, IntegersAreExactlyWhatFromCharsGives) {
  for (uint32_t n = 0; n <= 300000; ++n) ExpectSameAsReference(std::to_string(n));
  // Around 2^24, 2^25 and 2^30, where floats stop holding every integer and
  // ties round to even.
  for (uint64_t center : {1ULL << 24, 1ULL << 25, 1ULL << 30}) {
    for (uint64_t n = center - 70; n <= center + 70; ++n) {
      ExpectSameAsReference(std::to_string(n));
      ExpectSameAsReference("+" + std::to_string(n));
    }
  }
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<uint64_t> nine_digits(100000000, 999999999);
  for (int i = 0; i < 200000; ++i) ExpectSameAsReference(std::to_string(nine_digits(rng)));
  // Ten digits and more (beyond 32 bits too), leading zeros, signs.
  for (const char* text :
       {"999999999", "1000000000", "4294967295", "4294967296", "4294967297", "9999999999",
        "18446744073709551617", "000000001", "0000000001", "00000000000000000000000000000000000017",
        "+0", "+7", "-0", "-7", "-123456789", "0"}) {
    ExpectSameAsReference(text);
  }
  float minus_zero = 1;
  ASSERT_TRUE(ParseFiniteFloat("-0", &minus_zero));
  EXPECT_TRUE(std::signbit(minus_zero));
}

TEST(FeatureParseFloatTest, NonIntegersAndRejectsAreUnchanged) {
  for (const char* text : {"",      "+",   "-",   "++1",  "+-1", "1+",   "12a",    "a12", "1 2",
                           " 1",    "1 ",  "1.",  ".5",   "1.5", "0.1",  "3.25e2", "1e3", "1e39",
                           "-1e39", "inf", "nan", "0x10", "1,5", "\x01", "9\x02"}) {
    ExpectSameAsReference(text);
  }
  float untouched = 42;
  EXPECT_FALSE(ParseFiniteFloat("12a", &untouched));
  EXPECT_FALSE(ParseFiniteFloat("1e39", &untouched));
  EXPECT_EQ(untouched, 42);
}

// One feature added to a grouper.
struct Feature {
  int slot;
  uint64_t key;
  float weight;
};

std::vector<Feature> RandomFeatures(std::mt19937_64* rng, int num_slots, int max_count) {
  std::uniform_int_distribution<int> count(0, max_count);
  std::uniform_int_distribution<int> slot(0, num_slots - 1);
  std::vector<Feature> features(count(*rng));
  for (Feature& f : features) f = Feature{slot(*rng), (*rng)(), static_cast<float>(slot(*rng))};
  return features;
}

TEST(FeatureSlotGrouperTest, AppendExampleMatchesSlotBySlotConstruction) {
  constexpr int kSlots = 7;
  std::mt19937_64 rng(11);
  SlotGrouper sample, tail;
  Batch batch, expected;
  batch.Clear();
  expected.Clear();
  batch.num_slots = expected.num_slots = kSlots;
  for (int example = 0; example < 300; ++example) {
    // Mostly short samples; some empty, some with no tail.
    const std::vector<Feature> head = RandomFeatures(&rng, kSlots, example % 5 == 0 ? 0 : 12);
    const std::vector<Feature> rest = RandomFeatures(&rng, kSlots, example % 3 == 0 ? 60 : 4);
    const bool with_tail = example % 4 != 1;
    sample.Reset(kSlots);
    for (const Feature& f : head) sample.Add(f.slot, f.key, f.weight);
    if (with_tail) {
      tail.Reset(kSlots);
      for (const Feature& f : rest) tail.Add(f.slot, f.key, f.weight);
      tail.Group();
    }
    sample.AppendExample(with_tail ? &tail : nullptr, &batch);

    for (int s = 0; s < kSlots; ++s) {
      for (const Feature& f : head) {
        if (f.slot != s) continue;
        expected.keys.push_back(f.key);
        expected.weights.push_back(f.weight);
      }
      for (const Feature& f : with_tail ? rest : std::vector<Feature>()) {
        if (f.slot != s) continue;
        expected.keys.push_back(f.key);
        expected.weights.push_back(f.weight);
      }
      expected.offsets.push_back(static_cast<uint32_t>(expected.keys.size()));
    }
    ASSERT_EQ(batch.keys, expected.keys) << "example " << example;
    ASSERT_EQ(batch.weights, expected.weights) << "example " << example;
    ASSERT_EQ(batch.offsets, expected.offsets) << "example " << example;
  }
  // The tail is unchanged by being appended: twice in a row gives it twice.
  sample.Reset(kSlots);
  const size_t before = batch.keys.size();
  sample.AppendExample(&tail, &batch);
  sample.AppendExample(&tail, &batch);
  ASSERT_EQ(batch.keys.size(), before + 2 * tail.size());
  EXPECT_TRUE(std::equal(batch.keys.begin() + before, batch.keys.begin() + before + tail.size(),
                         batch.keys.begin() + before + tail.size()));
}

}  // namespace
}  // namespace mtps
