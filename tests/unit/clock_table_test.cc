// The scheduler's consistency clocks (ps/scheduler/clock_table.h): the
// slowest unfinished worker's clock, when a waiting CLOCK request may be
// answered, and the max_clock_gap statistic.
#include "ps/scheduler/clock_table.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mtps {
namespace {

// A plain report (wait_for -1): clock acknowledged, batch `started`.
wire::Clock Plain(int64_t clock, int64_t started, bool finished = false) {
  wire::Clock c;
  c.set_clock(clock);
  c.set_started(started);
  c.set_finished(finished);
  return c;
}

// A request to wait until every unfinished clock is >= wait_for.
wire::Clock Wait(int64_t clock, int64_t started, int64_t wait_for) {
  wire::Clock c = Plain(clock, started);
  c.set_wait_for(wait_for);
  return c;
}

Incoming Request(const std::string& who) {
  Incoming in;
  in.msg = Message(wire::CLOCK);
  in.reply_to = who;
  return in;
}

std::vector<std::string> Who(const std::vector<Incoming>& requests) {
  std::vector<std::string> who;
  for (const Incoming& r : requests) who.push_back(r.reply_to);
  return who;
}

TEST(ClockTableTest, MinClockIsTheSlowestUnfinishedWorker) {
  ClockTable t(3);
  EXPECT_EQ(t.MinClock(), 0);  // every worker starts at 0
  t.Report(0, Plain(5, 6));
  t.Report(1, Plain(3, 4));
  EXPECT_EQ(t.MinClock(), 0);  // worker 2 has not reported
  t.Report(2, Plain(4, 5));
  EXPECT_EQ(t.MinClock(), 3);
  t.Report(1, Plain(9, 9, /*finished=*/true));  // finished workers leave the bound
  EXPECT_EQ(t.MinClock(), 4);
  t.Report(0, Plain(5, 5, true));
  t.Report(2, Plain(5, 5, true));
  EXPECT_EQ(t.MinClock(), ClockTable::kNoClock);
}

TEST(ClockTableTest, ClocksOnlyMoveForwardAndFinishedIsFinal) {
  ClockTable t(2);
  t.Report(0, Plain(7, 8));
  t.Report(1, Plain(6, 7));
  t.Report(1, Plain(2, 3));  // an older report overtaken by a newer one
  EXPECT_EQ(t.MinClock(), 6);
  t.Report(1, Plain(8, 8, true));
  t.Report(1, Plain(8, 8, false));  // finished stays finished
  EXPECT_EQ(t.MinClock(), 7);
}

TEST(ClockTableTest, GapIsStartedBatchAheadOfTheSlowestClock) {
  ClockTable t(2);
  EXPECT_EQ(t.max_clock_gap(), 0);
  t.Report(0, Plain(0, 3));  // batch 3 started while worker 1 is at 0
  EXPECT_EQ(t.max_clock_gap(), 3);
  t.Report(1, Plain(2, 2));
  t.Report(0, Plain(3, 4));         // 4 - 2
  EXPECT_EQ(t.max_clock_gap(), 3);  // the largest seen stays
  // A waiting request's batch has not started: neither its `started` nor a
  // gap counts.
  t.Report(0, Wait(3, 10, 8));
  EXPECT_EQ(t.max_clock_gap(), 3);
  t.Report(0, Plain(4, 5));  // started 5, not 10: the waiting one never counted
  EXPECT_EQ(t.max_clock_gap(), 3);
  t.Report(0, Plain(4, 6));
  EXPECT_EQ(t.max_clock_gap(), 4);
  // A finished worker's report, or one when every worker finished, adds none.
  t.Report(0, Plain(20, 20, true));
  EXPECT_EQ(t.max_clock_gap(), 4);
  t.Report(1, Plain(20, 30, true));
  EXPECT_EQ(t.max_clock_gap(), 4);
}

TEST(ClockTableTest, WaitsAreAnsweredOnceTheSlowestClockReachesThem) {
  ClockTable t(2);
  EXPECT_TRUE(t.Ready(-1));  // a plain report is answered at once
  EXPECT_TRUE(t.Ready(0));
  EXPECT_FALSE(t.Ready(1));
  // BOUNDED_STALENESS 1: worker 0 about to start batch 3 waits for clock 2.
  t.Report(0, Wait(2, 2, 2));
  ASSERT_FALSE(t.Ready(2));
  t.Defer(Request("w0-batch3"), 2);
  // A second request, waiting for clock 3.
  t.Defer(Request("w0-batch4"), 3);
  EXPECT_EQ(t.num_waiting(), 2u);
  t.Report(1, Plain(1, 2));
  EXPECT_TRUE(t.TakeReady().empty());  // min clock 1 < 2
  t.Report(1, Plain(3, 3));
  // Min clock is now 2 (worker 0's), so only the first wait is released.
  EXPECT_EQ(Who(t.TakeReady()), std::vector<std::string>{"w0-batch3"});
  EXPECT_EQ(t.num_waiting(), 1u);
  t.Report(0, Plain(3, 3));
  EXPECT_EQ(Who(t.TakeReady()), std::vector<std::string>{"w0-batch4"});
  EXPECT_EQ(t.num_waiting(), 0u);
}

TEST(ClockTableTest, ReadyWaitsComeOutInArrivalOrder) {
  ClockTable t(2);
  t.Defer(Request("a"), 5);
  t.Defer(Request("b"), 1);
  t.Defer(Request("c"), 2);
  t.Report(0, Plain(2, 2));
  t.Report(1, Plain(2, 2));
  EXPECT_EQ(Who(t.TakeReady()), (std::vector<std::string>{"b", "c"}));
  // Every worker finished: nobody is left to wait for.
  t.Report(0, Plain(3, 3, true));
  t.Report(1, Plain(3, 3, true));
  EXPECT_EQ(Who(t.TakeReady()), std::vector<std::string>{"a"});
}

TEST(ClockTableTest, TakeAllEmptiesTheWaits) {
  ClockTable t(1);
  t.Defer(Request("a"), 5);
  t.Defer(Request("b"), 6);
  EXPECT_EQ(Who(t.TakeAll()), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.num_waiting(), 0u);
  EXPECT_TRUE(t.TakeReady().empty());
}

}  // namespace
}  // namespace mtps
