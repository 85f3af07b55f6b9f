// The scheduler's result files (ps/scheduler/job_results.h): the JSON
// documents' keys, key order and number types (integers stay integers, NaN
// becomes null), the model kind's name from the config schema, and
// JobResults merging workers' reports into summary.json and progress.jsonl.
#include "ps/scheduler/job_results.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include "common/eval/metrics.h"
#include "tests/unit/temp_dir_test.h"

namespace mtps {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<std::string> Keys(const Json& object) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.push_back(key);
  return keys;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

JobSummary ExampleSummary() {
  JobSummary s;
  s.model = "mmoe";
  s.eval = {{"income", 0.9340221490123, 0.137, 13942}, {"never_married", kNaN, kNaN, 0}};
  s.train_examples = 557710;
  s.train_seconds = 4.0;
  s.bad_lines_skipped = 7;
  s.consistency_mode = "BOUNDED_STALENESS";
  s.staleness = 3;
  s.max_clock_gap = 2;
  s.servers = 2;
  s.workers = 1;
  return s;
}

TEST(SummaryJsonTest, KeysInOrderNaNAsNullIntegersAsIntegers) {
  const Json j = SummaryJson(ExampleSummary());
  EXPECT_EQ(Keys(j), (std::vector<std::string>{"model", "eval", "train", "bad_lines_skipped",
                                               "consistency", "cluster"}));
  EXPECT_EQ(j["model"], "mmoe");
  EXPECT_EQ(Keys(j["eval"]), (std::vector<std::string>{"income", "never_married"}));
  const Json& income = j["eval"]["income"];
  EXPECT_EQ(Keys(income), (std::vector<std::string>{"auc", "logloss", "examples"}));
  EXPECT_EQ(income["auc"].get<double>(), 0.9340221490123);  // full precision
  EXPECT_TRUE(income["examples"].is_number_integer());
  EXPECT_EQ(income["examples"], 13942);
  EXPECT_EQ(Keys(j["train"]),
            (std::vector<std::string>{"examples", "seconds", "examples_per_sec"}));
  EXPECT_TRUE(j["train"]["examples"].is_number_integer());
  EXPECT_TRUE(j["train"]["seconds"].is_number_float());
  EXPECT_DOUBLE_EQ(j["train"]["examples_per_sec"].get<double>(), 557710 / 4.0);
  EXPECT_TRUE(j["bad_lines_skipped"].is_number_integer());
  EXPECT_EQ(j["bad_lines_skipped"], 7);
  EXPECT_EQ(Keys(j["consistency"]),
            (std::vector<std::string>{"mode", "staleness", "max_clock_gap"}));
  EXPECT_EQ(j["consistency"]["mode"], "BOUNDED_STALENESS");
  EXPECT_TRUE(j["consistency"]["max_clock_gap"].is_number_integer());
  EXPECT_EQ(Keys(j["cluster"]), (std::vector<std::string>{"servers", "workers"}));

  // The text: NaN metrics are null, integers print without a decimal point.
  const std::string text = JsonText(j, 2);
  const Json back = Json::parse(text);
  EXPECT_TRUE(back["eval"]["never_married"]["auc"].is_null()) << text;
  EXPECT_TRUE(back["eval"]["never_married"]["logloss"].is_null()) << text;
  EXPECT_NE(text.find("\"examples\": 13942\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\"max_clock_gap\": 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\"bad_lines_skipped\": 7,\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("nan"), std::string::npos) << text;
}

TEST(SummaryJsonTest, NoTrainingTimeGivesZeroRate) {
  JobSummary s = ExampleSummary();
  s.train_seconds = 0;
  const Json j = SummaryJson(s);
  EXPECT_TRUE(j["train"]["examples_per_sec"].is_number_float());
  EXPECT_EQ(j["train"]["examples_per_sec"].get<double>(), 0.0);
}

TEST(ProgressJsonTest, OneCompactLineWithKeysInOrder) {
  ProgressLine line;
  line.t = 1.5;
  line.examples = 126902;
  line.examples_per_sec = 110284.6;
  line.loss_names = {"income", "never_married"};
  line.loss = {0.25, kNaN};
  line.workers_done = 1;
  line.num_workers = 2;
  line.epochs = 10;
  // Not known yet: no epoch reported, not every worker read a whole epoch.
  const Json j = ProgressJson(line);
  EXPECT_EQ(Keys(j), (std::vector<std::string>{"t", "examples", "examples_per_sec", "loss",
                                               "workers_done", "num_workers", "epochs"}));
  EXPECT_EQ(Keys(j["loss"]), (std::vector<std::string>{"income", "never_married"}));
  const std::string text = JsonText(j, -1);
  EXPECT_EQ(text.find('\n'), std::string::npos);
  EXPECT_EQ(
      text,
      "{\"t\":1.5,\"examples\":126902,\"examples_per_sec\":110284.6,\"loss\":{\"income\":0.25,"
      "\"never_married\":null},\"workers_done\":1,\"num_workers\":2,\"epochs\":10}");
  // Known: the existing keys first, in their order, then the ETA's.
  line.epoch = 3;
  line.examples_total = 557710;
  const Json known = ProgressJson(line);
  EXPECT_EQ(Keys(known),
            (std::vector<std::string>{"t", "examples", "examples_per_sec", "loss", "workers_done",
                                      "num_workers", "epoch", "epochs", "examples_total"}));
  EXPECT_TRUE(known["epoch"].is_number_integer());
  EXPECT_TRUE(known["examples_total"].is_number_integer());
  const std::string known_text = JsonText(known, -1);
  const std::string tail = "\"num_workers\":2,\"epoch\":3,\"epochs\":10,\"examples_total\":557710}";
  ASSERT_GE(known_text.size(), tail.size());
  EXPECT_EQ(known_text.substr(known_text.size() - tail.size()), tail) << known_text;
}

TEST(ClusterJsonTest, EpochIsAnExactUint64AndNodesKeepTheirOrder) {
  wire::NodeInfo scheduler, worker;
  scheduler.set_role(wire::SCHEDULER);
  scheduler.set_rank(0);
  scheduler.set_node_id(0);
  scheduler.set_host("127.0.0.1");
  scheduler.set_port(4000);
  scheduler.set_pid(7);
  worker.set_role(wire::WORKER);
  worker.set_rank(1);
  worker.set_node_id(4);
  worker.set_host("h\"ost");
  worker.set_port(4001);
  worker.set_pid(int64_t{1} << 40);
  const uint64_t epoch = std::numeric_limits<uint64_t>::max();  // beyond a double's 2^53
  const Json j = ClusterJson(epoch, {scheduler, worker});
  EXPECT_EQ(Keys(j), (std::vector<std::string>{"cluster_epoch", "nodes"}));
  const std::string text = JsonText(j, 2);
  EXPECT_NE(text.find("\"cluster_epoch\": 18446744073709551615,"), std::string::npos) << text;
  const Json back = Json::parse(text);
  EXPECT_EQ(back["cluster_epoch"].get<uint64_t>(), epoch);
  ASSERT_EQ(back["nodes"].size(), 2u);
  EXPECT_EQ(Keys(back["nodes"][0]),
            (std::vector<std::string>{"role", "rank", "node_id", "host", "port", "pid"}));
  EXPECT_EQ(back["nodes"][0]["role"], "scheduler");
  EXPECT_EQ(back["nodes"][1]["role"], "worker");
  EXPECT_EQ(back["nodes"][1]["host"], "h\"ost");
  EXPECT_EQ(back["nodes"][1]["node_id"], 4);
  EXPECT_EQ(back["nodes"][1]["pid"].get<int64_t>(), int64_t{1} << 40);
}

TEST(SummaryModelNameTest, TheNamesSummaryJsonHasAlwaysUsed) {
  config::ModelConfig m;
  EXPECT_EQ(SummaryModelName(m), "unknown");
  m.mutable_esmm();
  EXPECT_EQ(SummaryModelName(m), "esmm");
  m.mutable_mmoe();
  EXPECT_EQ(SummaryModelName(m), "mmoe");
  m.mutable_shared_bottom();
  EXPECT_EQ(SummaryModelName(m), "shared_bottom");
  m.mutable_ple();
  EXPECT_EQ(SummaryModelName(m), "ple");
  m.mutable_single_task();
  EXPECT_EQ(SummaryModelName(m), "single_task");
}

// Every member of the oneof, present and future, is named by its field name.
TEST(SummaryModelNameTest, EveryKindOfTheSchemaIsNamedByItsField) {
  const google::protobuf::OneofDescriptor* kind =
      config::ModelConfig::descriptor()->FindOneofByName("kind");
  ASSERT_NE(kind, nullptr);
  std::set<std::string> names;
  for (int i = 0; i < kind->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = kind->field(i);
    config::ModelConfig m;
    m.GetReflection()->MutableMessage(&m, field);  // sets this member
    EXPECT_EQ(SummaryModelName(m), field->name());
    names.insert(SummaryModelName(m));
  }
  EXPECT_TRUE(names.count("esmm") && names.count("mmoe") && names.count("shared_bottom") &&
              names.count("ple") && names.count("single_task"));
}

config::Config SmallConfig() {
  config::Config c;
  c.mutable_model()->mutable_esmm();
  c.mutable_train()->set_consistency(config::TrainConfig::BSP);
  c.mutable_train()->set_staleness(0);
  return c;
}

// A worker's EVAL_REPORT with exact scores and labels per task.
Message EvalReport(const std::vector<std::string>& tasks,
                   const std::vector<std::vector<float>>& scores,
                   const std::vector<std::vector<float>>& labels, int64_t train_examples) {
  Message m(wire::EVAL_REPORT);
  for (size_t t = 0; t < tasks.size(); ++t) {
    m.meta.mutable_eval_report()->add_tasks(tasks[t]);
    m.payloads.push_back(Payload::FromVector(std::vector<float>(scores[t])));
    m.payloads.push_back(Payload::FromVector(std::vector<float>(labels[t])));
  }
  m.meta.mutable_eval_report()->set_train_examples(train_examples);
  return m;
}

class JobResultsTest : public TempDirTest {};

TEST_F(JobResultsTest, SummaryMergesEveryWorkersScores) {
  JobResults results(SmallConfig(), 1, 2, ResultFiles(dir_.string()));
  // "ctr" has both classes over the two workers, "cvr" only positives (NaN AUC).
  const std::vector<float> s0 = {0.9f, 0.2f}, l0 = {1, 0}, s1 = {0.4f, 0.6f}, l1 = {1, 0};
  Message r0 = EvalReport({"ctr", "cvr"}, {s0, {0.5f}}, {l0, {1}}, 100);
  Message r1 = EvalReport({"ctr", "cvr"}, {s1, {0.7f}}, {l1, {1}}, 50);
  ASSERT_TRUE(results.CheckEvalReport(r0).ok());
  ASSERT_TRUE(results.CheckEvalReport(r1).ok());
  results.RecordEval(0, std::move(r0));
  EXPECT_EQ(results.WriteSummary(2.0, 0).code(), StatusCode::kInternal);  // one of two workers
  results.RecordEval(1, std::move(r1));
  ASSERT_TRUE(results.WriteSummary(2.0, 0).ok());

  const std::string text = ReadAll((dir_ / "summary.json").string());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const Json j = Json::parse(text);
  EXPECT_EQ(j["model"], "esmm");
  EXPECT_EQ(Keys(j["eval"]), (std::vector<std::string>{"ctr", "cvr"}));
  const std::vector<float> scores = {0.9f, 0.2f, 0.4f, 0.6f}, labels = {1, 0, 1, 0};
  EXPECT_EQ(j["eval"]["ctr"]["auc"].get<double>(), Auc(scores, labels));
  EXPECT_EQ(j["eval"]["ctr"]["logloss"].get<double>(), LogLoss(scores, labels));
  EXPECT_EQ(j["eval"]["ctr"]["examples"], 4);
  EXPECT_TRUE(j["eval"]["cvr"]["auc"].is_null()) << text;
  EXPECT_TRUE(j["eval"]["cvr"]["logloss"].is_number_float());
  EXPECT_EQ(j["train"]["examples"], 150);
  EXPECT_EQ(j["train"]["seconds"].get<double>(), 2.0);
  EXPECT_EQ(j["train"]["examples_per_sec"].get<double>(), 75.0);
  EXPECT_EQ(j["bad_lines_skipped"], 0);  // no worker skipped a line
  EXPECT_TRUE(j["bad_lines_skipped"].is_number_integer());
  EXPECT_EQ(j["consistency"]["mode"], "BSP");
  EXPECT_EQ(j["consistency"]["staleness"], 0);
  EXPECT_EQ(j["cluster"]["servers"], 1);
  EXPECT_EQ(j["cluster"]["workers"], 2);
}

TEST_F(JobResultsTest, SummarySumsTheWorkersSkippedBadLines) {
  JobResults results(SmallConfig(), 1, 3, ResultFiles(dir_.string()));
  const int64_t skipped[] = {4, 0, 9};
  for (int rank = 0; rank < 3; ++rank) {
    Message r = EvalReport({"ctr"}, {{0.5f}}, {{1}}, 10);
    r.meta.mutable_eval_report()->set_bad_lines_skipped(skipped[rank]);
    ASSERT_TRUE(results.CheckEvalReport(r).ok());
    results.RecordEval(rank, std::move(r));
  }
  EXPECT_EQ(results.SumBadLinesSkipped(), 13);
  ASSERT_TRUE(results.WriteSummary(1.0, 0).ok());
  const Json j = Json::parse(ReadAll((dir_ / "summary.json").string()));
  EXPECT_TRUE(j["bad_lines_skipped"].is_number_integer());
  EXPECT_EQ(j["bad_lines_skipped"], 13);
}

TEST_F(JobResultsTest, WorkersMustReportTheSameTasks) {
  JobResults results(SmallConfig(), 1, 2, ResultFiles(dir_.string()));
  results.RecordEval(0, EvalReport({"ctr"}, {{0.5f}}, {{1}}, 1));
  results.RecordEval(1, EvalReport({"cvr"}, {{0.5f}}, {{1}}, 1));
  Status s = results.WriteSummary(1.0, 0);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("different evaluation tasks"), std::string::npos) << s;
}

TEST_F(JobResultsTest, MalformedEvalReportsAreRejected) {
  JobResults results(SmallConfig(), 1, 1, ResultFiles(dir_.string()));
  Message missing_frame = EvalReport({"ctr"}, {{0.5f}}, {{1}}, 1);
  missing_frame.payloads.pop_back();
  EXPECT_NE(results.CheckEvalReport(missing_frame).message().find("payload frames"),
            std::string::npos);
  Message unequal = EvalReport({"ctr"}, {{0.5f, 0.1f}}, {{1}}, 1);
  EXPECT_NE(results.CheckEvalReport(unequal).message().find("equal length"), std::string::npos);
  Message binned = EvalReport({"ctr"}, {{0.5f}}, {{1}}, 1);
  binned.meta.mutable_eval_report()->set_auc_bins(16);
  EXPECT_NE(results.CheckEvalReport(binned).message().find("auc_bins 16"), std::string::npos);
}

TEST_F(JobResultsTest, ProgressLinesSumExamplesAndAverageLosses) {
  JobResults results(SmallConfig(), 1, 2, ResultFiles(dir_.string()));  // progress_interval_sec 1
  const std::string path = (dir_ / "progress.jsonl").string();
  results.StartProgressClock(SteadyClock::now());
  results.MaybeAppendProgress(true, 0);  // no report yet: nothing to say
  EXPECT_FALSE(std::filesystem::exists(path));
  wire::Progress p0, p1;
  p0.set_examples(300);
  p0.add_loss_names("ctr");
  p0.add_mean_loss(0.5);
  p1.set_examples(100);
  p1.add_loss_names("ctr");
  p1.add_mean_loss(0.25);
  results.RecordProgress(0, p0);
  results.RecordProgress(1, p1);
  results.MaybeAppendProgress(false, 0);  // the interval has not passed
  EXPECT_FALSE(std::filesystem::exists(path));
  results.MaybeAppendProgress(true, 1);
  p0.set_examples(500);
  results.RecordProgress(0, p0);
  results.MaybeAppendProgress(true, 2);

  std::istringstream lines(ReadAll(path));
  std::vector<Json> records;
  for (std::string line; std::getline(lines, line);) records.push_back(Json::parse(line));
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["examples"], 400);
  EXPECT_TRUE(records[0]["examples"].is_number_integer());
  EXPECT_DOUBLE_EQ(records[0]["loss"]["ctr"].get<double>(), 0.375);
  EXPECT_EQ(records[0]["workers_done"], 1);
  EXPECT_EQ(records[0]["num_workers"], 2);
  EXPECT_TRUE(records[0]["t"].is_number_float());
  EXPECT_GE(records[0]["t"].get<double>(), 0.0);
  EXPECT_TRUE(records[0]["examples_per_sec"].is_number_float());
  EXPECT_EQ(records[1]["examples"], 600);
  EXPECT_EQ(records[1]["workers_done"], 2);
}

// The forced line at the end of training comes milliseconds after the last
// one: its rate spans the line before as well, not the burst over a few
// milliseconds.
TEST_F(JobResultsTest, AForcedLineSoonAfterTheLastKeepsASaneRate) {
  config::Config c = SmallConfig();
  c.mutable_train()->set_progress_interval_sec(0.1);
  JobResults results(c, 1, 1, ResultFiles(dir_.string()));
  results.StartProgressClock(SteadyClock::now());
  wire::Progress p;
  p.add_loss_names("ctr");
  p.add_mean_loss(0.5);
  p.set_examples(0);
  results.RecordProgress(0, p);
  // Read before the first line is stamped, so that the span measured here is
  // never shorter than the one the rate is taken over.
  const auto before_first = SteadyClock::now();
  ASSERT_TRUE(results.MaybeAppendProgress(true, 0).has_value());
  const auto first = SteadyClock::now();
  p.set_examples(1000);
  results.RecordProgress(0, p);
  // The interval passing is the event waited for (with a deadline).
  std::optional<ProgressLine> second;
  while (!(second = results.MaybeAppendProgress(false, 0))) {
    ASSERT_LT(SecondsSince(first), 10.0);
  }
  p.set_examples(2000);
  results.RecordProgress(0, p);
  std::optional<ProgressLine> last = results.MaybeAppendProgress(true, 1);
  ASSERT_TRUE(last.has_value());
  const double span = SecondsSince(before_first);
  EXPECT_LE(second->examples_per_sec, 1000 / 0.1 * 1.01);
  // Over the two lines: 2000 examples in at least the 0.1 s interval.
  EXPECT_LE(last->examples_per_sec, 2000 / 0.1 * 1.01);
  EXPECT_GE(last->examples_per_sec, 2000 / span * 0.99);
  ASSERT_EQ(last->workers.size(), 1u);
  EXPECT_LE(last->workers[0].examples_per_sec, 2000 / 0.1 * 1.01);
}

config::Config EpochsConfig(int epochs) {
  config::Config c = SmallConfig();
  c.mutable_train()->set_epochs(epochs);
  return c;
}

wire::Progress Report(int64_t examples, int epoch, int64_t examples_per_epoch = -1,
                      std::vector<double> auc = {}) {
  wire::Progress p;
  p.set_examples(examples);
  p.add_loss_names("ctr");
  p.add_mean_loss(0.5);
  for (double a : auc) p.add_running_auc(a);
  p.set_epoch(epoch);
  if (examples_per_epoch >= 0) p.set_examples_per_epoch(examples_per_epoch);
  return p;
}

// The ETA's fields: the slowest worker's epoch, the epochs, and the total
// once every worker knows its examples per epoch (not before).
TEST_F(JobResultsTest, ProgressLinesCarryTheSlowestEpochAndTheExpectedTotal) {
  JobResults results(EpochsConfig(5), 1, 2, ResultFiles(dir_.string()));
  const std::string path = (dir_ / "progress.jsonl").string();
  results.StartProgressClock(SteadyClock::now());
  // Worker 0 in epoch 2 knows its 300 examples per epoch; worker 1 is still in its first.
  results.RecordProgress(0, Report(400, 2, 300, {0.75}));
  results.RecordProgress(1, Report(250, 1, -1, {kNaN}));
  std::optional<ProgressLine> first = results.MaybeAppendProgress(true, 0);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->epoch, 1);
  EXPECT_EQ(first->epochs, 5);
  EXPECT_EQ(first->examples_total, -1);
  ASSERT_EQ(first->auc.size(), 1u);
  EXPECT_DOUBLE_EQ(first->auc[0], 0.75);  // the NaN of worker 1 is no AUC
  ASSERT_EQ(first->workers.size(), 2u);
  EXPECT_EQ(first->workers[1].rank, 1);
  EXPECT_EQ(first->workers[1].examples, 250);
  // Both know theirs: 5 x (300 + 290).
  results.RecordProgress(1, Report(330, 2, 290, {0.25}));
  results.RecordProgress(0, Report(700, 3, 300, {0.75}));
  std::optional<ProgressLine> second = results.MaybeAppendProgress(true, 0);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->epoch, 2);
  EXPECT_EQ(second->examples_total, 2950);
  EXPECT_DOUBLE_EQ(second->auc[0], 0.5);
  EXPECT_EQ(second->workers[0].examples, 700);
  // A report without examples_per_epoch later does not forget it.
  results.RecordProgress(1, Report(620, 5));
  results.RecordProgress(0, Report(1500, 5));
  std::optional<ProgressLine> third = results.MaybeAppendProgress(true, 2);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->epoch, 5);
  EXPECT_EQ(third->examples_total, 2950);

  std::istringstream lines(ReadAll(path));
  std::vector<Json> records;
  for (std::string line; std::getline(lines, line);) records.push_back(Json::parse(line));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["epoch"], 1);
  EXPECT_EQ(records[0]["epochs"], 5);
  EXPECT_FALSE(records[0].contains("examples_total"));
  EXPECT_FALSE(records[0].contains("auc"));  // not a progress.jsonl key
  EXPECT_EQ(records[1]["epoch"], 2);
  EXPECT_EQ(records[1]["examples_total"], 2950);
  EXPECT_TRUE(records[1]["examples_total"].is_number_integer());
  EXPECT_EQ(records[2]["epoch"], 5);
}

TEST_F(JobResultsTest, MalformedProgressReportsAreRejected) {
  JobResults results(EpochsConfig(3), 1, 1, ResultFiles(dir_.string()));
  EXPECT_TRUE(results.CheckProgress(Report(10, 1, 5, {0.5})).ok());
  EXPECT_TRUE(results.CheckProgress(Report(10, 0)).ok());
  wire::Progress losses = Report(10, 1);
  losses.add_mean_loss(1.0);
  EXPECT_NE(results.CheckProgress(losses).message().find("1 loss names and 2 mean losses"),
            std::string::npos);
  EXPECT_NE(results.CheckProgress(Report(10, 1, 5, {0.5, 0.5}))
                .message()
                .find("2 running AUCs for 1 loss names"),
            std::string::npos);
  EXPECT_NE(results.CheckProgress(Report(10, 4)).message().find("epoch 4, the job has 3"),
            std::string::npos);
  EXPECT_NE(results.CheckProgress(Report(10, -1)).message().find("epoch -1"), std::string::npos);
  EXPECT_NE(results.CheckProgress(Report(-1, 1)).message().find("negative"), std::string::npos);
  wire::Progress per_epoch = Report(10, 1);
  per_epoch.set_examples_per_epoch(-2);
  EXPECT_NE(results.CheckProgress(per_epoch).message().find("negative"), std::string::npos);
}

TEST_F(JobResultsTest, ClusterJsonIsWrittenAtomically) {
  JobResults results(SmallConfig(), 1, 1, ResultFiles(dir_.string()));
  wire::NodeInfo n;
  n.set_role(wire::SERVER);
  n.set_node_id(1);
  ASSERT_TRUE(results.WriteCluster(12345678901234567890ull, {n}).ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "cluster.json.tmp"));
  const Json j = Json::parse(ReadAll((dir_ / "cluster.json").string()));
  EXPECT_EQ(j["cluster_epoch"].get<uint64_t>(), 12345678901234567890ull);
  EXPECT_EQ(j["nodes"][0]["role"], "server");
  EXPECT_FALSE(j.contains("metrics"));  // no metrics server
  ASSERT_TRUE(results.WriteCluster(1, {n}, "http://10.0.0.5:9100/metrics").ok());
  const Json with = Json::parse(ReadAll((dir_ / "cluster.json").string()));
  EXPECT_EQ(Keys(with), (std::vector<std::string>{"cluster_epoch", "nodes", "metrics"}));
  EXPECT_EQ(with["metrics"], "http://10.0.0.5:9100/metrics");
}

// Mirrored to a stream (a launcher on another host), every write is one JSON
// line naming the file, and the files are written as well.
TEST_F(JobResultsTest, ResultFilesMirrorEveryWriteAsOneJsonLine) {
  char* buffer = nullptr;
  size_t size = 0;
  std::FILE* stream = open_memstream(&buffer, &size);
  ASSERT_NE(stream, nullptr);
  ResultFiles files(dir_.string(), stream);
  ASSERT_TRUE(files.Write("summary.json", "{\n  \"a\": 1\n}\n").ok());
  ASSERT_TRUE(files.Append("progress.jsonl", "{\"t\":1.5}").ok());
  ASSERT_TRUE(files.Append("progress.jsonl", "{\"t\":2.5}").ok());
  std::fclose(stream);
  std::string mirrored(buffer, size);
  std::free(buffer);
  std::vector<Json> lines;
  std::istringstream in(mirrored);
  for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["file"], "summary.json");
  EXPECT_EQ(lines[0]["write"], "{\n  \"a\": 1\n}\n");
  EXPECT_EQ(lines[1]["file"], "progress.jsonl");
  EXPECT_EQ(lines[1]["append"], "{\"t\":1.5}");
  EXPECT_EQ(lines[2]["append"], "{\"t\":2.5}");
  EXPECT_EQ(ReadAll((dir_ / "summary.json").string()), "{\n  \"a\": 1\n}\n");
  EXPECT_EQ(ReadAll((dir_ / "progress.jsonl").string()), "{\"t\":1.5}\n{\"t\":2.5}\n");
}

}  // namespace
}  // namespace mtps
