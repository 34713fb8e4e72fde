export { AdmissionPipeline, IsoTime } from './pipeline.js';
export type { AdmissionPipelineDeps, OutgoingMessage, PipelineEvents, PipelineInput, PipelineResult, UnavailableCause } from './pipeline.js';
