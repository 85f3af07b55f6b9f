// CURVE keys and the ZAP handler (see common/net/curve.h).
#include "common/net/curve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include <glog/logging.h>
#include <zmq_addon.hpp>

#include "common/base/durable_file.h"
#include "common/net/wire.h"

namespace mtps {
namespace {
constexpr size_t kZ85KeyChars = 40;
constexpr size_t kBinaryKeyBytes = 32;
constexpr char kPublicList[] = "public.keys";

std::string Errno() { return std::strerror(errno); }

// Writes `content` to a new owner-only file at `path` (replacing one).
Status WriteOwnerOnly(const std::string& path, const std::string& content) {
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError("cannot create " + path + ": " + Errno());
  // Owner-only whatever the umask.
  bool ok = ::fchmod(fd, 0600) == 0 &&
            ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
            ::fsync(fd) == 0;
  const std::string error = ok ? "" : Errno();
  ok = ::close(fd) == 0 && ok;
  if (!ok) return Status::IoError("cannot write " + path + ": " + error);
  return Status::OK();
}

bool ValidZ85Key(const std::string& key) {
  if (key.size() != kZ85KeyChars) return false;
  uint8_t binary[kBinaryKeyBytes];
  return zmq_z85_decode(binary, key.c_str()) != nullptr;
}

std::string BinaryKey(const std::string& z85) {
  uint8_t binary[kBinaryKeyBytes];
  if (zmq_z85_decode(binary, z85.c_str()) == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(binary), kBinaryKeyBytes);
}

// Reads `path`, refusing a file group or others may read.
StatusOr<std::string> ReadOwnerOnly(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return Status::NotFound("cannot read " + path + ": " + Errno());
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return Status::InvalidArgument(path + " is readable by others (mode " + mode +
                                   "): a key file must be owner-only (chmod 600)");
  }
  return ReadWholeFile(path);
}

}  // namespace

Status CheckSpeaksFor(const std::string& authenticated_as, const std::string& expected,
                      const std::string& claimed) {
  if (authenticated_as.empty() || authenticated_as == expected) return Status::OK();
  return Status::PermissionDenied("the key of " + authenticated_as + " cannot speak for " +
                                  claimed);
}

StatusOr<CurveKeyPair> NewCurveKeyPair() {
  char public_key[kZ85KeyChars + 1], secret_key[kZ85KeyChars + 1];
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    return Status::Unavailable(std::string("cannot make a CURVE key pair (libzmq without "
                                           "CURVE support?): ") +
                               zmq_strerror(zmq_errno()));
  }
  return CurveKeyPair{public_key, secret_key};
}

std::string CurveNodeName(wire::Role role, int rank) {
  if (role == wire::SCHEDULER) return "scheduler";
  return std::string(RoleName(role)) + "-" + std::to_string(rank);
}

Status WriteCurveKeys(const std::string& dir, const std::vector<std::string>& names) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::IoError("cannot create " + dir + ": " + Errno());
  }
  if (::chmod(dir.c_str(), 0700) != 0)
    return Status::IoError("cannot chmod " + dir + ": " + Errno());
  std::string list =
      "# mtps CURVE public keys of the job's nodes, one per line: NAME PUBLIC_KEY (Z85)\n";
  for (const std::string& name : names) {
    MTPS_ASSIGN_OR_RETURN(CurveKeyPair pair, NewCurveKeyPair());
    MTPS_RETURN_IF_ERROR(WriteOwnerOnly(
        dir + "/" + name + ".key", "# mtps CURVE key pair of node " + name +
                                       ": keep it owner-only (0600)\npublic " + pair.public_key +
                                       "\nsecret " + pair.secret_key + "\n"));
    list += name + " " + pair.public_key + "\n";
  }
  return WriteOwnerOnly(dir + "/" + kPublicList, list);
}

StatusOr<CurveKeys> LoadCurveKeys(const std::string& dir, const std::string& self_name) {
  CurveKeys keys;
  keys.self_name = self_name;
  // Lines "WORD KEY", '#' comments and blank lines skipped.
  auto parse =
      [](const std::string& path, const std::string& text,
         const std::function<Status(const std::string&, const std::string&, int)>& take) -> Status {
    std::istringstream lines(text);
    std::string line;
    int number = 0;
    while (std::getline(lines, line)) {
      ++number;
      if (line.empty() || line[0] == '#') continue;
      std::istringstream fields(line);
      std::string word, key, extra;
      fields >> word >> key;
      if (word.empty() || !ValidZ85Key(key) || (fields >> extra)) {
        return Status::InvalidArgument(path + ":" + std::to_string(number) +
                                       ": expected NAME and a 40-character Z85 key");
      }
      MTPS_RETURN_IF_ERROR(take(word, key, number));
    }
    return Status::OK();
  };
  const std::string own = dir + "/" + self_name + ".key";
  MTPS_ASSIGN_OR_RETURN(std::string pair_text, ReadOwnerOnly(own));
  MTPS_RETURN_IF_ERROR(parse(
      own, pair_text, [&](const std::string& word, const std::string& key, int number) -> Status {
        if (word == "public") {
          keys.self.public_key = key;
        } else if (word == "secret") {
          keys.self.secret_key = key;
        } else {
          return Status::InvalidArgument(own + ":" + std::to_string(number) + ": unknown entry '" +
                                         word + "' (public or secret)");
        }
        return Status::OK();
      }));
  if (keys.self.public_key.empty() || keys.self.secret_key.empty()) {
    return Status::InvalidArgument(own + ": needs a public and a secret line");
  }
  const std::string list = dir + "/" + kPublicList;
  MTPS_ASSIGN_OR_RETURN(std::string list_text, ReadOwnerOnly(list));
  MTPS_RETURN_IF_ERROR(
      parse(list, list_text, [&](const std::string& name, const std::string& key, int number) {
        if (!keys.public_keys.emplace(name, key).second) {
          return Status::InvalidArgument(list + ":" + std::to_string(number) + ": node " + name +
                                         " twice");
        }
        return Status::OK();
      }));
  auto it = keys.public_keys.find(self_name);
  if (it == keys.public_keys.end() || it->second != keys.self.public_key) {
    return Status::InvalidArgument(list + " does not list " + own + "'s public key for " +
                                   self_name);
  }
  return keys;
}

ZapHandler::ZapHandler(zmq::context_t* context, const CurveKeys& keys)
    : socket_(*context, zmq::socket_type::rep) {
  for (const auto& [name, key] : keys.public_keys) names_[BinaryKey(key)] = name;
  socket_.set(zmq::sockopt::linger, 0);
  // The address libzmq asks; binding twice in one context fails here.
  socket_.bind("inproc://zeromq.zap.01");
  thread_ = std::thread([this] { Loop(); });
}

ZapHandler::~ZapHandler() {
  stop_.store(true);
  thread_.join();
}

void ZapHandler::Loop() {
  // Wakes every 100 ms to see whether it should stop.
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  while (!stop_.load()) {
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if ((item.revents & ZMQ_POLLIN) == 0) continue;
      std::vector<zmq::message_t> request;
      if (!zmq::recv_multipart(socket_, std::back_inserter(request), zmq::recv_flags::dontwait)) {
        continue;
      }
      // RFC 27: version, request id, domain, address, identity, mechanism,
      // credentials (CURVE: the client's 32-byte public key).
      std::string code = "400", text = "not a job key", user;
      if (request.size() >= 6 && request[0].to_string() == "1.0") {
        const std::string mechanism = request[5].to_string();
        if (mechanism == "CURVE" && request.size() == 7) {
          auto it = names_.find(request[6].to_string());
          if (it != names_.end()) {
            code = "200";
            text = "OK";
            user = it->second;
          }
        } else {
          text = "mechanism " + mechanism + " refused";
        }
      }
      if (code != "200") {
        refused_.fetch_add(1, std::memory_order_relaxed);
        LOG(WARNING) << "refused a connection from "
                     << (request.size() > 3 ? request[3].to_string() : std::string("?")) << ": "
                     << text;
      }
      std::vector<zmq::message_t> reply;
      reply.emplace_back(std::string("1.0"));
      reply.emplace_back(request.size() > 1 ? request[1].to_string() : std::string());
      reply.emplace_back(code);
      reply.emplace_back(text);
      reply.emplace_back(user);
      reply.emplace_back();  // metadata: none
      zmq::send_multipart(socket_, reply);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      LOG(WARNING) << "ZAP handler: " << e.what();
    }
  }
}

}  // namespace mtps
