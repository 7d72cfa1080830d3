// The ES module entry point of the OpenTelemetry bridge.
import bridge from './otel.js';

export const {
  SpanguardSpanProcessor, SpanguardLogRecordProcessor, SpanguardSpanExporter, flushBeforeShutdown, LOG_RECORD_BODY,
} = bridge;
export default bridge;
