// Fuzzes the wire decoder, DecodeMessage (common/net/wire.h): the code every
// byte a peer sends passes first. The input is one multipart message, its
// frames separated by kFrameSeparator (tests/fuzz/fuzz_support.h): frame 0
// the serialized Meta, then the payload frames.
//
// Checked beyond "no crash": a message that decodes has exactly the payloads
// its meta declares, each of a known type and a size that is a whole number
// of elements; it re-encodes (EncodeMessage) to frames that decode again to
// the same meta and bytes; Expect of its own dtypes holds; reading each
// payload as its type stays inside the frame (ASan); FromWireStatus of any
// meta that parsed is a valid Status.
//
// Run: tests/run_fuzz (every target, a few seconds each), or by hand
//   build-fuzz/tests/fuzz/fuzz_wire -dict=tests/fuzz/mtps.dict \
//     build-fuzz/fuzz-corpus/fuzz_wire build-fuzz/fuzz-seeds/fuzz_wire
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_support.h"

#include "common/net/wire.h"

namespace mtps {
namespace {

template <typename T>
uint64_t SumOf(const Payload& p) {
  std::vector<T> scratch;
  const T* v = p.Data<T>(&scratch);
  uint64_t sum = 0;
  for (size_t i = 0; i < p.count(); ++i) {
    T x = v[i];
    uint64_t bits = 0;
    std::memcpy(&bits, &x, sizeof(T));
    sum += bits;
  }
  return sum;
}

uint64_t ReadAll(const Payload& p) {
  switch (p.dtype()) {
    case wire::U64:
      return SumOf<uint64_t>(p);
    case wire::F32:
      return SumOf<float>(p);
    case wire::U32:
      return SumOf<uint32_t>(p);
    case wire::U8:
      return SumOf<uint8_t>(p);
    default:
      fuzz::Fail("a decoded payload of unknown dtype " + std::to_string(p.dtype()));
  }
}

std::vector<zmq::message_t> ToFrames(const std::vector<std::string_view>& parts) {
  std::vector<zmq::message_t> frames;
  for (std::string_view part : parts) frames.emplace_back(part.data(), part.size());
  return frames;
}

}  // namespace
}  // namespace mtps

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mtps::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mtps;
  const std::vector<std::string_view> parts =
      fuzz::Split(fuzz::AsView(data, size), fuzz::kFrameSeparator);
  wire::Meta meta_out;
  StatusOr<Message> decoded = DecodeMessage(ToFrames(parts), &meta_out);
  // Whatever parsed must give a status (the answer to a bad request).
  (void)FromWireStatus(meta_out).ToString();
  if (!decoded.ok()) {
    if (decoded.status().code() != StatusCode::kInvalidArgument) {
      fuzz::Fail("DecodeMessage failed with a code other than InvalidArgument: " +
                 decoded.status().ToString());
    }
    return 0;
  }
  Message& msg = *decoded;
  if (static_cast<size_t>(msg.meta.frames_size()) != msg.payloads.size() ||
      msg.payloads.size() + 1 != parts.size()) {
    fuzz::Fail("payload count differs from the meta's frames or the frames received");
  }
  for (size_t i = 0; i < msg.payloads.size(); ++i) {
    const Payload& p = msg.payloads[i];
    const size_t elem = DataTypeSize(p.dtype());
    if (elem == 0 || p.bytes().size() % elem != 0 ||
        p.count() != msg.meta.frames(static_cast<int>(i)).count() ||
        p.bytes().size() != parts[i + 1].size()) {
      fuzz::Fail("payload " + std::to_string(i) + " disagrees with its frame info");
    }
    (void)ReadAll(p);
  }
  if (msg.payloads.size() <= 4) {
    std::vector<wire::DataType> dtypes;
    for (const Payload& p : msg.payloads) dtypes.push_back(p.dtype());
    Status s;
    switch (dtypes.size()) {
      case 0:
        s = msg.Expect({});
        break;
      case 1:
        s = msg.Expect({dtypes[0]});
        break;
      case 2:
        s = msg.Expect({dtypes[0], dtypes[1]});
        break;
      case 3:
        s = msg.Expect({dtypes[0], dtypes[1], dtypes[2]});
        break;
      default:
        s = msg.Expect({dtypes[0], dtypes[1], dtypes[2], dtypes[3]});
        break;
    }
    if (!s.ok()) fuzz::Fail("Expect of a message's own dtypes: " + s.ToString());
  }
  // Round trip: re-encoded, it decodes to the same meta and payload bytes.
  // (EncodeMessage rewrites meta.frames from the payloads, so those compare
  // by value.)
  Message copy = msg.Clone();
  StatusOr<Message> again = DecodeMessage(EncodeMessage(std::move(copy)));
  if (!again.ok()) {
    fuzz::Fail("a decoded message does not decode again: " + again.status().ToString());
  }
  wire::Meta before = msg.meta, after = again->meta;
  before.clear_frames();
  after.clear_frames();
  if (before.SerializeAsString() != after.SerializeAsString() ||
      again->payloads.size() != msg.payloads.size()) {
    fuzz::Fail("re-encoding changed the meta or the payload count");
  }
  for (size_t i = 0; i < msg.payloads.size(); ++i) {
    if (again->payloads[i].dtype() != msg.payloads[i].dtype()) {
      fuzz::Fail("re-encoding changed the dtype of payload " + std::to_string(i));
    }
    const zmq::message_t& a = msg.payloads[i].bytes();
    const zmq::message_t& b = again->payloads[i].bytes();
    if (a.size() != b.size() || (a.size() > 0 && std::memcmp(a.data(), b.data(), a.size()) != 0)) {
      fuzz::Fail("re-encoding changed payload " + std::to_string(i));
    }
  }
  return 0;
}
