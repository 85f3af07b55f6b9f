// The read-ahead reader: a training reader whose reading and parsing run on
// a thread of their own, a few batches ahead of the trainer, so that a
// worker's training thread spends its time on the towers. The trainer wraps
// its training side in it (Trainer::TrainEpochs).
#ifndef MTPS_WORKER_DATA_READ_AHEAD_READER_H_
#define MTPS_WORKER_DATA_READ_AHEAD_READER_H_

#include <memory>

#include "worker/data/example_reader.h"

namespace mtps {

struct ReadAheadOptions {
  // Every Next reads exactly this many examples at most (>= 1); Next with
  // another max_examples is an InvalidArgument.
  int batch_size = 256;
  // Batches read ahead of the caller (>= 1).
  int depth = 4;
  // How long Next waits for the reading thread's next batch before it
  // gives up with DeadlineExceeded (a stuck file system, not a slow one).
  int wait_timeout_ms = 600000;
};

// Wraps `inner`, which the returned reader's thread then owns and alone
// calls. The batches, their order and their errors are exactly inner's: the
// thread reads up to `depth` batches ahead and stops at the end of the data
// (a batch of 0 examples) or at an error until Rewind, which starts the
// inner reader's next epoch once per call (batches read ahead of a Rewind
// are dropped). An inner Rewind's error comes out of the next Next. The
// destructor stops and joins the thread (after the inner call under way).
// Like every ExampleReader, the returned one is used by one thread.
std::unique_ptr<ExampleReader> NewReadAheadReader(std::unique_ptr<ExampleReader> inner,
                                                  const ReadAheadOptions& options);

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_READ_AHEAD_READER_H_
