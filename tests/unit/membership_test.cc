// Who is in a job (ps/scheduler/membership.h): which registrations are
// accepted, how ranks and node ids are assigned, silent members and who
// was told the job's outcome.
#include "ps/scheduler/membership.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mtps {
namespace {

Incoming Registration(wire::Role role, int rank = -1, int port = 5000,
                      const std::string& host = "127.0.0.1") {
  Incoming in;
  in.msg = Message(wire::REGISTER);
  wire::NodeInfo* n = in.msg.meta.mutable_register_request()->mutable_node();
  n->set_role(role);
  n->set_rank(rank);
  n->set_host(host);
  n->set_port(port);
  n->set_pid(100 + port);
  in.reply_to = std::to_string(port);
  return in;
}

// Adds a registration that must be accepted.
void Add(Membership* m, Incoming&& in) {
  Status s = m->CheckRegistration(in);
  ASSERT_TRUE(s.ok()) << s;
  m->AddPending(std::move(in));
}

TEST(MembershipTest, RejectsRolesCountsAndAddressesTheJobDoesNotHave) {
  Membership m(1, 2);
  EXPECT_NE(m.CheckRegistration(Registration(wire::SCHEDULER)).message().find("role SCHEDULER"),
            std::string::npos);
  EXPECT_NE(m.CheckRegistration(Registration(wire::ROLE_UNSPECIFIED)).message().find("role"),
            std::string::npos);
  EXPECT_NE(m.CheckRegistration(Registration(wire::WORKER, -1, 0)).message().find("host:port"),
            std::string::npos);
  EXPECT_NE(m.CheckRegistration(Registration(wire::WORKER, -1, 70000)).message().find("host:port"),
            std::string::npos);
  EXPECT_FALSE(m.CheckRegistration(Registration(wire::WORKER, -1, 5000, "")).ok());
  Add(&m, Registration(wire::SERVER, -1, 5001));
  Status s = m.CheckRegistration(Registration(wire::SERVER, -1, 5002));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("too many servers: the job expects 1"), std::string::npos) << s;
  EXPECT_TRUE(m.CheckRegistration(Registration(wire::WORKER, -1, 5003)).ok());
  EXPECT_FALSE(m.all_pending());
}

TEST(MembershipTest, RequestedRanksFirstThenArrivalOrder) {
  Membership m(2, 3);
  Add(&m, Registration(wire::WORKER, -1, 5001));  // any rank
  Add(&m, Registration(wire::SERVER, -1, 5002));
  Add(&m, Registration(wire::WORKER, 2, 5003));  // asks for rank 2
  Add(&m, Registration(wire::WORKER, 7, 5004));  // an invalid rank: any
  Add(&m, Registration(wire::SERVER, 0, 5005));  // asks for rank 0
  ASSERT_TRUE(m.all_pending());
  EXPECT_FALSE(m.registered());
  const auto now = SteadyClock::now();
  std::vector<wire::NodeInfo> nodes = m.Register(12345, now);
  ASSERT_EQ(nodes.size(), 5u);
  EXPECT_TRUE(m.registered());
  EXPECT_EQ(m.epoch(), 12345u);
  // In the order the requests arrived: rank, node id (servers 1..2, workers 3..5).
  const int rank[] = {0, 1, 2, 1, 0};
  const int id[] = {3, 2, 5, 4, 1};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(nodes[i].rank(), rank[i]) << i;
    EXPECT_EQ(nodes[i].node_id(), id[i]) << i;
    EXPECT_EQ(nodes[i].port(), 5001 + i) << i;
  }
  std::vector<Incoming> pending = m.TakePending();
  ASSERT_EQ(pending.size(), 5u);
  EXPECT_EQ(pending[2].reply_to, "5003");
  EXPECT_EQ(m.num_pending(), 0);
  ASSERT_EQ(m.members().size(), 5u);
  EXPECT_EQ(m.Get(5).info.port(), 5003);
  EXPECT_EQ(m.Find(0), nullptr);  // the scheduler is not a member
  EXPECT_EQ(m.Find(6), nullptr);
  ASSERT_NE(m.Find(4), nullptr);
  EXPECT_EQ(m.Find(4)->info.role(), wire::WORKER);
}

TEST(MembershipTest, SilentMembersAndTheOutcome) {
  Membership m(1, 1);
  EXPECT_EQ(m.FindSilent(SteadyClock::now() + std::chrono::hours(1), std::chrono::seconds(1)),
            nullptr);  // nobody registered yet
  Add(&m, Registration(wire::SERVER, -1, 5001));
  Add(&m, Registration(wire::WORKER, -1, 5002));
  const auto t0 = SteadyClock::now();
  m.Register(1, t0);
  const std::chrono::milliseconds timeout(1000);
  EXPECT_EQ(m.FindSilent(t0 + timeout, timeout), nullptr);  // exactly the timeout: alive
  m.Find(1)->last_seen = t0 + std::chrono::milliseconds(1500);
  const Membership::Member* silent = m.FindSilent(t0 + std::chrono::milliseconds(1001), timeout);
  ASSERT_NE(silent, nullptr);
  EXPECT_EQ(silent->info.node_id(), 2);
  EXPECT_EQ(NodeLabel(silent->info), "worker 0 (node 2, pid 5102 on 127.0.0.1)");

  EXPECT_FALSE(m.AllInformed());
  m.MarkInformed(1);
  m.MarkInformed(9);  // not a member: ignored
  EXPECT_FALSE(m.AllInformed());
  m.MarkInformed(2);
  EXPECT_TRUE(m.AllInformed());
}

TEST(MembershipTest, EpochsAreOddAndRoleNamesAsInClusterJson) {
  for (int i = 0; i < 16; ++i) EXPECT_EQ(NewClusterEpoch() & 1, 1u);
  EXPECT_STREQ(RoleName(wire::SCHEDULER), "scheduler");
  EXPECT_STREQ(RoleName(wire::SERVER), "server");
  EXPECT_STREQ(RoleName(wire::WORKER), "worker");
  EXPECT_STREQ(RoleName(wire::ROLE_UNSPECIFIED), "unknown");
}

}  // namespace
}  // namespace mtps
