// Fuzzes the restore of the dedupe window of recent requests,
// RequestWindow::Restore (common/net/request_window.h): what a server's
// checkpoint (server-N.window, the push window) and a rejoin's copy bring
// back. The input is the serialized checkpoint.RequestWindowState.
//
// Checked beyond "no crash": a malformed state is a Corruption naming the
// file, and leaves the window empty; a restored window serializes to a
// state that restores to the same number of entries and senders; it then
// answers Begin / Finish / Forget for its own senders and others.
//
// Run: tests/run_fuzz, or by hand
//   build-fuzz/tests/fuzz/fuzz_request_window -dict=tests/fuzz/mtps.dict \
//     build-fuzz/fuzz-corpus/fuzz_request_window build-fuzz/fuzz-seeds/fuzz_request_window
#include <cstdint>
#include <string>

#include "tests/fuzz/fuzz_support.h"

#include "common/base/deadline.h"
#include "common/net/request_window.h"
#include "proto/checkpoint.pb.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mtps::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mtps;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const SteadyClock::time_point now = SteadyClock::now();
  RequestWindow window;
  Status s = window.Restore(bytes, "fuzz.window", now);
  if (!s.ok()) {
    if (s.code() != StatusCode::kCorruption ||
        s.message().find("fuzz.window") == std::string::npos) {
      fuzz::Fail("a Restore error that is no Corruption naming the file: " + s.ToString());
    }
    if (window.size() != 0 || window.senders() != 0) fuzz::Fail("a failed Restore left entries");
    return 0;
  }
  const std::string out = window.Serialize();
  RequestWindow again;
  s = again.Restore(out, "again.window", now);
  if (!s.ok()) fuzz::Fail("a restored window's own state does not restore: " + s.ToString());
  if (again.size() != window.size() || again.senders() != window.senders()) {
    fuzz::Fail("a restored window restores to another window");
  }
  // Use it: every restored sender's ids, around its floor, and a stranger.
  checkpoint::RequestWindowState state;
  if (!state.ParseFromString(out)) fuzz::Fail("Serialize wrote what does not parse");
  int budget = 64;
  for (const auto& sender : state.senders()) {
    for (uint64_t id :
         {sender.floor(), sender.floor() + 1, sender.floor() ? sender.floor() - 1 : 0}) {
      if (--budget < 0) break;
      const RequestKey key{sender.sender(), sender.incarnation(), id};
      const RequestWindow::Seen seen = window.Begin(key, 0, now);
      if (seen == RequestWindow::Seen::kDone && window.Outcome(key) == nullptr) {
        fuzz::Fail("a done entry without its outcome");
      }
      if (seen == RequestWindow::Seen::kNew) window.Finish(key, "ok");
      window.Forget(key);
    }
  }
  const RequestKey stranger{12345, 678, 9};
  if (window.Begin(stranger, 0, now) != RequestWindow::Seen::kNew) {
    fuzz::Fail("an unknown sender's request is not new");
  }
  return 0;
}
