// checkpoint_bench: what a checkpoint of one server shard costs, at scale.
//
// For each --rows (a SparseTable of that many rows of --dim floats under
// Adagrad, keys drawn at random, every row pushed once), it measures:
//   * the training pause: SparseTable::Snapshot, the in-memory copy a shard
//     thread makes while the workers wait at the cut;
//   * the write: WriteSparseSnapshot into a DurableFileWriter under --dir
//     (crc32, fsync, rename, fsync of the directory), which the server does
//     on its writer thread while training goes on; bytes and MB/s;
//   * the reload: ReadVerifiedFile (size and crc32) + SparseTable::Restore;
//   * incremental: after --touched of the rows are pushed again, the delta
//     (DeltaSnapshot + its file) against a full checkpoint of the same table:
//     bytes written, pause, write time; and ApplyDelta on the full reload.
// Prints a Markdown table (progress on stderr). A benchmark, not a test: run
// by hand; README.md "### Checkpoints" holds its results.
//
//   build/bin/checkpoint_bench [--rows 1000000,10000000] [--dim 8] [--touched 0.01]
//       [--dir /tmp/mtps-checkpoint-bench]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "common/base/deadline.h"
#include "common/base/durable_file.h"
#include "ps/table/sparse_table.h"

DEFINE_string(rows, "1000000,10000000", "table sizes in rows, comma-separated");
DEFINE_int32(dim, 8, "embedding dim");
DEFINE_double(touched, 0.01, "fraction of the rows pushed again before the delta");
DEFINE_string(dir, "/tmp/mtps-checkpoint-bench", "where the files are written (removed after)");

namespace mtps {
namespace {

double Since(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

std::vector<int64_t> ParseList(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoll(item));
  return out;
}

// Writes `snapshot` to `path` durably; returns seconds, sets *bytes.
double WriteFile(const SparseTableSnapshot& snapshot, const std::string& path, uint64_t* bytes,
                 uint32_t* crc) {
  const auto start = SteadyClock::now();
  auto writer = DurableFileWriter::Create(path);
  CHECK(writer.ok()) << writer.status();
  Status s = WriteSparseSnapshot(
      snapshot, [&](const char* data, size_t size) { return (*writer)->Append(data, size); });
  CHECK(s.ok()) << s;
  CHECK((*writer)->Commit().ok());
  *bytes = (*writer)->size();
  *crc = (*writer)->crc32();
  return Since(start);
}

// Pushes rows [0, n) of `keys` once each, in batches of 4096.
void PushAll(SparseTable* table, const std::vector<uint64_t>& keys, size_t n, int dim,
             std::mt19937_64* rng) {
  std::vector<float> grads(4096 * static_cast<size_t>(dim));
  std::normal_distribution<float> g(0.0f, 0.01f);
  for (float& v : grads) v = g(*rng);
  for (size_t i = 0; i < n; i += 4096) {
    const size_t m = std::min<size_t>(4096, n - i);
    table->Push(keys.data() + i, m, grads.data());
  }
}

void Run() {
  std::filesystem::create_directories(FLAGS_dir);
  std::printf(
      "| rows | full bytes | pause (copy) s | write s | write MB/s | reload s | touched | delta "
      "bytes | delta pause s | delta write s | apply s | full/delta bytes |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (int64_t rows : ParseList(FLAGS_rows)) {
    SparseTableOptions o;
    o.dim = FLAGS_dim;
    o.optimizer.mutable_adagrad();
    SparseTable table(o);
    table.Reserve(static_cast<size_t>(rows));
    std::mt19937_64 rng(42);
    std::vector<uint64_t> keys(static_cast<size_t>(rows));
    for (uint64_t& k : keys) k = rng();
    PushAll(&table, keys, keys.size(), FLAGS_dim, &rng);
    fprintf(stderr, "%lld rows built\n", static_cast<long long>(rows));

    auto t = SteadyClock::now();
    SparseTableSnapshot full = table.Snapshot();
    const double pause = Since(t);
    table.StartDelta();
    const std::string full_path = FLAGS_dir + "/full";
    uint64_t full_bytes = 0;
    uint32_t full_crc = 0;
    const double write = WriteFile(full, full_path, &full_bytes, &full_crc);
    full = SparseTableSnapshot();

    t = SteadyClock::now();
    auto data = ReadVerifiedFile(full_path, full_bytes, full_crc);
    CHECK(data.ok()) << data.status();
    SparseTable reloaded(o);
    Status s = reloaded.Restore(data->data(), data->size(), full_path);
    CHECK(s.ok()) << s;
    const double reload = Since(t);

    // Incremental: a fraction of the rows pushed again.
    std::shuffle(keys.begin(), keys.end(), rng);
    const size_t touched = static_cast<size_t>(static_cast<double>(rows) * FLAGS_touched);
    PushAll(&table, keys, touched, FLAGS_dim, &rng);
    t = SteadyClock::now();
    SparseTableSnapshot delta = table.DeltaSnapshot();
    const double delta_pause = Since(t);
    const std::string delta_path = FLAGS_dir + "/delta";
    uint64_t delta_bytes = 0;
    uint32_t delta_crc = 0;
    const double delta_write = WriteFile(delta, delta_path, &delta_bytes, &delta_crc);
    auto delta_data = ReadVerifiedFile(delta_path, delta_bytes, delta_crc);
    CHECK(delta_data.ok()) << delta_data.status();
    t = SteadyClock::now();
    s = reloaded.ApplyDelta(delta_data->data(), delta_data->size(), delta_path);
    CHECK(s.ok()) << s;
    const double apply = Since(t);
    CHECK_EQ(reloaded.size(), table.size());

    std::printf(
        "| %lld | %.1f MB | %.3f | %.3f | %.0f | %.3f | %zu | %.2f MB | %.3f | %.3f | %.3f | "
        "%.1fx |\n",
        static_cast<long long>(rows), full_bytes / 1e6, pause, write, full_bytes / 1e6 / write,
        reload, touched, delta_bytes / 1e6, delta_pause, delta_write, apply,
        static_cast<double>(full_bytes) / static_cast<double>(delta_bytes));
    std::fflush(stdout);
  }
  std::filesystem::remove_all(FLAGS_dir);
}

}  // namespace
}  // namespace mtps

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  mtps::Run();
  return 0;
}
