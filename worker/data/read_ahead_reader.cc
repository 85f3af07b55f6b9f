// The read-ahead reader (see worker/data/read_ahead_reader.h).
#include "worker/data/read_ahead_reader.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/base/deadline.h"

namespace mtps {
namespace {

class ReadAheadReader : public ExampleReader {
 public:
  ReadAheadReader(std::unique_ptr<ExampleReader> inner, const ReadAheadOptions& options)
      : inner_(std::move(inner)),
        schema_(inner_->schema()),
        batch_size_(options.batch_size < 1 ? 1 : options.batch_size),
        depth_(options.depth < 1 ? 1 : options.depth),
        wait_timeout_ms_(options.wait_timeout_ms) {
    thread_ = std::thread([this] { Loop(); });
  }

  ~ReadAheadReader() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  const FeatureSchema& schema() const override { return schema_; }

  Status Next(int max_examples, Batch* batch) override {
    if (max_examples != batch_size_) {
      return Status::InvalidArgument("read-ahead reader: batches of " +
                                     std::to_string(batch_size_) + " examples, asked for " +
                                     std::to_string(max_examples));
    }
    std::unique_lock<std::mutex> lock(mu_);
    const Deadline deadline = Deadline::In(wait_timeout_ms_);
    if (!changed_.wait_until(lock, deadline.at(), [this] { return !ready_.empty(); })) {
      return Status::DeadlineExceeded("read-ahead reader: no batch read within " +
                                      std::to_string(wait_timeout_ms_) + " ms");
    }
    Item item = std::move(ready_.front());
    ready_.pop_front();
    std::swap(*batch, item.batch);
    spare_.push_back(std::move(item.batch));  // the caller's old buffers, reused
    lock.unlock();
    changed_.notify_all();
    return item.status;
  }

  Status Rewind() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++generation_;
      ++rewinds_pending_;
      for (Item& item : ready_) spare_.push_back(std::move(item.batch));
      ready_.clear();
    }
    changed_.notify_all();
    return Status::OK();
  }

 private:
  struct Item {
    Batch batch;
    Status status;
  };

  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      changed_.wait(lock, [this] {
        return stop_ || rewinds_pending_ > 0 ||
               (!at_end_ && static_cast<int>(ready_.size()) < depth_);
      });
      if (stop_) return;
      if (rewinds_pending_ > 0) {
        --rewinds_pending_;
        lock.unlock();
        Status s = inner_->Rewind();
        lock.lock();
        at_end_ = !s.ok();
        if (!s.ok() && rewinds_pending_ == 0) {
          ready_.push_back(Item{Batch(), std::move(s)});
          changed_.notify_all();
        }
        continue;
      }
      Batch batch;
      if (!spare_.empty()) {
        batch = std::move(spare_.back());
        spare_.pop_back();
      }
      const uint64_t generation = generation_;
      lock.unlock();
      Status s = inner_->Next(batch_size_, &batch);
      lock.lock();
      if (generation != generation_) {  // a Rewind came meanwhile: not this epoch's
        spare_.push_back(std::move(batch));
        continue;
      }
      at_end_ = !s.ok() || batch.num_examples == 0;
      ready_.push_back(Item{std::move(batch), std::move(s)});
      changed_.notify_all();
    }
  }

  const std::unique_ptr<ExampleReader> inner_;  // called by thread_ only
  const FeatureSchema schema_;
  const int batch_size_;
  const int depth_;
  const int wait_timeout_ms_;

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Item> ready_;    // batches read, oldest first
  std::vector<Batch> spare_;  // buffers to read into
  bool at_end_ = false;       // the thread read the end of the data or an error
  int rewinds_pending_ = 0;   // inner Rewinds still to make
  uint64_t generation_ = 0;   // Rewinds so far
  bool stop_ = false;
  std::thread thread_;  // last: starts after everything above
};

}  // namespace

std::unique_ptr<ExampleReader> NewReadAheadReader(std::unique_ptr<ExampleReader> inner,
                                                  const ReadAheadOptions& options) {
  return std::make_unique<ReadAheadReader>(std::move(inner), options);
}

}  // namespace mtps
