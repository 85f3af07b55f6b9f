// Fuzzes the checkpoint loader: CheckpointStore (ps/scheduler/
// checkpoint_store.h) choosing and verifying a checkpoint from its MANIFEST
// and files, then loading what a resuming server loads from the files it
// lists (ps/server/server.cc RestorePartition): each shard's table
// (server-P.shard-S, then its server-P.shard-S.delta-* in name order), the
// dense block (server-P.dense) and the push window (server-P.window).
//
// Input: byte 0: bit 0 set: the manifest's id, sizes and crc32s are fixed
// up to match (so a mutated file gets past verification to its loader);
// bits 1-5: the table options (tests/fuzz/checkpoint_fuzz.h). The rest:
// records separated by kFileSeparator: the serialized checkpoint.Manifest,
// then the content of each file it lists, in order. The fuzzer writes them
// into ckpt-00000001 of a fresh store (files whose names could leave the
// directory are not written, but stay in the manifest for the store to
// judge).
//
// Checked beyond "no crash": Verify and LatestGood agree (both find the
// checkpoint or neither does); a rejection names the checkpoint's
// directory; only files named in an intact manifest are loaded.
//
// Run: tests/run_fuzz, or by hand
//   build-fuzz/tests/fuzz/fuzz_checkpoint_store -dict=tests/fuzz/mtps.dict \
//     build-fuzz/fuzz-corpus/fuzz_checkpoint_store build-fuzz/fuzz-seeds/fuzz_checkpoint_store
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/checkpoint_fuzz.h"
#include "tests/fuzz/fuzz_support.h"

#include "common/base/deadline.h"
#include "common/base/durable_file.h"
#include "common/net/request_window.h"
#include "proto/checkpoint.pb.h"
#include "ps/scheduler/checkpoint_store.h"
#include "ps/table/dense_store.h"
#include "ps/table/sparse_table.h"

namespace mtps {
namespace {

namespace fs = std::filesystem;

// A name the fuzzer may create inside the checkpoint directory.
bool Writable(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.size() > 200) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
  });
}

bool EndsWith(const std::string& s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Loads the files of an intact checkpoint as a resuming server does.
void LoadFiles(const checkpoint::Manifest& manifest, const std::string& dir, uint8_t pick) {
  std::map<std::string, std::vector<std::string>> deltas;  // shard file -> its deltas
  std::vector<std::string> shards;
  for (const wire::CheckpointFile& f : manifest.files()) {
    const std::string& name = f.name();
    const size_t at = name.find(".delta-");
    if (at != std::string::npos) {
      deltas[name.substr(0, at)].push_back(name);
    } else if (name.find(".shard-") != std::string::npos) {
      shards.push_back(name);
    }
  }
  const SparseTableOptions options = fuzz::TableOptionsOf(static_cast<uint8_t>(pick >> 1));
  for (const std::string& shard : shards) {
    auto bytes = ReadWholeFile(dir + "/" + shard);
    if (!bytes.ok()) fuzz::Fail("a verified file does not read: " + bytes.status().ToString());
    SparseTable table(options);
    if (!table.Restore(bytes->data(), bytes->size(), shard).ok()) continue;
    std::vector<std::string>& chain = deltas[shard];
    std::sort(chain.begin(), chain.end());
    for (const std::string& delta : chain) {
      auto d = ReadWholeFile(dir + "/" + delta);
      if (!d.ok()) fuzz::Fail("a verified file does not read: " + d.status().ToString());
      if (!table.ApplyDelta(d->data(), d->size(), delta).ok()) break;
    }
  }
  for (const wire::CheckpointFile& f : manifest.files()) {
    auto bytes = ReadWholeFile(dir + "/" + f.name());
    if (!bytes.ok()) fuzz::Fail("a verified file does not read: " + bytes.status().ToString());
    if (EndsWith(f.name(), ".dense")) {
      config::DenseOptimizer optimizer;
      optimizer.mutable_adam();
      DenseStore store(optimizer);
      (void)store.Restore(bytes->data(), bytes->size(), f.name());
    } else if (EndsWith(f.name(), ".window")) {
      RequestWindow window;
      (void)window.Restore(*bytes, f.name(), SteadyClock::now());
    }
  }
  config::Config config;
  (void)config.ParseFromString(manifest.config());
}

}  // namespace
}  // namespace mtps

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mtps::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mtps;
  namespace fs = std::filesystem;
  if (size == 0) return 0;
  const uint8_t pick = data[0];
  const std::vector<std::string_view> parts =
      fuzz::Split(fuzz::AsView(data + 1, size - 1), fuzz::kFileSeparator);
  const fs::path root = fuzz::ScratchDir::Get() / "store";
  std::error_code ec;
  fs::remove_all(root, ec);
  CheckpointStore store(root.string());
  if (!store.Init().ok()) fuzz::Fail("cannot create the store's root");
  const std::string dir = store.DirFor(1);
  fs::create_directories(dir, ec);

  std::string manifest_bytes(parts[0]);
  checkpoint::Manifest manifest;
  const bool parsed = manifest.ParseFromString(manifest_bytes);
  for (int i = 0; parsed && i < manifest.files_size(); ++i) {
    wire::CheckpointFile* f = manifest.mutable_files(i);
    const std::string_view content =
        static_cast<size_t>(i) + 1 < parts.size() ? parts[static_cast<size_t>(i) + 1] : "";
    if (Writable(f->name())) fuzz::WriteFileOrDie(fs::path(dir) / f->name(), content);
    if (pick & 1) {
      f->set_size(content.size());
      f->set_crc32(Crc32(0, content.data(), content.size()));
    }
  }
  if (parsed && (pick & 1)) {
    manifest.set_id(1);
    manifest_bytes = manifest.SerializeAsString();
  }
  fuzz::WriteFileOrDie(fs::path(dir) / CheckpointStore::kManifestName, manifest_bytes);

  auto verified = store.Verify(1);
  std::vector<std::string> skipped;
  auto latest = store.LatestGood(&skipped);
  if (verified.ok() != latest.ok()) fuzz::Fail("Verify and LatestGood disagree");
  if (!verified.ok()) {
    if (verified.status().message().find(dir) == std::string::npos) {
      fuzz::Fail("a rejection not naming the checkpoint: " + verified.status().ToString());
    }
    if (skipped.size() != 1) fuzz::Fail("LatestGood did not name the skipped checkpoint");
    return 0;
  }
  LoadFiles(*verified, dir, pick);
  return 0;
}
