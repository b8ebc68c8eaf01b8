#include <cwcl/seeds.h>

namespace cwcl {
namespace {

// SplitMix64's finaliser: a bijection on 64-bit integers with full avalanche.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t derive_seed(uint64_t run_seed, SeedStream stream, uint64_t a, uint64_t b) {
  uint64_t h = mix(run_seed);
  h = mix(h ^ static_cast<uint64_t>(stream));
  h = mix(h ^ a);
  return mix(h ^ b);
}

torch::Generator make_generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

}  // namespace cwcl
