// ShufflingReader: a window of examples, each output drawn uniformly from it
// and replaced by the next input. See worker/data/shuffling_reader.h.
#include "worker/data/shuffling_reader.h"

#include <utility>
#include <vector>

#include "common/base/hash.h"
#include "worker/data/line_reader.h"

namespace mtps {
namespace {

class ShufflingReader : public ExampleReader {
 public:
  ShufflingReader(std::unique_ptr<ExampleReader> inner, int window, uint64_t seed)
      : inner_(std::move(inner)), window_(window), seed_(seed) {
    CHECK_GE(window, 1);
    StartEpoch();
  }

  const FeatureSchema& schema() const override { return inner_->schema(); }

  Status Next(int max_examples, Batch* batch) override {
    MTPS_RETURN_IF_ERROR(CheckMaxExamples(max_examples));
    const FeatureSchema& s = schema();
    batch->Clear();
    batch->num_slots = static_cast<int>(s.slots.size());
    batch->num_dense = static_cast<int>(s.dense_names.size());
    batch->num_labels = static_cast<int>(s.label_names.size());
    while (batch->num_examples < max_examples) {
      while (size_ < static_cast<size_t>(window_) && !inner_done_) {
        MTPS_RETURN_IF_ERROR(PullOne());
      }
      if (size_ == 0) break;
      const size_t j = Pick(NextRandom(), size_);
      AppendRow(rows_[j], batch);
      std::swap(rows_[j], rows_[size_ - 1]);
      --size_;
      PrefetchNextPicks();
    }
    return Status::OK();
  }

  Status Rewind() override {
    MTPS_RETURN_IF_ERROR(inner_->Rewind());
    ++epoch_;
    StartEpoch();
    return Status::OK();
  }

 private:
  void StartEpoch() {
    random_state_ = Mix64(seed_ ^ Mix64(epoch_));
    size_ = 0;
    inner_done_ = false;
  }

  uint64_t NextRandom() { return Mix64(random_state_++); }

  // A uniform pick among n rows (Lemire's multiply-shift).
  static size_t Pick(uint64_t random, size_t n) {
    return static_cast<size_t>((static_cast<unsigned __int128>(random) * n) >> 64);
  }

  // (gcc 12 drops __builtin_prefetch here, at -O1 and above; the asm stays.)
  static void PrefetchBytes(const void* p, size_t bytes) {
    const char* c = static_cast<const char*>(p);
    for (size_t i = 0; i < bytes; i += 64) {
#if defined(__x86_64__)
      asm volatile("prefetcht0 %0" : : "m"(c[i]));
#else
      __builtin_prefetch(c + i);
#endif
    }
  }

  // The window (~10 MB for Ali-CCP rows) does not fit in cache and picks are
  // random, so copying a picked row used to wait on DRAM for its Batch and then
  // for its arrays. The picks to come are known (the random sequence, and the
  // window is refilled to window_ before each pick until the input ends), so
  // fetch the Batch of the pick after next and the arrays of the next one
  // ahead of time. Only a hint: a wrong guess (the input ending) costs a
  // wasted prefetch, never a different order.
  void PrefetchNextPicks() const {
    const size_t n = inner_done_ ? size_ : static_cast<size_t>(window_);
    if (n == 0) return;
    const size_t next = Pick(Mix64(random_state_), n);
    if (next < rows_.size()) {
      const Batch& row = rows_[next];  // prefetched one pick ago
      PrefetchBytes(row.keys.data(), row.keys.size() * sizeof(uint64_t));
      PrefetchBytes(row.weights.data(), row.weights.size() * sizeof(float));
      PrefetchBytes(row.offsets.data(), row.offsets.size() * sizeof(uint32_t));
      PrefetchBytes(row.dense.data(), row.dense.size() * sizeof(float));
      PrefetchBytes(row.labels.data(), row.labels.size() * sizeof(float));
    }
    const size_t after = Pick(Mix64(random_state_ + 1), n);
    if (after < rows_.size()) PrefetchBytes(&rows_[after], sizeof(Batch));
  }

  // Reads the next input example into rows_[size_] (a batch of one: the
  // inner reader parses straight into the window, so an example is copied
  // once, on its way out), or sets inner_done_.
  Status PullOne() {
    if (size_ == rows_.size()) rows_.emplace_back();
    Batch& row = rows_[size_];
    MTPS_RETURN_IF_ERROR(inner_->Next(1, &row));
    if (row.num_examples == 0) {
      inner_done_ = true;
      return Status::OK();
    }
    ++size_;
    return Status::OK();
  }

  // Appends the one example of `row` to *batch.
  static void AppendRow(const Batch& row, Batch* batch) {
    const uint32_t base = static_cast<uint32_t>(batch->keys.size());
    batch->keys.insert(batch->keys.end(), row.keys.begin(), row.keys.end());
    batch->weights.insert(batch->weights.end(), row.weights.begin(), row.weights.end());
    const size_t at = batch->offsets.size();
    batch->offsets.resize(at + row.num_slots);
    uint32_t* const offsets = batch->offsets.data() + at;
    for (int s = 0; s < row.num_slots; ++s) offsets[s] = base + row.offsets[s + 1];
    batch->dense.insert(batch->dense.end(), row.dense.begin(), row.dense.end());
    batch->labels.insert(batch->labels.end(), row.labels.begin(), row.labels.end());
    ++batch->num_examples;
  }

  const std::unique_ptr<ExampleReader> inner_;
  const int window_;
  const uint64_t seed_;
  uint64_t epoch_ = 0;
  uint64_t random_state_ = 0;
  // rows_[0, size_) is the window, one example per Batch; the rest keep
  // their capacity.
  std::vector<Batch> rows_;
  size_t size_ = 0;
  bool inner_done_ = false;
};

}  // namespace

std::unique_ptr<ExampleReader> NewShufflingReader(std::unique_ptr<ExampleReader> inner, int window,
                                                  uint64_t seed) {
  return std::make_unique<ShufflingReader>(std::move(inner), window, seed);
}

}  // namespace mtps
