// Wire codec: encode/decode round trips and rejection of malformed frames.
#include <gtest/gtest.h>

#include <vector>

#include "common/net/wire.h"

namespace mtps {
namespace {

Message SampleMessage() {
  Message msg(wire::PUSH_SPARSE);
  msg.meta.set_request_id(42);
  msg.meta.set_sender(3);
  msg.meta.set_cluster_epoch(777);
  msg.meta.set_timeout_ms(1500);
  msg.payloads.push_back(Payload::FromVector(std::vector<uint64_t>{1, 2, 0xFFFFFFFFFFFFFFFFULL}));
  msg.payloads.push_back(
      Payload::FromVector(std::vector<float>{0.5f, -1.25f, 3.0f, 4.0f, 5.0f, 6.0f}));
  return msg;
}

TEST(WireTest, RoundTripKeepsMetaAndPayloads) {
  auto decoded = DecodeMessage(EncodeMessage(SampleMessage()));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const Message& m = decoded.value();
  EXPECT_EQ(m.meta.op(), wire::PUSH_SPARSE);
  EXPECT_EQ(m.meta.request_id(), 42u);
  EXPECT_EQ(m.meta.sender(), 3);
  EXPECT_EQ(m.meta.cluster_epoch(), 777u);
  EXPECT_EQ(m.meta.timeout_ms(), 1500);
  ASSERT_TRUE(m.Expect({wire::U64, wire::F32}).ok());
  std::vector<uint64_t> ks;
  std::vector<float> vs;
  const uint64_t* keys = m.payloads[0].Data<uint64_t>(&ks);
  const float* vals = m.payloads[1].Data<float>(&vs);
  ASSERT_EQ(m.payloads[0].count(), 3u);
  ASSERT_EQ(m.payloads[1].count(), 6u);
  EXPECT_EQ(keys[2], 0xFFFFFFFFFFFFFFFFULL);
  EXPECT_EQ(vals[1], -1.25f);
  EXPECT_EQ(vals[5], 6.0f);
}

TEST(WireTest, ArrayPayloadIsSentWithoutCopy) {
  std::unique_ptr<float[]> values(new float[3]{1.5f, -2.0f, 4.0f});
  const float* raw = values.get();
  Payload p = Payload::FromArray(std::move(values), 3);
  EXPECT_EQ(p.bytes().data(), static_cast<const void*>(raw));  // the same buffer, not a copy
  Message msg(wire::PULL_SPARSE);
  msg.payloads.push_back(std::move(p));
  auto decoded = DecodeMessage(EncodeMessage(std::move(msg)));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  std::vector<float> scratch;
  const float* got = decoded->payloads[0].Data<float>(&scratch);
  ASSERT_EQ(decoded->payloads[0].count(), 3u);
  EXPECT_EQ(got[1], -2.0f);
  EXPECT_EQ(Payload::FromArray(std::unique_ptr<float[]>(), 0).count(), 0u);
}

TEST(WireTest, EmptyPayloadRoundTrips) {
  Message msg(wire::EVAL_REPORT);
  msg.payloads.push_back(Payload::FromVector(std::vector<float>{}));
  auto decoded = DecodeMessage(EncodeMessage(std::move(msg)));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->payloads[0].count(), 0u);
}

TEST(WireTest, MisalignedFrameIsReadThroughScratch) {
  std::vector<char> raw(1 + 2 * sizeof(float));
  float v[2] = {1.5f, -2.5f};
  std::memcpy(raw.data() + 1, v, sizeof(v));
  // Zero-copy view (no free function) at an odd address, as a received
  // frame inside ZeroMQ's batch buffer can be.
  Payload p(wire::F32, zmq::message_t(raw.data() + 1, sizeof(v), nullptr, nullptr));
  ASSERT_NE(reinterpret_cast<uintptr_t>(p.bytes().data()) % alignof(float), 0u);
  std::vector<float> scratch;
  const float* got = p.Data<float>(&scratch);
  EXPECT_EQ(got[0], 1.5f);
  EXPECT_EQ(got[1], -2.5f);
}

TEST(WireTest, RejectsNoFrames) {
  auto r = DecodeMessage({});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(WireTest, RejectsGarbageMeta) {
  std::vector<zmq::message_t> frames;
  const char garbage[] = "\xff\xff\xff\xff\xff\xff\xff";
  frames.emplace_back(garbage, sizeof(garbage));
  auto r = DecodeMessage(std::move(frames));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not a valid"), std::string::npos) << r.status();
}

TEST(WireTest, RejectsMissingPayloadFrame) {
  auto frames = EncodeMessage(SampleMessage());
  frames.pop_back();
  wire::Meta meta;
  auto r = DecodeMessage(std::move(frames), &meta);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("declares 2 payload frames but 1 arrived"), std::string::npos)
      << r.status();
  EXPECT_EQ(meta.request_id(), 42u);  // still known, so the request can be answered
}

TEST(WireTest, RejectsExtraPayloadFrame) {
  auto frames = EncodeMessage(SampleMessage());
  frames.emplace_back(8);
  EXPECT_FALSE(DecodeMessage(std::move(frames)).ok());
}

TEST(WireTest, RejectsFrameSizeDisagreeingWithCount) {
  auto frames = EncodeMessage(SampleMessage());
  frames[1] = zmq::message_t(3 * 8 - 1);  // one byte short of 3 u64 keys
  auto r = DecodeMessage(std::move(frames));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("payload 0"), std::string::npos) << r.status();
}

TEST(WireTest, RejectsUnknownDtype) {
  Message msg = SampleMessage();
  auto frames = EncodeMessage(std::move(msg));
  wire::Meta meta;
  ASSERT_TRUE(meta.ParseFromArray(frames[0].data(), static_cast<int>(frames[0].size())));
  meta.mutable_frames(0)->set_dtype(static_cast<wire::DataType>(99));
  std::string bytes = meta.SerializeAsString();
  frames[0] = zmq::message_t(bytes.data(), bytes.size());
  EXPECT_FALSE(DecodeMessage(std::move(frames)).ok());
}

TEST(WireTest, RejectsHugeDeclaredCount) {
  // A count whose byte size overflows must not pass the size check.
  Message msg = SampleMessage();
  auto frames = EncodeMessage(std::move(msg));
  wire::Meta meta;
  ASSERT_TRUE(meta.ParseFromArray(frames[0].data(), static_cast<int>(frames[0].size())));
  meta.mutable_frames(0)->set_count(0x2000000000000003ULL);  // * 8 wraps to 24
  std::string bytes = meta.SerializeAsString();
  frames[0] = zmq::message_t(bytes.data(), bytes.size());
  EXPECT_FALSE(DecodeMessage(std::move(frames)).ok());
}

TEST(WireTest, ExpectNamesTheMismatch) {
  Message msg = SampleMessage();
  Status s = msg.Expect({wire::U64});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("PUSH_SPARSE expects 1 payload frames, got 2"), std::string::npos)
      << s;
  s = msg.Expect({wire::U64, wire::U64});
  EXPECT_NE(s.message().find("payload 1 must be U64, got F32"), std::string::npos) << s;
}

TEST(WireTest, StatusCodesSurviveTheWire) {
  for (int c = 0; c <= static_cast<int>(StatusCode::kInternal); ++c) {
    wire::Meta meta;
    meta.set_status(ToWireCode(static_cast<StatusCode>(c)));
    meta.set_status_message("why");
    EXPECT_EQ(static_cast<int>(FromWireStatus(meta).code()), c);
  }
}

}  // namespace
}  // namespace mtps
