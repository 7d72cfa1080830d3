//! What a binding does around a call that waits (`WaitHooks`). Kept here,
//! beside the slots and chunks a call waits for, so that the span lock's
//! wait (`SpanSlab`, a recording call on a span another thread holds) runs
//! them as the tracer's waits for a slot or for payload chunks do; the
//! tracer sets them (`tracer::set_wait_hooks`).

/// What a binding does around a wait (a begin waiting for a free slot, a
/// value waiting for payload chunks, a recording call waiting for a span
/// another thread holds): `before` runs on the thread about to sleep and
/// returns a token (0: nothing to undo); `after` gets a token other than 0
/// back on the same thread, once the call that waited holds no span any
/// more (before it returns). Python's binding lets go of the GIL in
/// `before` and takes it back in `after`: other Python threads (the
/// asyncio loop, a watchdog, a signal handler) run while a call waits.
/// Neither may call into spanguard. Set once, for the process (false if
/// already set); never run on a call that does not wait, so they cost the
/// common path nothing.
pub struct WaitHooks {
    pub before: fn() -> usize,
    pub after: fn(usize),
}

static WAIT_HOOKS: std::sync::OnceLock<WaitHooks> = std::sync::OnceLock::new();

/// Sets the wait hooks (see `WaitHooks`); false when they were set already.
pub fn set(hooks: WaitHooks) -> bool {
    WAIT_HOOKS.set(hooks).is_ok()
}

/// The hooks' `before`: a token, 0 when there is nothing to undo.
#[cold]
pub fn before() -> usize {
    WAIT_HOOKS.get().map_or(0, |h| (h.before)())
}

/// The hooks' `after`, for a token other than 0 from `before`.
#[cold]
pub fn after(token: usize) {
    if let Some(h) = WAIT_HOOKS.get() {
        (h.after)(token);
    }
}
