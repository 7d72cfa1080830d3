// The types of the bridge's ES module entry point (otel.mjs), declared once
// in otel.d.ts: as index.d.mts for index.mjs.
import bridge from './otel.js';

export {
  SpanguardSpanProcessor, SpanguardLogRecordProcessor, SpanguardSpanExporter, flushBeforeShutdown, LOG_RECORD_BODY,
} from './otel.js';
export type * from './otel.js';
export default bridge;
