// The pipeline's configuration from the options (memory caps, policy lists, identity files).
#pragma once

#include "options.h"
#include "pipeline/pipeline.h"

namespace mat::daemon {

mat::pipeline::PipelineConfig MakeConfig(const mat::Options& o);

}  // namespace mat::daemon
