// The phases of a job and the barriers between them, shared by the scheduler
// (ps/scheduler) and the workers' trainer (worker/trainer).
//
// Every worker runs the job as: setup (worker 0 initialises the dense
// parameters), the "start" barrier, training, the "trained" barrier,
// evaluation and its report, the "end" barrier. The scheduler completes each
// barrier once every worker arrived, and the barrier that completes moves the
// job to its next phase: it records the training time between "start" and
// "trained", writes the last progress line at "trained" and summary.json at
// "end". The names are what travels on the wire (wire::Barrier.name); other
// barrier names remain allowed (they mark no phase). Constants and pure
// functions only: usable from any thread.
#ifndef MTPS_COMMON_CLUSTER_JOB_PHASE_H_
#define MTPS_COMMON_CLUSTER_JOB_PHASE_H_

#include <optional>
#include <string_view>

namespace mtps {

// The barriers every worker of a job meets at, in this order.
enum class JobBarrier {
  kStart,    // dense parameters initialised; training begins
  kTrained,  // every worker finished training; evaluation begins
  kEnd,      // every worker sent its evaluation; the job's results are written
};

// The name of `barrier` on the wire: "start", "trained", "end".
constexpr const char* JobBarrierName(JobBarrier barrier) {
  switch (barrier) {
    case JobBarrier::kStart:
      return "start";
    case JobBarrier::kTrained:
      return "trained";
    case JobBarrier::kEnd:
      return "end";
  }
  return "";
}

// The barrier a wire name stands for; nullopt for any other name.
inline std::optional<JobBarrier> JobBarrierFromName(std::string_view name) {
  for (JobBarrier b : {JobBarrier::kStart, JobBarrier::kTrained, JobBarrier::kEnd}) {
    if (name == JobBarrierName(b)) return b;
  }
  return std::nullopt;
}

// Where a job is, as the scheduler sees it (ordered: a job only moves on).
enum class JobPhase {
  kSetup,       // registration and setup, until "start" completes
  kTraining,    // from "start" to "trained"
  kEvaluating,  // from "trained" to "end"
  kEnded,       // "end" completed
};

// The phase a job is in once `barrier` completed.
constexpr JobPhase PhaseAfter(JobBarrier barrier) {
  switch (barrier) {
    case JobBarrier::kStart:
      return JobPhase::kTraining;
    case JobBarrier::kTrained:
      return JobPhase::kEvaluating;
    case JobBarrier::kEnd:
      return JobPhase::kEnded;
  }
  return JobPhase::kSetup;
}

// "setup", "training", "evaluating", "ended" (for logs).
constexpr const char* JobPhaseName(JobPhase phase) {
  switch (phase) {
    case JobPhase::kSetup:
      return "setup";
    case JobPhase::kTraining:
      return "training";
    case JobPhase::kEvaluating:
      return "evaluating";
    case JobPhase::kEnded:
      return "ended";
  }
  return "";
}

}  // namespace mtps

#endif  // MTPS_COMMON_CLUSTER_JOB_PHASE_H_
