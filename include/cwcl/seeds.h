// Every random stream of a training run derives its seed here, from the run
// seed, a stream tag and up to two counters (epoch, step, batch...). Exact
// resume depends on these seeds: a run restarted at step s draws the same
// numbers as one that never stopped.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace cwcl {

/// One tag per use, so that no two streams share a seed.
enum class SeedStream : uint64_t {
  EpochOrder = 1,       ///< (epoch): the order of training examples
  CaptionPick = 2,      ///< (epoch): which caption of its class an image gets
  ImageAugment = 3,     ///< (epoch, batch): shifts and flips
  StepNoise = 4,        ///< (step): dropout and other noise inside the towers
  ValidationSplit = 5,  ///< (): training images held out for validation
  SpecAugment = 6,      ///< (epoch, batch): masks of a speech batch
  BatchOrder = 7,       ///< (epoch): the order of length buckets
  Initialisation = 8,   ///< (): the towers' initial weights
  WaveAugment = 9,      ///< (example, copy): an augmented copy of a clip in a feature cache
  CopyPick = 10,        ///< (epoch): which copy of each clip an epoch reads
};

/// A 64-bit seed from the run seed, a stream and two counters, mixed with
/// SplitMix64 (Steele et al. 2014) so that nearby inputs give unrelated seeds.
uint64_t derive_seed(uint64_t run_seed, SeedStream stream, uint64_t a = 0, uint64_t b = 0);

/// A CPU generator seeded with `seed`.
torch::Generator make_generator(uint64_t seed);

}  // namespace cwcl
