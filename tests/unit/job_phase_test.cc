// The job's barriers and phases (common/cluster/job_phase.h): the names on
// the wire stay "start", "trained", "end", and each barrier moves the job on.
#include "common/cluster/job_phase.h"

#include <gtest/gtest.h>

#include <string>

namespace mtps {
namespace {

TEST(JobPhaseTest, BarrierNamesOnTheWire) {
  EXPECT_STREQ(JobBarrierName(JobBarrier::kStart), "start");
  EXPECT_STREQ(JobBarrierName(JobBarrier::kTrained), "trained");
  EXPECT_STREQ(JobBarrierName(JobBarrier::kEnd), "end");
  for (JobBarrier b : {JobBarrier::kStart, JobBarrier::kTrained, JobBarrier::kEnd}) {
    EXPECT_EQ(JobBarrierFromName(JobBarrierName(b)), b);
  }
  EXPECT_EQ(JobBarrierFromName(""), std::nullopt);
  EXPECT_EQ(JobBarrierFromName("Start"), std::nullopt);
  EXPECT_EQ(JobBarrierFromName("warmup"), std::nullopt);  // other barriers mark no phase
  static_assert(std::string_view(JobBarrierName(JobBarrier::kTrained)) == "trained");
}

TEST(JobPhaseTest, EachBarrierMovesTheJobToTheNextPhase) {
  EXPECT_EQ(PhaseAfter(JobBarrier::kStart), JobPhase::kTraining);
  EXPECT_EQ(PhaseAfter(JobBarrier::kTrained), JobPhase::kEvaluating);
  EXPECT_EQ(PhaseAfter(JobBarrier::kEnd), JobPhase::kEnded);
  EXPECT_LT(JobPhase::kSetup, JobPhase::kTraining);
  EXPECT_LT(JobPhase::kTraining, JobPhase::kEvaluating);
  EXPECT_LT(JobPhase::kEvaluating, JobPhase::kEnded);
  EXPECT_STREQ(JobPhaseName(JobPhase::kSetup), "setup");
  EXPECT_STREQ(JobPhaseName(JobPhase::kEvaluating), "evaluating");
}

}  // namespace
}  // namespace mtps
