// Built with CWCL_WITH_SYNTH=OFF: synthesis says so instead of linking
// espeak-ng and flite.
#include <cwcl/error.h>
#include <cwcl/synth/synth.h>

namespace cwcl {

bool synthesis_built() { return false; }

SynthReport synthesize(const std::vector<SynthItem>&, const SynthOptions&,
                       const std::function<void(int64_t, int64_t)>&) {
  throw UsageError("this cwcl was built without speech synthesis (CWCL_WITH_SYNTH=OFF)");
}

}  // namespace cwcl
