// The shuffling reader: a training reader's examples in a pseudo-random
// order, drawn from a window (data.shuffle_buffer), a new order every epoch.
// ExampleReader::Open wraps the training side in it.
#ifndef MTPS_WORKER_DATA_SHUFFLING_READER_H_
#define MTPS_WORKER_DATA_SHUFFLING_READER_H_

#include <cstdint>
#include <memory>

#include "worker/data/example_reader.h"

namespace mtps {

// Wraps `inner` so that its examples come out in a pseudo-random order: a
// window of `window` examples is kept, and each output example is drawn
// uniformly from it and replaced by the next input example (so every epoch
// is a permutation of the input, and an example moves at most about `window`
// places earlier). The order depends only on (seed, epoch), where the epoch
// counts Rewinds from 0. Holds up to `window` examples in memory. Requires
// window >= 1.
std::unique_ptr<ExampleReader> NewShufflingReader(std::unique_ptr<ExampleReader> inner, int window,
                                                  uint64_t seed);
// The reader is not thread-safe (one per thread, as every ExampleReader).

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_SHUFFLING_READER_H_
