// --replay: a recording through the pipeline to stdout; and the summary logged at exit.
#pragma once

#include "options.h"
#include "output/line_sink.h"
#include "pipeline/pipeline.h"

namespace mat::daemon {

// The pipeline's counters at exit (records, lines, connections, HTTP, caps hit).
void LogPipelineSummary(const mat::pipeline::Pipeline& pipeline);
void LogSummary(const mat::pipeline::Pipeline& pipeline, const mat::output::FileLineSink& out);

// Streams o.replay_file through the pipeline; 1 on an error or a line not written.
int RunReplay(const mat::Options& o, mat::output::FileLineSink& out);

}  // namespace mat::daemon
