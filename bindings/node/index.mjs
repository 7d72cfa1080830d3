// The ES module entry point: the same objects as the CommonJS one (one
// addon, one AsyncLocalStorage), under named exports.
import spanguard from './index.js';

export const {
  Tracer, Span, SpanguardError, KIND, STATUS, RESULT, EVENT, events, currentSpan, load, isOk, version,
} = spanguard;
export default spanguard;
