// As what_compiles.mts, from CommonJS: require() gives the module's
// exports, which have no `default`. Never run.
import spanguard = require('spanguard');
import bridge = require('spanguard/otel');

const tracer = new spanguard.Tracer({ serviceName: 'typed', endpoint: undefined });
void new bridge.SpanguardSpanProcessor(tracer);
void new spanguard.Tracer({ fullPolicy: 'drop', fullWaitMs: 50, sampler: 'parentbased_traceidratio', samplerRatio: 0.1 });
// @ts-expect-error a policy that is none
void new spanguard.Tracer({ fullPolicy: 'block' });
// @ts-expect-error a sampler that is none
void new spanguard.Tracer({ sampler: 'sometimes' });
// @ts-expect-error undefined at run time
void new spanguard.default.Tracer();
// @ts-expect-error undefined at run time
void new bridge.default.SpanguardSpanExporter();
// The library's news: an event's code, name and message, typed.
spanguard.events.on('event', (e) => {
  const code: number = e.code;
  const name: string = e.name;
  void [code, name, e.message.length, spanguard.EVENT.BACKEND_WARNING];
});
// @ts-expect-error the only event is 'event'
spanguard.events.on('warning', () => {});
