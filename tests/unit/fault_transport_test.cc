// Tests of the fault-injecting transport (common/net/fault_transport.h):
// each fault happens at its configured rate, the same seed gives the same
// schedule, held messages all leave through Receive, reordering swaps
// neighbours, op filters and registration pass through untouched, and a
// held message whose peer vanished is lost without failing later sends.
#include "common/net/fault_transport.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <thread>
#include <vector>

namespace mtps {
namespace {

// Records what reaches it; Receive only waits out its deadline.
class RecordingTransport : public Transport {
 public:
  explicit RecordingTransport(std::vector<uint64_t>* sent) : sent_(sent) {}
  StatusOr<int> Bind(const std::string&, int) override { return 1; }
  Status Connect(int, const std::string&) override { return Status::OK(); }
  Status Send(int, Message msg) override {
    sent_->push_back(msg.meta.request_id());
    return Status::OK();
  }
  Status Reply(const std::string&, Message msg) override { return Send(0, std::move(msg)); }
  StatusOr<Incoming> Receive(Deadline deadline) override {
    std::this_thread::sleep_until(deadline.at());
    return Status::DeadlineExceeded("nothing");
  }
  void Wake() override {}

 private:
  std::vector<uint64_t>* sent_;
};

Message Numbered(uint64_t id, wire::Op op = wire::PUSH_SPARSE) {
  Message m(op);
  m.meta.set_request_id(id);
  m.payloads.push_back(Payload::FromVector(std::vector<float>{1, 2, 3}));
  return m;
}

// Sends n numbered messages through a configured injector and returns what
// reached the wire once everything held has left.
std::vector<uint64_t> SendThrough(const FaultOptions& o, uint64_t salt, int n,
                                  FaultInjectingTransport::Counters* counters = nullptr) {
  std::vector<uint64_t> sent;
  FaultInjectingTransport t(std::make_unique<RecordingTransport>(&sent));
  t.Configure(o, salt);
  for (int i = 0; i < n; ++i) EXPECT_TRUE(t.Send(1, Numbered(static_cast<uint64_t>(i))).ok());
  const Deadline limit = Deadline::In(10000);
  while (t.held() > 0 && !limit.Expired()) (void)t.Receive(Deadline::In(5));
  EXPECT_EQ(t.held(), 0u);
  if (counters != nullptr) *counters = t.counters();
  return sent;
}

TEST(FaultTransportTest, PassesEverythingThroughUntilConfigured) {
  std::vector<uint64_t> sent;
  FaultInjectingTransport t(std::make_unique<RecordingTransport>(&sent));
  for (uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(t.Send(1, Numbered(i)).ok());
  ASSERT_EQ(sent.size(), 100u);
  for (uint64_t i = 0; i < 100; ++i) EXPECT_EQ(sent[i], i);
}

TEST(FaultTransportTest, DropsAndDuplicatesAtTheirRates) {
  FaultOptions o;
  o.seed = 7;
  o.drop = 0.05;
  o.duplicate = 0.05;
  const int n = 20000;
  FaultInjectingTransport::Counters c;
  const std::vector<uint64_t> sent = SendThrough(o, 3, n, &c);
  EXPECT_EQ(c.messages, n);
  // Binomial(20000, 0.05): mean 1000, sd about 31; 6 sd either way.
  EXPECT_NEAR(static_cast<double>(c.dropped), 1000, 185);
  EXPECT_NEAR(static_cast<double>(c.duplicated), 950, 185);  // of the ones not dropped
  EXPECT_EQ(sent.size(), static_cast<size_t>(n - c.dropped + c.duplicated));
  std::map<uint64_t, int> copies;
  for (uint64_t id : sent) ++copies[id];
  int twice = 0;
  for (const auto& [id, k] : copies) {
    EXPECT_LE(k, 2) << id;
    twice += k == 2;
  }
  EXPECT_EQ(twice, c.duplicated);
  EXPECT_EQ(static_cast<int64_t>(copies.size()), n - c.dropped);
}

TEST(FaultTransportTest, TheSameSeedGivesTheSameScheduleAndAnotherSaltAnother) {
  FaultOptions o;
  o.seed = 11;
  o.drop = 0.1;
  o.duplicate = 0.1;
  const std::vector<uint64_t> a = SendThrough(o, 5, 2000);
  EXPECT_EQ(SendThrough(o, 5, 2000), a);
  EXPECT_NE(SendThrough(o, 6, 2000), a);
  o.seed = 12;
  EXPECT_NE(SendThrough(o, 5, 2000), a);
}

TEST(FaultTransportTest, DelayedMessagesAllLeaveThroughReceive) {
  FaultOptions o;
  o.delay_ms_max = 20;
  FaultInjectingTransport::Counters c;
  const std::vector<uint64_t> sent = SendThrough(o, 1, 300, &c);
  ASSERT_EQ(sent.size(), 300u);
  EXPECT_GT(c.delayed, 250);
  // Random delays reorder the stream, and every message arrives once.
  std::vector<uint64_t> sorted = sent;
  std::sort(sorted.begin(), sorted.end());
  for (uint64_t i = 0; i < 300; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_NE(sent, sorted);
}

TEST(FaultTransportTest, ReorderHoldsAMessageBehindTheNextOne) {
  FaultOptions o;
  o.seed = 3;
  o.reorder = 0.2;
  FaultInjectingTransport::Counters c;
  const std::vector<uint64_t> sent = SendThrough(o, 1, 5000, &c);
  ASSERT_EQ(sent.size(), 5000u);
  EXPECT_NEAR(static_cast<double>(c.reordered), 1000, 200);
  // Every held message arrives after its successor (or later still).
  int inversions = 0;
  for (size_t i = 1; i < sent.size(); ++i) inversions += sent[i] < sent[i - 1];
  EXPECT_GT(inversions, 500);
}

TEST(FaultTransportTest, OnlyTheConfiguredOpsAndNeverRegistration) {
  FaultOptions o;
  o.drop = 1.0;
  o.ops = {wire::PUSH_SPARSE, wire::REGISTER};
  std::vector<uint64_t> sent;
  FaultInjectingTransport t(std::make_unique<RecordingTransport>(&sent));
  t.Configure(o, 1);
  ASSERT_TRUE(t.Send(1, Numbered(1, wire::PUSH_SPARSE)).ok());
  ASSERT_TRUE(t.Send(1, Numbered(2, wire::PULL_SPARSE)).ok());
  ASSERT_TRUE(t.Send(1, Numbered(3, wire::REGISTER)).ok());
  ASSERT_TRUE(t.Reply("x", Numbered(4, wire::REGISTER)).ok());
  EXPECT_EQ(sent, (std::vector<uint64_t>{2, 3, 4}));
}

// Like RecordingTransport, but a reply to "gone" fails as ZeroMQ's does to
// a peer that disconnected.
class VanishedPeerTransport : public RecordingTransport {
 public:
  using RecordingTransport::RecordingTransport;
  Status Reply(const std::string& to, Message msg) override {
    if (to == "gone") return Status::Unavailable("send failed: Host unreachable");
    return RecordingTransport::Reply(to, std::move(msg));
  }
};

TEST(FaultTransportTest, AHeldMessageToAVanishedPeerIsLostWithoutFailingTheNextSend) {
  FaultOptions o;
  o.delay_ms_max = 10;
  o.ops = {wire::PUSH_DENSE};  // only the replies below are held
  std::vector<uint64_t> sent;
  FaultInjectingTransport t(std::make_unique<VanishedPeerTransport>(&sent));
  t.Configure(o, 1);
  // Held, then flushed by a send of another message to a live peer.
  ASSERT_TRUE(t.Reply("gone", Numbered(1, wire::PUSH_DENSE)).ok());
  ASSERT_EQ(t.held(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(o.delay_ms_max + 5));
  Status s = t.Send(1, Numbered(2, wire::REPLICATE));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(sent, (std::vector<uint64_t>{2}));
  EXPECT_EQ(t.counters().undeliverable, 1);
  // Held, then flushed from Receive: the wait ends as a wait does.
  ASSERT_TRUE(t.Reply("gone", Numbered(3, wire::PUSH_DENSE)).ok());
  ASSERT_EQ(t.held(), 1u);
  StatusOr<Incoming> in = t.Receive(Deadline::In(o.delay_ms_max + 50));
  EXPECT_EQ(in.status().code(), StatusCode::kDeadlineExceeded) << in.status();
  EXPECT_EQ(t.held(), 0u);
  EXPECT_EQ(t.counters().undeliverable, 2);
}

TEST(FaultTransportTest, ConfigRulesNameTheirFields) {
  config::FaultConfig f;
  f.set_drop(1.5);
  f.set_delay_ms_max(-1);
  f.add_ops("PUSH_SPARSE");
  f.add_ops("NO_SUCH_OP");
  f.add_roles("worker");
  f.add_roles("client");
  const auto problems = CheckFaultConfig(f, "cluster.faults");
  ASSERT_EQ(problems.size(), 4u);
  EXPECT_EQ(problems[0].first, "cluster.faults.drop");
  EXPECT_EQ(problems[1].first, "cluster.faults.delay_ms_max");
  EXPECT_EQ(problems[2].first, "cluster.faults.ops");
  EXPECT_NE(problems[2].second.find("NO_SUCH_OP"), std::string::npos);
  EXPECT_EQ(problems[3].first, "cluster.faults.roles");
  // Roles select who injects.
  f = config::FaultConfig();
  f.set_drop(0.5);
  f.add_roles("server");
  EXPECT_TRUE(FaultOptionsFor(f, wire::SERVER).active());
  EXPECT_FALSE(FaultOptionsFor(f, wire::WORKER).active());
}

}  // namespace
}  // namespace mtps
