// As what_compiles.mts, from CommonJS: require() gives the module's
// exports, which have no `default`. Never run.
import spanguard = require('spanguard');
import bridge = require('spanguard/otel');

const tracer = new spanguard.Tracer({ serviceName: 'typed', endpoint: undefined });
void new bridge.SpanguardSpanProcessor(tracer);
// @ts-expect-error undefined at run time
void new spanguard.default.Tracer();
// @ts-expect-error undefined at run time
void new bridge.default.SpanguardSpanExporter();
