// The types of the ES module entry point (index.mjs): the same objects as
// the CommonJS one, declared once in index.d.ts, here under the named
// exports index.mjs gives and its default export (the CommonJS module's
// exports, which hold no `default`). An ES module importer must not get
// index.d.ts itself: TypeScript would read the ES entry as CommonJS.
import spanguard from './index.js';

export {
  Tracer, Span, SpanguardError, KIND, STATUS, RESULT, EVENT, events, currentSpan, load, isOk, version,
} from './index.js';
export type * from './index.js';
export default spanguard;
