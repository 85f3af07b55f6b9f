// Multipart encoding and validation of mtps messages (see common/net/wire.h).
#include "common/net/wire.h"

namespace mtps {
namespace {
// A peer may not make us allocate more than this for one frame's metadata.
constexpr size_t kMaxMetaBytes = 1 << 20;
}  // namespace

const char* RoleName(wire::Role role) {
  switch (role) {
    case wire::SCHEDULER:
      return "scheduler";
    case wire::SERVER:
      return "server";
    case wire::WORKER:
      return "worker";
    default:
      return "unknown";
  }
}

size_t DataTypeSize(wire::DataType dtype) {
  switch (dtype) {
    case wire::U64:
      return 8;
    case wire::F32:
      return 4;
    case wire::U32:
      return 4;
    case wire::U8:
      return 1;
    default:
      return 0;
  }
}

Status Message::Expect(std::initializer_list<wire::DataType> dtypes) const {
  if (payloads.size() != dtypes.size()) {
    return Status::InvalidArgument(wire::Op_Name(meta.op()) + " expects " +
                                   std::to_string(dtypes.size()) + " payload frames, got " +
                                   std::to_string(payloads.size()));
  }
  size_t i = 0;
  for (wire::DataType want : dtypes) {
    if (payloads[i].dtype() != want) {
      return Status::InvalidArgument(wire::Op_Name(meta.op()) + " payload " + std::to_string(i) +
                                     " must be " + wire::DataType_Name(want) + ", got " +
                                     wire::DataType_Name(payloads[i].dtype()));
    }
    ++i;
  }
  return Status::OK();
}

std::vector<zmq::message_t> EncodeMessage(Message&& msg) {
  msg.meta.clear_frames();
  for (const Payload& p : msg.payloads) {
    wire::FrameInfo* info = msg.meta.add_frames();
    info->set_dtype(p.dtype());
    info->set_count(p.count());
  }
  std::vector<zmq::message_t> frames;
  frames.reserve(1 + msg.payloads.size());
  std::string meta_bytes = msg.meta.SerializeAsString();
  frames.emplace_back(meta_bytes.data(), meta_bytes.size());
  for (Payload& p : msg.payloads) frames.push_back(std::move(p.bytes()));
  return frames;
}

StatusOr<Message> DecodeMessage(std::vector<zmq::message_t>&& frames, wire::Meta* meta_out) {
  if (frames.empty()) return Status::InvalidArgument("empty message (no meta frame)");
  if (frames[0].size() > kMaxMetaBytes) {
    return Status::InvalidArgument("meta frame of " + std::to_string(frames[0].size()) +
                                   " bytes exceeds the " + std::to_string(kMaxMetaBytes) +
                                   "-byte limit");
  }
  Message msg;
  if (!msg.meta.ParseFromArray(frames[0].data(), static_cast<int>(frames[0].size()))) {
    return Status::InvalidArgument("meta frame of " + std::to_string(frames[0].size()) +
                                   " bytes is not a valid mtps.wire.Meta");
  }
  if (meta_out != nullptr) *meta_out = msg.meta;
  const std::string op = wire::Op_Name(msg.meta.op());
  if (static_cast<size_t>(msg.meta.frames_size()) != frames.size() - 1) {
    return Status::InvalidArgument(op + ": meta declares " +
                                   std::to_string(msg.meta.frames_size()) + " payload frames but " +
                                   std::to_string(frames.size() - 1) + " arrived");
  }
  msg.payloads.reserve(frames.size() - 1);
  for (size_t i = 1; i < frames.size(); ++i) {
    const wire::FrameInfo& info = msg.meta.frames(static_cast<int>(i - 1));
    size_t elem = DataTypeSize(info.dtype());
    if (elem == 0) {
      return Status::InvalidArgument(op + ": payload " + std::to_string(i - 1) +
                                     " has unknown dtype " + std::to_string(info.dtype()));
    }
    if (info.count() > frames[i].size() / elem || info.count() * elem != frames[i].size()) {
      return Status::InvalidArgument(op + ": payload " + std::to_string(i - 1) + " declares " +
                                     std::to_string(info.count()) + " elements of " +
                                     std::to_string(elem) + " bytes but holds " +
                                     std::to_string(frames[i].size()) + " bytes");
    }
    msg.payloads.emplace_back(info.dtype(), std::move(frames[i]));
  }
  return msg;
}

wire::StatusCode ToWireCode(StatusCode code) { return static_cast<wire::StatusCode>(code); }

Status FromWireStatus(const wire::Meta& meta) {
  if (meta.status() == wire::OK) return Status::OK();
  int code = static_cast<int>(meta.status());
  if (code < 0 || code > static_cast<int>(StatusCode::kPermissionDenied))
    code = static_cast<int>(StatusCode::kInternal);
  return Status(static_cast<StatusCode>(code), meta.status_message());
}

}  // namespace mtps
