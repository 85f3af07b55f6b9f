// RequestWindow (common/net/request_window.h): what a receiver remembers of
// recent requests per sender incarnation, how it is bounded (done_below,
// per-sender cap, idle age, sender cap), and its checkpoint round trip.
// Time is passed in explicitly, so nothing here waits.
#include "common/net/request_window.h"

#include <gtest/gtest.h>

#include <chrono>

#include "proto/checkpoint.pb.h"

namespace mtps {
namespace {

using Seen = RequestWindow::Seen;
const SteadyClock::time_point kT0 = SteadyClock::time_point(std::chrono::hours(1));

SteadyClock::time_point At(int64_t ms) { return kT0 + std::chrono::milliseconds(ms); }

TEST(RequestWindowTest, NewThenInProgressThenDoneWithItsOutcome) {
  RequestWindow w;
  const RequestKey k{3, 77, 10};
  EXPECT_EQ(w.Begin(k, 10, At(0)), Seen::kNew);
  EXPECT_EQ(w.Begin(k, 10, At(1)), Seen::kInProgress);
  EXPECT_EQ(w.Outcome(k), nullptr);
  w.Finish(k, "answer");
  EXPECT_EQ(w.Begin(k, 10, At(2)), Seen::kDone);
  ASSERT_NE(w.Outcome(k), nullptr);
  EXPECT_EQ(*w.Outcome(k), "answer");
  EXPECT_EQ(w.size(), 1u);
}

TEST(RequestWindowTest, SendersAndIncarnationsAreKeptApart) {
  RequestWindow w;
  EXPECT_EQ(w.Begin({3, 77, 10}, 0, At(0)), Seen::kNew);
  EXPECT_EQ(w.Begin({4, 77, 10}, 0, At(0)), Seen::kNew);  // another sender
  EXPECT_EQ(w.Begin({3, 78, 10}, 0, At(0)), Seen::kNew);  // a restarted sender
  EXPECT_EQ(w.senders(), 3u);
  EXPECT_EQ(w.size(), 3u);
}

TEST(RequestWindowTest, ForgottenRequestIsNewAgain) {
  RequestWindow w;
  const RequestKey k{3, 77, 10};
  ASSERT_EQ(w.Begin(k, 0, At(0)), Seen::kNew);
  w.Forget(k);  // it changed nothing: a resend may be applied
  EXPECT_EQ(w.Begin(k, 0, At(1)), Seen::kNew);
}

TEST(RequestWindowTest, DoneBelowTrimsTheWindowAndLateCopiesAreStale) {
  RequestWindow w;
  for (uint64_t id = 1; id <= 100; ++id) {
    ASSERT_EQ(w.Begin({3, 77, id}, 1, At(0)), Seen::kNew);
    w.Finish({3, 77, id}, "");
  }
  EXPECT_EQ(w.size(), 100u);
  // The sender says: everything below 96 is answered or abandoned.
  EXPECT_EQ(w.Begin({3, 77, 101}, 96, At(1)), Seen::kNew);
  EXPECT_EQ(w.size(), 6u);  // 96..101
  // A delayed copy of id 50 must not be applied again: it is stale.
  EXPECT_EQ(w.Begin({3, 77, 50}, 0, At(2)), Seen::kStale);
  EXPECT_EQ(w.Begin({3, 77, 96}, 0, At(2)), Seen::kDone);
  // Finishing a stale id records nothing.
  w.Finish({3, 77, 40}, "");
  EXPECT_EQ(w.Outcome({3, 77, 40}), nullptr);
}

TEST(RequestWindowTest, PerSenderCapEvictsTheOldestAndRaisesTheFloor) {
  RequestWindowOptions o;
  o.max_ids_per_sender = 8;
  RequestWindow w(o);
  for (uint64_t id = 1; id <= 20; ++id) ASSERT_EQ(w.Begin({3, 77, id}, 0, At(0)), Seen::kNew);
  EXPECT_EQ(w.size(), 8u);
  EXPECT_EQ(w.counters().evicted_overflow, 12);
  EXPECT_EQ(w.Begin({3, 77, 12}, 0, At(0)), Seen::kStale);
  EXPECT_EQ(w.Begin({3, 77, 13}, 0, At(0)), Seen::kInProgress);
}

TEST(RequestWindowTest, SilentSenderIncarnationsAgeOut) {
  RequestWindowOptions o;
  o.max_idle_ms = 1000;
  RequestWindow w(o);
  ASSERT_EQ(w.Begin({3, 77, 1}, 0, At(0)), Seen::kNew);
  ASSERT_EQ(w.Begin({4, 88, 1}, 0, At(0)), Seen::kNew);
  // Sender 4 keeps talking; sender 3's process died.
  ASSERT_EQ(w.Begin({4, 88, 2}, 0, At(900)), Seen::kNew);
  ASSERT_EQ(w.Begin({4, 88, 3}, 0, At(1500)), Seen::kNew);
  EXPECT_EQ(w.senders(), 1u);
  EXPECT_EQ(w.size(), 3u);
  EXPECT_EQ(w.counters().evicted_idle, 1);
}

TEST(RequestWindowTest, SenderCapEvictsTheQuietest) {
  RequestWindowOptions o;
  o.max_senders = 2;
  RequestWindow w(o);
  ASSERT_EQ(w.Begin({1, 1, 1}, 0, At(0)), Seen::kNew);
  ASSERT_EQ(w.Begin({2, 2, 1}, 0, At(5)), Seen::kNew);
  ASSERT_EQ(w.Begin({1, 1, 2}, 0, At(10)), Seen::kNew);  // sender 1 heard again
  ASSERT_EQ(w.Begin({3, 3, 1}, 0, At(20)), Seen::kNew);  // sender 2 is the quietest
  EXPECT_EQ(w.senders(), 2u);
  EXPECT_EQ(w.Begin({1, 1, 1}, 0, At(30)), Seen::kInProgress);
  EXPECT_EQ(w.Begin({2, 2, 1}, 0, At(30)), Seen::kNew);  // forgotten
}

TEST(RequestWindowTest, CheckpointKeepsDoneEntriesAndFloorsButNotWorkInProgress) {
  RequestWindow w;
  for (uint64_t id = 5; id <= 9; ++id) ASSERT_EQ(w.Begin({3, 77, id}, 5, At(0)), Seen::kNew);
  w.Finish({3, 77, 5}, "a");
  w.Finish({3, 77, 7}, "b");
  ASSERT_EQ(w.Begin({4, 1, 2}, 2, At(0)), Seen::kNew);
  w.Finish({4, 1, 2}, "");
  const std::string saved = w.Serialize();

  RequestWindow r;
  ASSERT_TRUE(r.Restore(saved, "server-0.window", At(100)).ok());
  EXPECT_EQ(r.Begin({3, 77, 5}, 0, At(101)), Seen::kDone);
  EXPECT_EQ(*r.Outcome({3, 77, 5}), "a");
  EXPECT_EQ(r.Begin({3, 77, 7}, 0, At(101)), Seen::kDone);
  EXPECT_EQ(*r.Outcome({3, 77, 7}), "b");
  // 6, 8, 9 were under way, not applied: after a restore they may be.
  EXPECT_EQ(r.Begin({3, 77, 6}, 0, At(101)), Seen::kNew);
  EXPECT_EQ(r.Begin({3, 77, 4}, 0, At(101)), Seen::kStale);  // the floor survived
  EXPECT_EQ(r.Begin({4, 1, 2}, 0, At(101)), Seen::kDone);
  // Same contents, same bytes.
  RequestWindow again;
  ASSERT_TRUE(again.Restore(saved, "x", At(0)).ok());
  EXPECT_EQ(again.Serialize(), saved);
}

TEST(RequestWindowTest, CorruptStateIsAnErrorNamingTheFileAndLeavesItEmpty) {
  RequestWindow w;
  ASSERT_EQ(w.Begin({3, 77, 5}, 0, At(0)), Seen::kNew);
  Status s = w.Restore("\xff\xff\xff garbage", "ckpt-7/server-1.window", At(0));
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("ckpt-7/server-1.window"), std::string::npos) << s;
  EXPECT_EQ(w.size(), 0u);

  // Well-formed, impossible contents: each named.
  auto restore = [](const checkpoint::RequestWindowState& state) {
    RequestWindow r;
    return r.Restore(state.SerializeAsString(), "f", At(0));
  };
  checkpoint::RequestWindowState below;
  auto* b = below.add_senders();
  b->set_sender(3);
  b->set_floor(10);
  b->add_ids(4);
  b->add_outcomes("");
  s = restore(below);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("below its floor"), std::string::npos) << s;
  checkpoint::RequestWindowState unpaired = below;
  unpaired.mutable_senders(0)->set_floor(0);
  unpaired.mutable_senders(0)->add_ids(5);
  s = restore(unpaired);
  EXPECT_NE(s.message().find("2 ids but 1 outcomes"), std::string::npos) << s;
  checkpoint::RequestWindowState twice;
  twice.add_senders()->set_sender(3);
  twice.add_senders()->set_sender(3);
  s = restore(twice);
  EXPECT_NE(s.message().find("appears twice"), std::string::npos) << s;
}

}  // namespace
}  // namespace mtps
