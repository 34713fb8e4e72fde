export { AdmissionPipeline, IsoTime } from './pipeline.js';
export type { AdmissionPipelineDeps, JobMessageExtras, OutgoingMessage, PipelineEvents, PipelineInput, PipelineResult, UnavailableCause } from './pipeline.js';
