// The ES module entry point of the OpenTelemetry bridge.
import bridge from './otel.js';

export const { SpanguardSpanProcessor, SpanguardSpanExporter, flushBeforeShutdown } = bridge;
export default bridge;
