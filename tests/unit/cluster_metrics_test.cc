// ClusterMetrics (ps/scheduler/cluster_metrics.h): nodes' snapshots are
// checked like any peer input (bad ones dropped and counted, naming the node
// and rule), merged with role and rank labels beside the scheduler's own
// metrics, served over HTTP as the published text, and turned into
// metrics.jsonl lines whose keys keep their order and whose unknown figures
// are left out.
#include "ps/scheduler/cluster_metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/metrics/exposition.h"
#include "tests/unit/temp_dir_test.h"

namespace mtps {
namespace {

std::vector<std::string> Keys(const Json& object) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.push_back(key);
  return keys;
}

wire::MetricsSnapshot ServerSnapshot(double rows, double requests) {
  MetricRegistry r;
  r.GetGauge("mtps_server_rows", "rows")->Set(rows);
  r.GetCounter("mtps_server_requests_total", "requests", {{"op", "PULL_SPARSE"}})
      ->Increment(requests);
  r.GetCounter("mtps_server_requests_total", "requests", {{"op", "PUSH_SPARSE"}})->Increment(1);
  r.GetGauge("mtps_process_resident_memory_bytes", "rss")->Set(1 << 20);
  return r.Snapshot();
}

// GET `path` from 127.0.0.1:`port`; the whole answer (5 s receive timeout).
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request = "GET " + path + " HTTP/1.1\r\n\r\n";
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) out.append(buffer, n);
    }
  }
  close(fd);
  return out;
}

TEST(ClusterMetricsTest, BadSnapshotsAreDroppedCountedAndNamed) {
  ClusterMetrics m(2, 2, 10, 0);
  ASSERT_TRUE(m.Record(wire::SERVER, 1, ServerSnapshot(5, 7)).ok());
  struct Case {
    wire::Role role;
    int rank;
    wire::MetricsSnapshot snapshot;
    std::string message;
  };
  wire::MetricsSnapshot unprefixed = ServerSnapshot(1, 1);
  unprefixed.mutable_families(0)->set_name("process_rss");
  wire::MetricsSnapshot role_label = ServerSnapshot(1, 1);
  role_label.mutable_families(1)->mutable_series(0)->mutable_labels(0)->set_name("role");
  wire::MetricsSnapshot negative = ServerSnapshot(1, -1);
  negative.mutable_families(1)->mutable_series(0)->set_value(-3);
  const std::vector<Case> cases = {
      {wire::SERVER, 0, unprefixed, "metrics of server 0: metric process_rss lacks the prefix"},
      {wire::WORKER, 1, role_label,
       "metrics of worker 1: metric mtps_server_requests_total "
       "series 0: label 'role' is reserved"},
      {wire::SERVER, 0, negative, "a counter must be finite and >= 0, got -3"},
      {wire::WORKER, 7, ServerSnapshot(1, 1), "metrics of worker 7: no such node"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    Status s = m.Record(c.role, c.rank, c.snapshot);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s;
  }
  // Only server 1's good snapshot is there, and the rejections are counted.
  m.MaybePublish(true);
  const std::string text = m.Text();
  EXPECT_NE(text.find("mtps_server_rows{role=\"server\",rank=\"1\"} 5\n"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("rank=\"0\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mtps_metrics_snapshots_rejected_total{role=\"scheduler\",rank=\"0\"} 4\n"),
            std::string::npos)
      << text;
}

TEST(ClusterMetricsTest, MergesNodesWithRoleAndRankBesideTheSchedulersOwn) {
  ClusterMetrics m(1, 1, 10, 3);
  ASSERT_TRUE(m.Record(wire::SERVER, 0, ServerSnapshot(235, 100)).ok());
  MetricRegistry worker;
  worker.GetCounter("mtps_train_examples_total", "examples")->Increment(512);
  worker.GetGauge("mtps_train_auc", "auc", {{"task", "income"}})->Set(0.93);
  ASSERT_TRUE(m.Record(wire::WORKER, 0, worker.Snapshot()).ok());
  // A newer snapshot replaces the node's older one.
  worker.GetCounter("mtps_train_examples_total", "examples")->Increment(256);
  ASSERT_TRUE(m.Record(wire::WORKER, 0, worker.Snapshot()).ok());
  m.checkpoint_pause()->Observe(0.02);
  const wire::MetricsSnapshot merged = m.Merged();
  EXPECT_TRUE(ValidateSnapshot(merged).ok()) << ValidateSnapshot(merged);
  const std::string text = RenderText(merged);
  for (const std::string line : {
           R"(mtps_job_restarts{role="scheduler",rank="0"} 3)",
           R"(mtps_job_epochs{role="scheduler",rank="0"} 10)",
           R"(mtps_server_requests_total{role="server",rank="0",op="PULL_SPARSE"} 100)",
           R"(mtps_train_examples_total{role="worker",rank="0"} 768)",
           R"(mtps_train_auc{role="worker",rank="0",task="income"} 0.93)",
           R"(mtps_checkpoint_pause_seconds_bucket{role="scheduler",rank="0",le="0.05"} 1)",
           R"(mtps_checkpoint_pause_seconds_count{role="scheduler",rank="0"} 1)",
       }) {
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << " in\n" << text;
  }
  // Every node's memory under one family, one HELP and TYPE.
  const std::string rss = "# TYPE mtps_process_resident_memory_bytes gauge\n";
  ASSERT_NE(text.find(rss), std::string::npos);
  EXPECT_EQ(text.find(rss, text.find(rss) + 1), std::string::npos);
  EXPECT_NE(text.find("mtps_process_resident_memory_bytes{role=\"scheduler\",rank=\"0\"}"),
            std::string::npos);
  EXPECT_NE(text.find("mtps_process_resident_memory_bytes{role=\"server\",rank=\"0\"} 1048576"),
            std::string::npos);
}

TEST(ClusterMetricsTest, ServesThePublishedTextOverHttp) {
  ClusterMetrics m(1, 1, 2, 0);
  auto port = m.StartServer("127.0.0.1", 0);
  ASSERT_TRUE(port.ok()) << port.status();
  std::string answer = HttpGet(*port, "/metrics");
  EXPECT_EQ(answer.substr(0, answer.find("\r\n")), "HTTP/1.1 200 OK") << answer;
  EXPECT_NE(answer.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << answer;
  EXPECT_EQ(answer.find("mtps_server_rows"), std::string::npos);
  ASSERT_TRUE(m.Record(wire::SERVER, 0, ServerSnapshot(42, 1)).ok());
  m.MaybePublish(true);
  answer = HttpGet(*port, "/metrics");
  EXPECT_NE(answer.find("mtps_server_rows{role=\"server\",rank=\"0\"} 42\n"), std::string::npos)
      << answer;
  EXPECT_EQ(answer.substr(answer.find("\r\n\r\n") + 4), m.Text());
  EXPECT_NE(HttpGet(*port, "/other").find("404"), std::string::npos);
  m.StopServer(1000);
  EXPECT_EQ(HttpGet(*port, "/metrics"), "");
}

TEST(MetricsJsonTest, KeysInOrderUnknownsLeftOut) {
  ClusterMetrics m(2, 2, 10, 0);
  ASSERT_TRUE(m.Record(wire::SERVER, 1, ServerSnapshot(240, 50)).ok());
  ProgressLine p;
  p.t = 2.5;
  p.examples = 1000;
  p.examples_per_sec = 400.0;
  p.loss_names = {"income", "never_married"};
  p.loss = {0.25, 0.125};
  p.auc = {0.93, std::nan("")};
  p.epoch = 3;
  p.workers = {{0, 600, 240.0}, {1, 400, 160.0}};
  const Json j = MetricsJson(m.Line(p));
  EXPECT_EQ(Keys(j), (std::vector<std::string>{"t", "examples", "examples_per_sec", "epoch", "loss",
                                               "auc", "servers", "workers"}));
  EXPECT_TRUE(j["examples"].is_number_integer());
  EXPECT_EQ(j["epoch"], 3);
  EXPECT_EQ(Keys(j["loss"]), (std::vector<std::string>{"income", "never_married"}));
  EXPECT_EQ(Keys(j["auc"]), (std::vector<std::string>{"income"}));  // NaN: unknown
  ASSERT_EQ(j["servers"].size(), 2u);
  EXPECT_EQ(Keys(j["servers"][0]), (std::vector<std::string>{"rank"}));  // sent nothing yet
  EXPECT_EQ(Keys(j["servers"][1]),
            (std::vector<std::string>{"rank", "rows", "memory_bytes", "requests_total"}));
  EXPECT_EQ(j["servers"][1]["rows"], 240);
  EXPECT_EQ(j["servers"][1]["requests_total"], 51);  // summed over ops
  EXPECT_TRUE(j["servers"][1]["memory_bytes"].is_number_integer());
  ASSERT_EQ(j["workers"].size(), 2u);
  EXPECT_EQ(Keys(j["workers"][0]),
            (std::vector<std::string>{"rank", "examples", "examples_per_sec"}));
  EXPECT_EQ(j["workers"][1]["examples"], 400);
  EXPECT_DOUBLE_EQ(j["workers"][1]["examples_per_sec"].get<double>(), 160.0);

  // The epoch before anyone reported one is left out too.
  p.epoch = 0;
  EXPECT_FALSE(MetricsJson(m.Line(p)).contains("epoch"));
}

class ClusterMetricsFileTest : public TempDirTest {};

TEST_F(ClusterMetricsFileTest, AppendsOneCompactLinePerCall) {
  ClusterMetrics m(1, 1, 1, 0);
  ProgressLine p;
  p.examples = 7;
  p.workers = {{0, 7, 1.0}};
  ResultFiles files(dir_.string());
  m.AppendLine(p, files);
  p.examples = 9;
  m.AppendLine(p, files);
  std::ifstream in(dir_ / "metrics.jsonl");
  std::vector<Json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["examples"], 7);
  EXPECT_EQ(lines[1]["examples"], 9);
}

}  // namespace
}  // namespace mtps
